//! dastra-connect-core: the framework every connector stands on — CloudEvents change events and their
//! codecs (Avro single-object, Confluent wire format, JSON), the Kafka and NATS JetStream bus, the
//! key-value state kept on the bus, configuration helpers and telemetry.

pub mod admin;
pub mod bus;
pub mod canonical;
pub mod codec;
pub mod config;
pub mod connector;
pub mod dlq;
pub mod error;
pub mod event;
pub mod health;
pub mod source;
pub mod state;
pub mod status_page;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{Classify, ErrorClass};
