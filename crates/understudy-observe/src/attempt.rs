//! [`AttemptLayer`]: a span, metrics and a failure log per upstream attempt.

pub mod future;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::{Request, Response};
use metrics::{Counter, Histogram, counter, histogram};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;
use tracing::field::Empty;
use understudy_core::events::SharedObserver;
use understudy_core::{
    Attempt, AttemptLog, BoxError, Classify, Operation, OutcomeKind, SharedClassifier,
};

use self::future::ResponseFuture;
use crate::TARGET;
use crate::body::TtfbBody;
use crate::context::with_current;
use crate::labels::{operation_index, outcome_index};
use crate::names::{ATTEMPT_DURATION_SECONDS, ATTEMPTS_TOTAL, TIME_TO_FIRST_BYTE_SECONDS};
use crate::request::semconv_operation;

/// Instruments one target's upstream attempts with [`ObserveAttempt`].
///
/// Put it in each target stack below retry and health, so it sees every
/// attempt that is really sent (and not the ones health refuses):
/// `RetryLayer → HealthLayer → AttemptLayer → timeout → FirstChunkLayer →
/// provider`.
///
/// # Example
///
/// ```
/// use http::{Request, Response};
/// use tower::{Layer, ServiceExt, service_fn};
/// use understudy_observe::AttemptLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let provider = service_fn(|_: Request<String>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(String::from("{}")))
/// });
/// let service = AttemptLayer::new("openai", "gpt-4o-mini").layer(provider);
/// let response = service.oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # }
/// ```
#[derive(Clone)]
pub struct AttemptLayer {
    shared: Arc<Shared>,
}

struct Shared {
    provider: Arc<str>,
    model: Arc<str>,
    system: Option<&'static str>,
    observer: Option<SharedObserver>,
    classifier: SharedClassifier,
    operations: [OperationMetrics; Operation::ALL.len()],
}

/// The provider's handles for one operation, registered on first use.
#[derive(Default)]
struct OperationMetrics {
    attempts: [OnceLock<Counter>; OutcomeKind::ALL.len()],
    duration: OnceLock<Histogram>,
    ttfb: OnceLock<Histogram>,
}

impl AttemptLayer {
    /// Instruments attempts to `model` at `provider` (names from
    /// configuration: they become metric labels).
    pub fn new(provider: impl Into<Arc<str>>, model: impl Into<Arc<str>>) -> Self {
        Self {
            shared: Arc::new(Shared {
                provider: provider.into(),
                model: model.into(),
                system: None,
                observer: None,
                classifier: SharedClassifier::default(),
                operations: Default::default(),
            }),
        }
    }

    /// Also reports
    /// [`Event::AttemptFinished`](understudy_core::events::Event::AttemptFinished)
    /// to `observer` for every attempt.
    ///
    /// The `provider_failure` log event is then the observer's to emit
    /// ([`Telemetry`](crate::Telemetry) does), so it is not logged twice;
    /// without an observer the layer logs it itself.
    #[must_use]
    pub fn with_observer(self, observer: SharedObserver) -> Self {
        self.rebuild(Some(observer), self.shared.classifier.clone())
    }

    /// Classifies each attempt's result with `classifier` instead of
    /// [`LlmClassifier`](understudy_core::LlmClassifier); give the whole
    /// stack the same one.
    #[must_use]
    pub fn classifier(self, classifier: impl Classify) -> Self {
        self.rebuild(
            self.shared.observer.clone(),
            SharedClassifier::new(classifier),
        )
    }

    /// Names the provider's API in the exported spans' `gen_ai.system`
    /// (`openai`, `anthropic`, `az.ai.openai`, …); without it the
    /// attribute is not set.
    #[must_use]
    pub fn system(self, system: &'static str) -> Self {
        let mut layer = self.rebuild(self.shared.observer.clone(), self.shared.classifier.clone());
        if let Some(shared) = Arc::get_mut(&mut layer.shared) {
            shared.system = Some(system);
        }
        layer
    }

    fn rebuild(&self, observer: Option<SharedObserver>, classifier: SharedClassifier) -> Self {
        Self {
            shared: Arc::new(Shared {
                provider: Arc::clone(&self.shared.provider),
                model: Arc::clone(&self.shared.model),
                system: self.shared.system,
                observer,
                classifier,
                operations: Default::default(),
            }),
        }
    }

    /// The provider name.
    pub fn provider(&self) -> &str {
        &self.shared.provider
    }

    /// The model name.
    pub fn model(&self) -> &str {
        &self.shared.model
    }
}

impl fmt::Debug for AttemptLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptLayer")
            .field("provider", &self.shared.provider)
            .field("model", &self.shared.model)
            .field("observer", &self.shared.observer.is_some())
            .finish()
    }
}

impl<S> Layer<S> for AttemptLayer {
    type Service = ObserveAttempt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveAttempt {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Shared {
    /// The cached handles for `operation`; `None` for an operation this
    /// crate does not know yet (its handles are registered on each use).
    fn operation(&self, operation: Operation) -> Option<&OperationMetrics> {
        operation_index(operation).and_then(|i| self.operations.get(i))
    }

    fn attempts(&self, operation: Operation, kind: OutcomeKind) -> Counter {
        let register = || {
            counter!(
                ATTEMPTS_TOTAL,
                "provider" => Arc::clone(&self.provider),
                "operation" => operation.as_str(),
                "outcome" => kind.as_str(),
            )
        };
        match self
            .operation(operation)
            .zip(outcome_index(kind))
            .and_then(|(handles, i)| handles.attempts.get(i))
        {
            Some(counter) => counter.get_or_init(register).clone(),
            None => register(),
        }
    }

    fn duration(&self, operation: Operation) -> Histogram {
        let register = || {
            histogram!(
                ATTEMPT_DURATION_SECONDS,
                "provider" => Arc::clone(&self.provider),
                "operation" => operation.as_str(),
            )
        };
        match self.operation(operation) {
            Some(handles) => handles.duration.get_or_init(register).clone(),
            None => register(),
        }
    }

    fn ttfb(&self, operation: Operation) -> Histogram {
        let register = || {
            histogram!(
                TIME_TO_FIRST_BYTE_SECONDS,
                "provider" => Arc::clone(&self.provider),
                "operation" => operation.as_str(),
            )
        };
        match self.operation(operation) {
            Some(handles) => handles.ttfb.get_or_init(register).clone(),
            None => register(),
        }
    }
}

/// Instruments each upstream attempt.
///
/// - An `llm.attempt` span (DEBUG, like `llm.request`) with `provider`, `model`, `operation`
///   (from the [`Operation`] request extension: `chat` without one,
///   `messages` or `embeddings`), `attempt` (from the [`Attempt`] request
///   extension; 1 without one), and, once the
///   attempt ends, `outcome` (an [`OutcomeKind`] name), `status`,
///   `latency_ms` and, on the first body byte, `ttfb_ms`. The inner call
///   and future run in it. For the trace export (feature `otlp`) it also
///   has the OpenTelemetry attributes (`gen_ai.*`, `understudy.provider`,
///   `understudy.attempt`, `understudy.route`,
///   `http.response.status_code`, `error.type`), is named
///   `{operation} {model}` there, and the request is sent with the span's
///   own `traceparent` (replacing the caller's) when the span is exported.
/// - The result is classified by the layer's classifier,
///   [`LlmClassifier`](understudy_core::LlmClassifier) by default (which trusts an
///   [`Outcome`](understudy_core::Outcome) the provider put in the response
///   extensions).
/// - `understudy_attempts_total{provider,operation,outcome}` and
///   `understudy_attempt_duration_seconds{provider,operation}` when the
///   response head or error arrives;
///   `understudy_time_to_first_byte_seconds{provider,operation}` on the
///   first data frame of a successful attempt's body (the response
///   body is wrapped in a [`TtfbBody`], generic over the inner body; box it
///   with `ResponseBody::new` where a target stack needs
///   [`ResponseBody`](understudy_core::ResponseBody)).
/// - A provider failure logs a `provider_failure` event (WARN) with
///   `provider`, `model`, `attempt`, `kind`, `status`, `latency_ms`, or
///   reports
///   [`Event::AttemptFinished`](understudy_core::events::Event::AttemptFinished)
///   to the layer's observer.
/// - The attempt (provider, status or outcome, duration to the response
///   head) is appended to the request's [`AttemptLog`], when it carries one
///   ([`ObserveLayer`](crate::ObserveLayer) inserts it).
///
/// Metric handles are registered once per layer and operation, on first
/// use, against the recorder installed then: install the exporter before serving.
/// Errors become [`BoxError`].
pub struct ObserveAttempt<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for ObserveAttempt<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> ObserveAttempt<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, by value.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for ObserveAttempt<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserveAttempt")
            .field("inner", &self.inner)
            .field("provider", &self.shared.provider)
            .field("model", &self.shared.model)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ObserveAttempt<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<TtfbBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        #[cfg(feature = "otlp")]
        let mut request = request;
        let attempt = request
            .extensions()
            .get::<Attempt>()
            .copied()
            .unwrap_or(Attempt::FIRST);
        let operation = Operation::of(request.extensions());
        let span = tracing::debug_span!(
            target: TARGET,
            "llm.attempt",
            provider = &*self.shared.provider,
            model = &*self.shared.model,
            operation = operation.as_str(),
            attempt = attempt.0,
            outcome = Empty,
            status = Empty,
            latency_ms = Empty,
            ttfb_ms = Empty,
            "otel.name" = Empty,
            "otel.kind" = "client",
            "otel.status_code" = Empty,
            "gen_ai.operation.name" = semconv_operation(operation),
            "gen_ai.system" = self.shared.system,
            "gen_ai.request.model" = &*self.shared.model,
            "gen_ai.response.model" = Empty,
            "understudy.provider" = &*self.shared.provider,
            "understudy.attempt" = attempt.0,
            "understudy.route" = Empty,
            "http.response.status_code" = Empty,
            "error.type" = Empty,
        );
        if !span.is_disabled() {
            span.record(
                "otel.name",
                format!("{} {}", semconv_operation(operation), self.shared.model),
            );
            with_current(|current| {
                if let Some(route) = current.route() {
                    span.record("understudy.route", route);
                }
            });
            // The upstream joins the trace as a child of this attempt.
            #[cfg(feature = "otlp")]
            crate::otlp::propagate::send_as(&span, request.headers_mut());
        }
        let log = request.extensions().get::<AttemptLog>().cloned();
        let start = Instant::now();
        let future = span.in_scope(|| self.inner.call(request));
        ResponseFuture {
            future,
            span,
            start,
            log,
            attempt,
            operation,
            shared: Arc::clone(&self.shared),
        }
    }
}
