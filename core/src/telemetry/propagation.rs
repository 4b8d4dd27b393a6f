//! W3C trace context (`traceparent`, `tracestate`) in message headers, so that one trace runs from the
//! source's poll through the bus to the sink's Dastra request.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Header name of the W3C trace parent.
pub const TRACEPARENT: &str = "traceparent";

struct HeaderInjector<'a>(&'a mut Vec<(String, Vec<u8>)>);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.0.push((key.to_owned(), value.into_bytes()));
    }
}

struct HeaderExtractor<'a, V>(&'a [(String, V)]);

impl<V: AsRef<[u8]>> Extractor for HeaderExtractor<'_, V> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).and_then(|(_, v)| std::str::from_utf8(v.as_ref()).ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Writes the trace context of `span` into `headers`. Returns false (and writes nothing) when the
/// span has no valid context, e.g. when no OpenTelemetry layer is installed; callers that forward a
/// message keep its existing `traceparent` then.
pub fn inject(span: &tracing::Span, headers: &mut Vec<(String, Vec<u8>)>) -> bool {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return false;
    }
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    true
}

/// Makes the trace context found in `headers` (if any) the parent of `span`. Returns whether a valid
/// remote context was found. Header values as bytes or as text.
pub fn extract_into<V: AsRef<[u8]>>(span: &tracing::Span, headers: &[(String, V)]) -> bool {
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if !cx.span().span_context().is_valid() {
        return false;
    }
    span.set_parent(cx).is_ok()
}

/// The trace id in a `traceparent` header value (`00-<trace id>-<span id>-<flags>`), if well-formed.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_v, id) = (parts.next()?, parts.next()?);
    (id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn a_trace_continues_from_publisher_headers_to_consumer_span() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let mut headers = vec![("ce_id".to_owned(), b"1".to_vec())];
            let publish = tracing::info_span!("publish");
            assert!(inject(&publish, &mut headers));
            let tp = headers.iter().find(|(k, _)| k == TRACEPARENT).map(|(_, v)| String::from_utf8(v.clone()).unwrap());
            let tp = tp.expect("traceparent header written");
            let trace_id = trace_id_of(&tp).expect("well-formed").to_owned();
            drop(publish);

            let consume = tracing::info_span!("consume");
            assert!(extract_into(&consume, &headers));
            let child_trace = consume.context().span().span_context().trace_id().to_string();
            assert_eq!(child_trace, trace_id, "consumer span joins the publisher's trace");
        });
        let _ = provider.force_flush();
        let spans = exporter.get_finished_spans().unwrap();
        assert!(spans.iter().any(|s| s.name == "publish"));
    }

    #[test]
    fn no_context_means_no_header() {
        let mut headers = Vec::new();
        assert!(!inject(&tracing::Span::none(), &mut headers));
        assert!(headers.is_empty());
        assert!(!extract_into(&tracing::Span::none(), &[("traceparent".into(), b"garbage".to_vec())]));
        assert_eq!(
            trace_id_of("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(trace_id_of("nonsense"), None);
    }
}
