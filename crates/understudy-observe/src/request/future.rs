//! The response future of [`Observe`](super::Observe): closes the request's
//! span and records its metrics and its `request_finished` event.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use std::fmt::Write as _;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tracing::Span;
use understudy_core::{
    AttemptLog, CallerName, Classify, Operation, Outcome, RouteName, SharedClassifier,
};

use super::{ATTEMPT_CHAIN_HEADER, Routes, SERVER_TIMING_HEADER, classify_error, record_headers};
use crate::TARGET;
use crate::context::{RequestFields, with_current};
use crate::telemetry::millis;

pin_project! {
    /// The response future of [`Observe`](super::Observe).
    pub struct ResponseFuture<F> {
        #[pin]
        pub(super) future: F,
        pub(super) span: Span,
        pub(super) fields: Arc<RequestFields>,
        pub(super) start: Instant,
        pub(super) log: AttemptLog,
        pub(super) route: Option<RouteName>,
        pub(super) operation: Operation,
        pub(super) routes: Arc<Routes>,
        pub(super) classifier: SharedClassifier,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: 'static,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let _current = this.fields.enter();
        let mut result = ready!(this.future.poll(cx));
        let latency = this.start.elapsed();
        let upstream = this.log.upstream().min(latency);
        let overhead = latency.saturating_sub(upstream);
        let sent = this.log.sent_count() > 0;
        if let Ok(response) = &mut result {
            evidence(response.headers_mut(), this.log, overhead, upstream);
        }
        let span = &*this.span;
        let classifier = &*this.classifier;
        let (outcome, route, key) = match &result {
            Ok(response) => {
                let route = response
                    .extensions()
                    .get::<RouteName>()
                    .or(this.route.as_ref());
                if let Some(route) = route
                    && this.route.is_none()
                {
                    span.record("route", route.as_str());
                }
                span.record("status", response.status().as_u16());
                record_headers(span, response.headers());
                let key = response.extensions().get::<CallerName>();
                (classifier.classify_response(response), route, key)
            }
            Err(error) => (classify_error(classifier, error), this.route.as_ref(), None),
        };
        let kind = outcome.kind();
        span.record("outcome", kind.as_str());
        span.record("latency_ms", millis(latency));
        if !span.is_disabled() {
            record_semconv(span, &result, route, &outcome);
        }
        this.routes.get(route.map(RouteName::as_str)).record(
            key.map(CallerName::as_str),
            *this.operation,
            kind,
            latency.as_secs_f64(),
            (
                overhead.as_secs_f64(),
                sent.then_some(upstream.as_secs_f64()),
            ),
        );
        let latency_ms = millis(latency);
        match outcome {
            Outcome::Success => tracing::debug!(
                target: TARGET,
                event = "request_finished",
                outcome = kind.as_str(),
                latency_ms,
                "request finished",
            ),
            Outcome::ClientError(_) => tracing::info!(
                target: TARGET,
                event = "request_finished",
                outcome = kind.as_str(),
                latency_ms,
                "request finished with a client error",
            ),
            _ => with_current(|current| {
                tracing::warn!(
                    target: TARGET,
                    event = "request_finished",
                    outcome = kind.as_str(),
                    latency_ms,
                    request_id = current.request_id(),
                    route = route.map(RouteName::as_str).or(current.route()),
                    model = current.model(),
                    key = key.map(CallerName::as_str).or(current.key()),
                    "request failed",
                );
            }),
        }
        Poll::Ready(result)
    }
}

/// Records the trace export's attributes of the finished request.
fn record_semconv<ResBody, E>(
    span: &Span,
    result: &Result<Response<ResBody>, E>,
    route: Option<&RouteName>,
    outcome: &Outcome,
) {
    if let Some(route) = route {
        span.record("understudy.route", route.as_str());
    }
    if let Ok(response) = result {
        span.record("http.response.status_code", response.status().as_u16());
    }
    if !outcome.is_success() {
        span.record("error.type", outcome.kind().as_str());
    }
    if outcome.is_provider_failure() || result.is_err() {
        span.record("otel.status_code", "error");
    }
}

/// Writes `Server-Timing` and, when anything was tried or skipped,
/// `x-understudy-attempt-chain`. Each value is written once into the
/// buffer the header keeps (no float formatting, no second copy): this
/// runs on every response.
fn evidence(headers: &mut HeaderMap, log: &AttemptLog, overhead: Duration, upstream: Duration) {
    let mut timing = String::with_capacity(64);
    let _ = write!(
        timing,
        "understudy;dur={}, upstream;dur={}",
        Millis(overhead),
        Millis(upstream),
    );
    if let Ok(value) = HeaderValue::from_maybe_shared(exact_bytes(timing)) {
        headers.insert(SERVER_TIMING_HEADER, value);
    }
    if !log.is_empty()
        && let Ok(value) = HeaderValue::from_maybe_shared(exact_bytes(log.chain()))
    {
        headers.insert(ATTEMPT_CHAIN_HEADER, value);
    }
}

/// A header's text as `Bytes`: `Bytes` takes a buffer with no spare
/// capacity as it is, where any other costs it a second allocation; the
/// allocator usually shrinks a small buffer in place.
fn exact_bytes(text: String) -> bytes::Bytes {
    let mut buffer = text.into_bytes();
    buffer.shrink_to_fit();
    bytes::Bytes::from(buffer)
}

/// A duration in milliseconds with three decimals (`12.345`), written
/// with integer arithmetic.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.as_micros();
        write!(f, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("route", &self.route)
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Millis;

    #[test]
    fn milliseconds_have_three_decimals() {
        for (duration, text) in [
            (Duration::from_micros(12_345), "12.345"),
            (Duration::from_millis(5), "5.000"),
            (Duration::from_nanos(999), "0.000"),
            (Duration::from_micros(1_000_001), "1000.001"),
            (Duration::MAX, "18446744073709551615999.999"),
        ] {
            assert_eq!(Millis(duration).to_string(), text);
        }
    }
}
