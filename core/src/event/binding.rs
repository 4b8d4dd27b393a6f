//! CloudEvents binary content mode for Kafka and NATS: attributes as message headers, payload as
//! the value. Independent of the bus module: it produces and consumes plain header lists, the
//! integrator copies them into rdkafka / async-nats header types.

use chrono::{DateTime, SecondsFormat, Utc};

use super::{ChangeEvent, EntityKey, EventError, SPEC_VERSION, parse_event_type};
use crate::codec::{Codec, CodecError};

/// Header names (Kafka protocol binding of CloudEvents; the same names on NATS).
pub mod headers {
    /// `id`.
    pub const ID: &str = "ce_id";
    /// `source`.
    pub const SOURCE: &str = "ce_source";
    /// `type`.
    pub const TYPE: &str = "ce_type";
    /// `subject` (the entity key).
    pub const SUBJECT: &str = "ce_subject";
    /// `time`.
    pub const TIME: &str = "ce_time";
    /// `specversion`.
    pub const SPECVERSION: &str = "ce_specversion";
    /// `sequence` (extension).
    pub const SEQUENCE: &str = "ce_sequence";
    /// `recordedtime` (extension).
    pub const RECORDEDTIME: &str = "ce_recordedtime";
    /// `datacontenttype`.
    pub const CONTENT_TYPE: &str = "content-type";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl ChangeEvent {
    /// The CloudEvents attributes as message headers (binary content mode), for a value encoded
    /// with `codec`. Times are RFC 3339 UTC with microseconds.
    pub fn ce_headers(&self, codec: &Codec) -> Vec<(String, String)> {
        let mut out = vec![
            (headers::SPECVERSION.to_owned(), SPEC_VERSION.to_owned()),
            (headers::ID.to_owned(), self.id.clone()),
            (headers::SOURCE.to_owned(), self.source.clone()),
            (headers::TYPE.to_owned(), self.event_type()),
            (headers::SUBJECT.to_owned(), self.key.to_string()),
            (headers::TIME.to_owned(), rfc3339(&self.time)),
            (headers::SEQUENCE.to_owned(), self.sequence.clone()),
            (headers::RECORDEDTIME.to_owned(), rfc3339(&self.recorded_time)),
            (headers::CONTENT_TYPE.to_owned(), codec.content_type().to_owned()),
        ];
        if let Some(tp) = &self.traceparent {
            out.push((headers::TRACEPARENT.to_owned(), tp.clone()));
        }
        out
    }

    /// The message value: the payload encoded with `codec` (the topic names the registry subject
    /// in Confluent mode).
    pub async fn encode_value(&self, codec: &Codec, topic: &str) -> Result<Vec<u8>, CodecError> {
        codec.encode(topic, &self.data).await
    }

    /// Reads an event from message headers and value. The payload kind comes from `ce_type`, the
    /// value's format is detected from its bytes (any codec's output decodes, whatever `codec`
    /// encodes with). Header names match case-insensitively; the first occurrence wins.
    /// `ce_recordedtime` may be absent (then it equals `ce_time`), as may `traceparent`.
    pub async fn from_parts(
        headers: &[(String, Vec<u8>)],
        value: &[u8],
        codec: &Codec,
    ) -> Result<ChangeEvent, CodecError> {
        let find = |name: &'static str| -> Result<Option<&str>, CodecError> {
            match headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                None => Ok(None),
                Some((_, v)) => std::str::from_utf8(v).map(Some).map_err(|_| CodecError::MissingHeader(name)),
            }
        };
        let need = |name: &'static str| find(name)?.ok_or(CodecError::MissingHeader(name));
        let time = |name: &'static str, text: &str| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| EventError::InvalidEvent(format!("{name} is not an RFC 3339 time")))
        };

        let spec = need(headers::SPECVERSION)?;
        if spec != SPEC_VERSION {
            return Err(
                EventError::InvalidEvent(format!("unsupported specversion {:?}", super::key::truncate(spec))).into()
            );
        }
        let (kind, op) = parse_event_type(need(headers::TYPE)?)?;
        let key = EntityKey::parse(need(headers::SUBJECT)?)?;
        if key.kind() != kind {
            return Err(EventError::InvalidEvent(format!(
                "subject {key} does not match type {}",
                need(headers::TYPE)?
            ))
            .into());
        }
        let event_time = time(headers::TIME, need(headers::TIME)?)?;
        let recorded_time = match find(headers::RECORDEDTIME)? {
            Some(t) => time(headers::RECORDEDTIME, t)?,
            None => event_time,
        };
        let data = codec.decode(kind, value).await?;
        let event = ChangeEvent {
            id: need(headers::ID)?.to_owned(),
            source: need(headers::SOURCE)?.to_owned(),
            key,
            op,
            sequence: need(headers::SEQUENCE)?.to_owned(),
            time: event_time,
            recorded_time,
            traceparent: find(headers::TRACEPARENT)?.map(str::to_owned),
            data,
        };
        event.validate()?;
        Ok(event)
    }
}
