//! Test helpers: spawn real brokers (nats-server, tansu) and MockClusters for tests.
