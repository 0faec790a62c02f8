//! W3C trace context across the gateway: the caller's `traceparent` makes
//! the request span its child; each upstream attempt is sent with its own
//! span's `traceparent` (and the `tracestate` it carries).

use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header of the W3C trace context.
const TRACEPARENT: &str = "traceparent";
/// Vendor data of the W3C trace context.
const TRACESTATE: &str = "tracestate";

/// Makes `span` a child of the caller's trace, when `headers` carry a
/// valid `traceparent`; an invalid one is ignored (the span starts a trace
/// of its own).
pub(crate) fn adopt_parent(span: &Span, headers: &HeaderMap) {
    if span.is_disabled() || !headers.contains_key(TRACEPARENT) {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Replaces the `traceparent` (and `tracestate`) in `headers` with
/// `span`'s, when the span is exported; otherwise leaves them as they are.
pub(crate) fn send_as(span: &Span, headers: &mut HeaderMap) {
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return;
    }
    // The caller's `tracestate` goes on only as our span carries it (that
    // of its trace), and an empty one not at all.
    headers.remove(TRACESTATE);
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    if headers
        .get(TRACESTATE)
        .is_some_and(|state| state.as_bytes().is_empty())
    {
        headers.remove(TRACESTATE);
    }
}
