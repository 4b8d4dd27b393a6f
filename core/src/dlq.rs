//! The dead-letter record's headers, written by the sink (`dastra_connect_dastra::sink::dlq`) and by
//! every source (`crate::source::dlq`), read by `dastra-connect dlq list|redrive`: one place names
//! them so a writer and a reader cannot drift apart. Also the error-text cut both writers apply.

/// Prefix of every header the DLQ adds; `dlq redrive` drops these before re-sending a record.
pub const PREFIX: &str = "dastra_dlq_";
/// Header: stable reason code (`invalid_enum`, `mapping_error`, `parked`, …).
pub const H_REASON: &str = "dastra_dlq_reason";
/// Header: the error, as an operator sentence (secrets redacted), at most [`MAX_ERROR`] bytes.
pub const H_ERROR: &str = "dastra_dlq_error";
/// Header: the connector that dead-lettered it.
pub const H_CONNECTOR: &str = "dastra_dlq_connector";
/// Header: when (RFC 3339).
pub const H_TIME: &str = "dastra_dlq_time";
/// Header (sink): HTTP status Dastra answered, if any.
pub const H_STATUS: &str = "dastra_dlq_status";
/// Header (sink): attempts made.
pub const H_ATTEMPTS: &str = "dastra_dlq_attempts";
/// Header (sink): original topic.
pub const H_TOPIC: &str = "dastra_dlq_topic";
/// Header (sink): original partition.
pub const H_PARTITION: &str = "dastra_dlq_partition";
/// Header (sink): original offset.
pub const H_OFFSET: &str = "dastra_dlq_offset";
/// Header (source): the source stream (table, object type) of the record.
pub const H_SOURCE_STREAM: &str = "dastra_dlq_source_stream";
/// Header (source): the record's id in the source system.
pub const H_SOURCE_RECORD: &str = "dastra_dlq_source_record";
/// Header (source): the record's version.
pub const H_SOURCE_VERSION: &str = "dastra_dlq_source_version";
/// Set by `dlq redrive` on each re-sent record: the reason it was dead-lettered for. A redriven
/// record that caused its key's parking (any reason but `parked`) un-parks the key when the sink
/// reads it, so it is applied even if the sink has not yet seen the un-parking written by the
/// command (state stores of other processes follow with some delay).
pub const H_REDRIVE_REASON: &str = "dastra_redrive_reason";

/// Longest error text kept in [`H_ERROR`], in bytes (a header, not a log).
pub const MAX_ERROR: usize = 1000;

/// `error` cut to at most [`MAX_ERROR`] bytes on a character boundary, with `…` when cut.
pub fn truncate_error(error: &str) -> String {
    if error.len() <= MAX_ERROR {
        return error.to_owned();
    }
    let mut cut = MAX_ERROR;
    while !error.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = error[..cut].to_owned();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        assert_eq!(truncate_error("short"), "short");
        let exact = "x".repeat(MAX_ERROR);
        assert_eq!(truncate_error(&exact), exact);
        // 999 ASCII bytes then a 2-byte character straddling the limit: cut before it.
        let text = format!("{}é{}", "x".repeat(MAX_ERROR - 1), "y".repeat(10));
        let cut = truncate_error(&text);
        assert_eq!(cut, format!("{}…", "x".repeat(MAX_ERROR - 1)));
    }

    #[test]
    fn every_dlq_header_has_the_prefix() {
        for h in [
            H_REASON,
            H_ERROR,
            H_CONNECTOR,
            H_TIME,
            H_STATUS,
            H_ATTEMPTS,
            H_TOPIC,
            H_PARTITION,
            H_OFFSET,
            H_SOURCE_STREAM,
            H_SOURCE_RECORD,
            H_SOURCE_VERSION,
        ] {
            assert!(h.starts_with(PREFIX), "{h}");
        }
        assert!(!H_REDRIVE_REASON.starts_with(PREFIX), "kept by a second redrive");
    }
}
