//! The bus error: one enum for Kafka and NATS, classified with the libraries' own knowledge
//! (rdkafka error codes and `is_retriable`/`is_fatal`, async-nats error kinds).

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::{Classify, ErrorClass};

/// Anything the bus (publish, consume, commit, admin) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The configuration is wrong; found by `validate()` without I/O or when a client is created.
    #[error("bus configuration error at `{path}`: {reason}")]
    Config {
        /// Dotted key path (e.g. `nats.replica_index`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A Kafka operation failed.
    #[error("Kafka {op} failed: {source}")]
    Kafka {
        /// What was being done (`publish`, `commit`, `create topics`…).
        op: &'static str,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// A NATS / JetStream operation failed.
    #[error("NATS {op} failed ({kind:?}): {message}")]
    Nats {
        /// What was being done.
        op: &'static str,
        /// The async-nats error kind, reduced to what decides the reaction.
        kind: NatsErrorKind,
        /// The library's message (never contains credentials).
        message: String,
    },
    /// The message cannot be sent as it is (e.g. a header value NATS cannot carry); retrying gives
    /// the same answer.
    #[error("message rejected before sending: {0}")]
    InvalidMessage(String),
    /// A broker did not answer in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What we waited for.
        what: String,
        /// How long we waited.
        after: std::time::Duration,
    },
    /// The subscriber was closed (or its background task ended) and delivers nothing more.
    #[error("the subscriber is closed")]
    Closed,
}

/// The async-nats error kinds that decide how to react.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsErrorKind {
    /// Could not connect, or the connection dropped (retry).
    Connection,
    /// Authentication or authorization failed (fatal: fix the credentials).
    Auth,
    /// TLS setup failed (fatal: fix certificates).
    Tls,
    /// No reply in time / no responders (retry: JetStream may be electing a leader).
    Timeout,
    /// JetStream answered with an API error (stream/consumer config conflicts etc.).
    JetStream,
    /// The message or request is invalid (permanent).
    Invalid,
    /// Anything else (retry).
    Other,
}

impl BusError {
    /// A configuration error at `path`.
    pub fn config(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config { path: path.into(), reason: reason.into() }
    }

    /// Wraps a Kafka error from operation `op`.
    pub fn kafka(op: &'static str, source: KafkaError) -> Self {
        Self::Kafka { op, source }
    }

    /// Wraps any async-nats error from operation `op`; `kind` comes from the library's error kind.
    pub fn nats(op: &'static str, kind: NatsErrorKind, err: impl std::fmt::Display) -> Self {
        Self::Nats { op, kind, message: err.to_string() }
    }

    /// The librdkafka error code, when this is a Kafka error that has one.
    pub fn kafka_code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            Self::Kafka { source, .. } => source.rdkafka_error_code(),
            _ => None,
        }
    }
}

/// librdkafka error codes that no retry can fix: the record or request itself is wrong.
fn kafka_code_is_permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidRecord
            | C::InvalidTopic
            | C::MessageBatchTooLarge
            | C::InvalidMessage
            | C::BadMessage
            | C::InvalidTimestamp
            | C::KeySerialization
            | C::ValueSerialization
            | C::InvalidArgument
            | C::OffsetMetadataTooLarge
            | C::PolicyViolation
            | C::UnsupportedForMessageFormat
            | C::InvalidPartitions
            | C::InvalidReplicationFactor
            | C::InvalidConfig
    )
}

/// librdkafka error codes that stop the process: credentials, authorization, a fenced producer.
fn kafka_code_is_fatal(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::Fatal
            | C::Authentication
            | C::SaslAuthenticationFailed
            | C::UnsupportedSASLMechanism
            | C::IllegalSASLState
            | C::TopicAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::ProducerFenced
            | C::Fenced
            | C::InvalidProducerEpoch
            | C::SSL
            | C::NotConfigured
            | C::UnsupportedFeature
            | C::InvalidGroupId
    )
}

fn classify_kafka(err: &KafkaError) -> ErrorClass {
    match err {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) | KafkaError::Subscription(_) => ErrorClass::Fatal,
        KafkaError::MessageConsumptionFatal(_) => ErrorClass::Fatal,
        KafkaError::Nul(_) => ErrorClass::Permanent,
        KafkaError::Transaction(e) if e.is_fatal() => ErrorClass::Fatal,
        KafkaError::Transaction(e) if e.is_retriable() => ErrorClass::Retryable,
        other => match other.rdkafka_error_code() {
            Some(code) if kafka_code_is_fatal(code) => ErrorClass::Fatal,
            Some(code) if kafka_code_is_permanent(code) => ErrorClass::Permanent,
            // Timeouts, transport failures, leader changes, rebalances, full queues: transient.
            _ => ErrorClass::Retryable,
        },
    }
}

impl Classify for BusError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Config { .. } => ErrorClass::Fatal,
            Self::Kafka { source, .. } => classify_kafka(source),
            Self::Nats { kind, .. } => match kind {
                NatsErrorKind::Auth | NatsErrorKind::Tls => ErrorClass::Fatal,
                NatsErrorKind::Invalid => ErrorClass::Permanent,
                NatsErrorKind::JetStream => ErrorClass::Fatal,
                NatsErrorKind::Connection | NatsErrorKind::Timeout | NatsErrorKind::Other => ErrorClass::Retryable,
            },
            Self::InvalidMessage(_) => ErrorClass::Permanent,
            Self::Timeout { .. } => ErrorClass::Retryable,
            Self::Closed => ErrorClass::Fatal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Config { .. } => "bus_config",
            Self::Kafka { .. } => match self.class() {
                ErrorClass::Retryable => "kafka_transient",
                ErrorClass::Permanent => "kafka_rejected",
                ErrorClass::Fatal => "kafka_fatal",
            },
            Self::Nats { kind, .. } => match kind {
                NatsErrorKind::Connection => "nats_connection",
                NatsErrorKind::Auth => "nats_auth",
                NatsErrorKind::Tls => "nats_tls",
                NatsErrorKind::Timeout => "nats_timeout",
                NatsErrorKind::JetStream => "nats_jetstream",
                NatsErrorKind::Invalid => "nats_invalid",
                NatsErrorKind::Other => "nats_other",
            },
            Self::InvalidMessage(_) => "bus_invalid_message",
            Self::Timeout { .. } => "bus_timeout",
            Self::Closed => "bus_closed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_follow_librdkafka_codes() {
        let transient = BusError::kafka("publish", KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut));
        assert_eq!(transient.class(), ErrorClass::Retryable);
        assert_eq!(transient.code(), "kafka_transient");
        let too_big = BusError::kafka("publish", KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge));
        assert_eq!(too_big.class(), ErrorClass::Permanent);
        let auth =
            BusError::kafka("publish", KafkaError::MessageProduction(RDKafkaErrorCode::SaslAuthenticationFailed));
        assert_eq!(auth.class(), ErrorClass::Fatal);
        let rebalance = BusError::kafka("commit", KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress));
        assert!(rebalance.is_retryable());
        assert_eq!(BusError::config("x", "y").class(), ErrorClass::Fatal);
        assert_eq!(BusError::nats("connect", NatsErrorKind::Auth, "no").code(), "nats_auth");
    }
}
