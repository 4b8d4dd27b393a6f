//! The bus health check against real peers: a reachable nats-server and Kafka MockCluster pass;
//! NATS credentials the server rejects fail fatally (the process must stop, retrying cannot help);
//! a bus that is down fails transiently (not ready, retried). Nothing is published or consumed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dastra_connect_core::bus::{BusConfig, KafkaConfig};
use dastra_connect_core::config::Secret;
use dastra_connect_core::health::{BusCheck, HealthCheck};
use dastra_connect_core::testkit::{self, NatsServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_passes_rejects_bad_credentials_fatally_and_a_stopped_server_transiently() {
    let mut nats = NatsServer::start_with_args(&["--user", "connector", "--pass", "s3cret-pw"]).await;
    let mut good = nats.nats_config();
    good.user = Some("connector".into());
    good.password = Some(Secret::new("s3cret-pw"));
    BusCheck::new(BusConfig::Nats(good.clone())).check().await.unwrap();

    let mut bad = good.clone();
    bad.password = Some(Secret::new("wrong-pw"));
    let err = BusCheck::new(BusConfig::Nats(bad)).check().await.unwrap_err();
    assert!(err.fatal, "{err}");
    assert!(!err.to_string().contains("wrong-pw"), "{err}");

    nats.stop();
    let mut down = good;
    down.timeout = Duration::from_secs(2);
    let err = BusCheck::new(BusConfig::Nats(down)).check().await.unwrap_err();
    assert!(!err.fatal, "a stopped server may come back: {err}");
    assert_eq!(err.check, "bus");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_passes_and_an_unreachable_cluster_fails_transiently() {
    let kafka = testkit::mock_kafka(1);
    BusCheck::new(kafka.bus_config()).check().await.unwrap();

    let mut cfg = KafkaConfig::new("127.0.0.1:1");
    cfg.timeout = Duration::from_secs(2);
    let err = BusCheck::new(BusConfig::Kafka(cfg)).check().await.unwrap_err();
    assert!(!err.fatal, "{err}");
}
