//! The response future of [`ObserveAttempt`](super::ObserveAttempt): records
//! the attempt's outcome in its span, its metrics and its failure log.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tracing::Span;
use understudy_core::events::Event;
use understudy_core::{Attempt, AttemptLog, BoxError, Classify, Operation, Outcome};

use super::Shared;
use crate::body::{FirstByte, TtfbBody};
use crate::context::with_current;
use crate::telemetry::{log_provider_failure, millis};

pin_project! {
    /// The response future of [`ObserveAttempt`](super::ObserveAttempt).
    pub struct ResponseFuture<F> {
        #[pin]
        pub(super) future: F,
        pub(super) span: Span,
        pub(super) start: Instant,
        pub(super) log: Option<AttemptLog>,
        pub(super) attempt: Attempt,
        pub(super) operation: Operation,
        pub(super) shared: Arc<Shared>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<TtfbBody<ResBody>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = ready!(this.future.poll(cx)).map_err(Into::into);
        let latency = this.start.elapsed();
        let classifier = &this.shared.classifier;
        let (outcome, status) = match &result {
            Ok(response) => (
                classifier.classify_response(response),
                Some(response.status()),
            ),
            Err(error) => (classifier.classify_error(&**error), None),
        };
        let shared = &**this.shared;
        let kind = outcome.kind();
        this.span.record("outcome", kind.as_str());
        if let Some(status) = status {
            this.span.record("status", status.as_u16());
        }
        this.span.record("latency_ms", millis(latency));
        if !this.span.is_disabled() {
            record_semconv(this.span, this.shared, status, outcome);
        }
        let operation = *this.operation;
        shared.attempts(operation, kind).increment(1);
        shared.duration(operation).record(latency.as_secs_f64());
        if let Some(log) = this.log.take() {
            log.sent(Arc::clone(&shared.provider), status, kind, latency);
        }
        match &shared.observer {
            Some(observer) => observer.on_event(&Event::AttemptFinished {
                provider: &shared.provider,
                model: &shared.model,
                attempt: *this.attempt,
                outcome,
                status,
                latency,
            }),
            None if outcome.is_provider_failure() => log_provider_failure(
                &shared.provider,
                &shared.model,
                *this.attempt,
                outcome,
                status,
                latency,
            ),
            None => {}
        }
        Poll::Ready(result.map(|response| {
            let first = outcome.is_success().then(|| FirstByte {
                start: *this.start,
                histogram: shared.ttfb(operation),
                span: this.span.clone(),
            });
            response.map(|body| TtfbBody::new(body, first))
        }))
    }
}

/// Records the trace export's attributes of the finished attempt; a
/// successful one also names the served model and system on the request
/// span.
fn record_semconv(span: &Span, shared: &Shared, status: Option<StatusCode>, outcome: Outcome) {
    if let Some(status) = status {
        span.record("http.response.status_code", status.as_u16());
    }
    if outcome.is_success() {
        span.record("gen_ai.response.model", &*shared.model);
        with_current(|current| {
            if let Some(request) = current.span() {
                request.record("gen_ai.response.model", &*shared.model);
                request.record("gen_ai.system", shared.system);
            }
        });
    } else {
        span.record("error.type", outcome.kind().as_str());
        if outcome.is_provider_failure() {
            span.record("otel.status_code", "error");
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("provider", &self.shared.provider)
            .field("attempt", &self.attempt)
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}
