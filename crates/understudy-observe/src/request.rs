//! [`ObserveLayer`]: the `llm.request` span and the request metrics.

pub mod future;

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, Request, Response, header};
use metrics::{Counter, Histogram, counter, histogram};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;
use understudy_core::request_id::request_id;
use understudy_core::{
    AttemptLog, BoxError, Classify, FailureKind, Operation, Outcome, OutcomeKind, RouteName,
    SharedClassifier,
};

use self::future::ResponseFuture;
use crate::TARGET;
use crate::context::RequestFields;
use crate::labels::{
    MAX_KEYS, MAX_ROUTES, NO_KEY, OTHER_KEY, OTHER_ROUTE, UNKNOWN_ROUTE, operation_index,
    outcome_index,
};
use crate::names::{OVERHEAD_SECONDS, REQUEST_DURATION_SECONDS, REQUESTS_TOTAL, UPSTREAM_SECONDS};

// Header names are constants: a `&str` name is parsed and validated again
// on every insert and lookup.
/// The header naming the provider that served a response.
const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-understudy-provider");
/// The header counting the upstream attempts a response took.
const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("x-understudy-attempts");
/// The header listing every attempt and skipped target of a response.
pub const ATTEMPT_CHAIN_HEADER: HeaderName = HeaderName::from_static("x-understudy-attempt-chain");
/// The standard header splitting a response's time between the gateway and
/// the upstream attempts.
pub const SERVER_TIMING_HEADER: HeaderName = HeaderName::from_static("server-timing");

/// Wraps a whole stack with [`Observe`]: put it outermost.
///
/// # Example
///
/// ```
/// use http::{Request, Response};
/// use tower::{Layer, ServiceExt, service_fn};
/// use understudy_core::RouteName;
/// use understudy_observe::ObserveLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stack = service_fn(|_: Request<String>| async {
///     let mut response = Response::new(String::from("{}"));
///     response.extensions_mut().insert(RouteName::new("chat"));
///     response.headers_mut().insert("x-understudy-provider", "openai".parse().unwrap());
///     Ok::<_, std::convert::Infallible>(response)
/// });
/// let service = ObserveLayer::new().layer(stack);
/// let response = service.oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct ObserveLayer {
    routes: Arc<Routes>,
    classifier: SharedClassifier,
}

impl ObserveLayer {
    /// A layer with its own metric handle cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies each request's final answer with `classifier` instead of
    /// [`LlmClassifier`](understudy_core::LlmClassifier); give the whole
    /// stack the same one.
    #[must_use]
    pub fn classifier(mut self, classifier: impl Classify) -> Self {
        self.classifier = SharedClassifier::new(classifier);
        self
    }
}

impl fmt::Debug for ObserveLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserveLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            routes: Arc::clone(&self.routes),
            classifier: self.classifier.clone(),
        }
    }
}

/// Metric handles per route label, registered on first use; each route
/// holds one set per caller key name and operation, so the cache is keyed
/// by (route, key, operation) and stays within [`MAX_ROUTES`] routes times
/// [`MAX_KEYS`] key names times the few operations.
#[derive(Default)]
struct Routes {
    known: RwLock<HashMap<Arc<str>, Arc<RouteMetrics>>>,
    unknown: OnceLock<Arc<RouteMetrics>>,
    other: OnceLock<Arc<RouteMetrics>>,
}

/// One route's handles, by caller key name.
struct RouteMetrics {
    route: Arc<str>,
    /// Requests of no identified caller (`key=""`).
    anonymous: KeyMetrics,
    keys: RwLock<HashMap<Arc<str>, Arc<KeyMetrics>>>,
    other: OnceLock<Arc<KeyMetrics>>,
    overhead: OnceLock<Histogram>,
    upstream: OnceLock<Histogram>,
}

/// One route's handles for one caller key name, by operation.
struct KeyMetrics {
    key: Arc<str>,
    operations: [OperationMetrics; Operation::ALL.len()],
}

/// One route's handles for one key name and operation.
#[derive(Default)]
struct OperationMetrics {
    requests: [OnceLock<Counter>; OutcomeKind::ALL.len()],
    duration: OnceLock<Histogram>,
}

impl RouteMetrics {
    fn new(route: Arc<str>) -> Arc<Self> {
        Arc::new(Self {
            route,
            anonymous: KeyMetrics::new(Arc::from(NO_KEY)),
            keys: RwLock::default(),
            other: OnceLock::new(),
            overhead: OnceLock::new(),
            upstream: OnceLock::new(),
        })
    }

    /// Records the split of one request's time to its response head: the
    /// gateway's own and, if any attempt was sent, the upstream's.
    fn record_split(&self, overhead: f64, upstream: Option<f64>) {
        self.overhead
            .get_or_init(|| histogram!(OVERHEAD_SECONDS, "route" => Arc::clone(&self.route)))
            .record(overhead);
        if let Some(upstream) = upstream {
            self.upstream
                .get_or_init(|| histogram!(UPSTREAM_SECONDS, "route" => Arc::clone(&self.route)))
                .record(upstream);
        }
    }

    /// The handles for the caller key name `key` (`None`: no identified
    /// caller).
    fn key(&self, key: Option<&str>) -> KeyRef<'_> {
        let Some(key) = key else {
            return KeyRef::Borrowed(&self.anonymous);
        };
        if let Some(metrics) = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return KeyRef::Shared(Arc::clone(metrics));
        }
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(metrics) = keys.get(key) {
            return KeyRef::Shared(Arc::clone(metrics));
        }
        if keys.len() >= MAX_KEYS {
            return KeyRef::Shared(Arc::clone(
                self.other
                    .get_or_init(|| Arc::new(KeyMetrics::new(Arc::from(OTHER_KEY)))),
            ));
        }
        let name: Arc<str> = Arc::from(key);
        let metrics = Arc::new(KeyMetrics::new(Arc::clone(&name)));
        keys.insert(name, Arc::clone(&metrics));
        KeyRef::Shared(metrics)
    }

    /// Records one request: its outcome, its duration and the split of
    /// that duration (`upstream`: if any attempt was sent).
    fn record(
        &self,
        key: Option<&str>,
        operation: Operation,
        kind: OutcomeKind,
        seconds: f64,
        split: (f64, Option<f64>),
    ) {
        self.record_split(split.0, split.1);
        let handles = self.key(key);
        let handles: &KeyMetrics = match &handles {
            KeyRef::Borrowed(handles) => handles,
            KeyRef::Shared(handles) => handles,
        };
        let requests = || {
            counter!(
                REQUESTS_TOTAL,
                "route" => Arc::clone(&self.route),
                "operation" => operation.as_str(),
                "outcome" => kind.as_str(),
                "key" => Arc::clone(&handles.key),
            )
        };
        let duration = || {
            histogram!(
                REQUEST_DURATION_SECONDS,
                "route" => Arc::clone(&self.route),
                "operation" => operation.as_str(),
                "key" => Arc::clone(&handles.key),
            )
        };
        let Some(handles) = operation_index(operation).and_then(|i| handles.operations.get(i))
        else {
            requests().increment(1);
            duration().record(seconds);
            return;
        };
        match outcome_index(kind).and_then(|i| handles.requests.get(i)) {
            Some(counter) => counter.get_or_init(requests).increment(1),
            None => requests().increment(1),
        }
        handles.duration.get_or_init(duration).record(seconds);
    }
}

/// A route's handles for one key name: its own for no caller, shared
/// otherwise.
enum KeyRef<'a> {
    Borrowed(&'a KeyMetrics),
    Shared(Arc<KeyMetrics>),
}

impl KeyMetrics {
    fn new(key: Arc<str>) -> Self {
        Self {
            key,
            operations: Default::default(),
        }
    }
}

impl Routes {
    fn get(&self, route: Option<&str>) -> Arc<RouteMetrics> {
        let Some(route) = route else {
            return Arc::clone(
                self.unknown
                    .get_or_init(|| RouteMetrics::new(Arc::from(UNKNOWN_ROUTE))),
            );
        };
        if let Some(metrics) = self
            .known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
        {
            return Arc::clone(metrics);
        }
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(metrics) = known.get(route) {
            return Arc::clone(metrics);
        }
        if known.len() >= MAX_ROUTES {
            return Arc::clone(
                self.other
                    .get_or_init(|| RouteMetrics::new(Arc::from(OTHER_ROUTE))),
            );
        }
        let name: Arc<str> = Arc::from(route);
        let metrics = RouteMetrics::new(Arc::clone(&name));
        known.insert(name, Arc::clone(&metrics));
        metrics
    }
}

/// Observes each caller request.
///
/// - An `llm.request` span (DEBUG: not built unless a subscriber wants it,
///   such as the OTLP export or `RUST_LOG=understudy=debug`) with the fields `request_id`, `route`,
///   `operation`, `model`, `key`, `stream`, `outcome`, `status`,
///   `latency_ms`, `provider` and `attempts`. The inner `call` and its future run in it,
///   so every event and `llm.attempt` span below is its child.
///   - `request_id`: the request's `x-request-id` header, when it is
///     [well formed](understudy_core::request_id::is_well_formed).
///   - `route`: the [`RouteName`] in the response extensions (the router
///     inside copies it there), else in the request extensions.
///   - `operation`: the [`Operation`] in the request extensions (set by
///     the endpoint), `chat` without one: `chat`, `messages` or
///     `embeddings`.
///   - `model`: left empty here, since the body is not parsed at this
///     layer; a layer that reads the request records the requested model
///     with [`record_model`](crate::record_model) while the request is
///     served.
///   - `key`: left empty here; a layer that identifies the caller records
///     the name of the caller's key (never the key) with
///     [`record_key`](crate::record_key).
///
///   For the trace export (feature `otlp`) the span also has the
///   OpenTelemetry attributes (`gen_ai.*`, `understudy.route`,
///   `understudy.fallback.reason`, `http.response.status_code`,
///   `error.type`), is named `{operation} {model}` there, and is the child
///   of the caller's W3C `traceparent` when the request carries a valid
///   one.
/// - The request's `request_id`, `route`, `model` and `key` are kept beside
///   the span while its future runs: the WARN and ERROR events logged below
///   carry them even when the span is not built.
///   - `stream`: whether the response is `text/event-stream`.
///   - `provider` and `attempts`: from the `x-understudy-provider` and
///     `x-understudy-attempts` response headers.
///   - `outcome`: an [`OutcomeKind`] name, from the
///     [`Outcome`] in the response extensions, else from the status
///     (2xx `success`, 408 `timeout`, 429 `rate_limited`, other 4xx
///     `client_error`, 503/529 `overloaded`, other 5xx `server_error`).
///     An error from the inner service is classified by the layer's
///     classifier ([`LlmClassifier`](understudy_core::LlmClassifier) by default)
///     if it is a [`BoxError`], and counted as `transport` otherwise.
/// - `understudy_requests_total{route,operation,outcome,key}` and
///   `understudy_request_duration_seconds{route,operation,key}` when the
///   response head is ready (for a stream, after its first chunk: the body
///   streams on after the span closes). `route` is `unknown` without a
///   [`RouteName`]; past 256 distinct routes, further ones are counted as
///   `other`. `operation` is the span's. `key` is the [`CallerName`] in
///   the response extensions, `""` without one (no caller authentication,
///   or a caller not identified); past 256 distinct names on one route,
///   further ones are counted as `other`.
/// - Every response gets two headers (and the time split two histograms),
///   from the [`AttemptLog`] the layer inserts in the request extensions
///   (the [`AttemptLayer`](crate::AttemptLayer) and fallback append to it):
///   - `Server-Timing: understudy;dur=<ms>, upstream;dur=<ms>`: the time
///     from the request to its response head spent in upstream attempts
///     (the sum of their times to their response heads, at most the
///     total), and the rest, the gateway's own (backoff waits included);
///     milliseconds with three decimals;
///   - `x-understudy-attempt-chain`: every attempt and skipped target in
///     order, as [`AttemptLog::chain`] writes it
///     (`primary;status=503;ms=12, backup;status=200;ms=240`), when there
///     was at least one;
///   - `understudy_overhead_seconds{route}` (the gateway's own time, every
///     request) and `understudy_upstream_seconds{route}` (the upstream
///     time, for requests that sent at least one attempt).
/// - A `request_finished` event: DEBUG for a success, INFO for a client
///   error, WARN when the caller got a provider failure.
///
/// A request whose caller goes away before the response head is ready is
/// not counted (its span still closes).
///
/// Responses and errors pass through unchanged (an infallible stack stays
/// infallible, as axum wants). Metric handles are cached per route, key
/// name and operation in the layer.
///
/// [`CallerName`]: understudy_core::CallerName
pub struct Observe<S> {
    inner: S,
    routes: Arc<Routes>,
    classifier: SharedClassifier,
}

impl<S: Clone> Clone for Observe<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            routes: Arc::clone(&self.routes),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S> Observe<S> {
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

impl<S: fmt::Debug> fmt::Debug for Observe<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observe")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Observe<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let log = if let Some(log) = request.extensions().get::<AttemptLog>() {
            log.clone()
        } else {
            let log = AttemptLog::new();
            request.extensions_mut().insert(log.clone());
            log
        };
        let route = request.extensions().get::<RouteName>().cloned();
        let operation = Operation::of(request.extensions());
        let span = tracing::debug_span!(
            target: TARGET,
            "llm.request",
            request_id = Empty,
            route = Empty,
            operation = operation.as_str(),
            model = Empty,
            key = Empty,
            stream = Empty,
            outcome = Empty,
            status = Empty,
            latency_ms = Empty,
            provider = Empty,
            attempts = Empty,
            "otel.name" = Empty,
            "otel.kind" = "server",
            "otel.status_code" = Empty,
            "gen_ai.operation.name" = semconv_operation(operation),
            "gen_ai.system" = Empty,
            "gen_ai.request.model" = Empty,
            "gen_ai.response.model" = Empty,
            "gen_ai.usage.input_tokens" = Empty,
            "gen_ai.usage.output_tokens" = Empty,
            "understudy.route" = Empty,
            "understudy.fallback.reason" = Empty,
            "http.response.status_code" = Empty,
            "error.type" = Empty,
        );
        if let Some(route) = &route {
            span.record("route", route.as_str());
            span.record("understudy.route", route.as_str());
        }
        // The caller's (or the edge's) `x-request-id`, when it is well
        // formed: a caller's header never floods a log line.
        let id = request_id(request.headers());
        if let Some(id) = id {
            span.record("request_id", id);
        }
        #[cfg(feature = "otlp")]
        crate::otlp::propagate::adopt_parent(&span, request.headers());
        let fields = RequestFields::new(
            id,
            route.as_ref().map(RouteName::as_str),
            operation,
            span.clone(),
        );
        let start = Instant::now();
        let future = {
            let _current = fields.enter();
            span.in_scope(|| self.inner.call(request))
        };
        ResponseFuture {
            future,
            span,
            fields,
            start,
            log,
            route,
            operation,
            routes: Arc::clone(&self.routes),
            classifier: self.classifier.clone(),
        }
    }
}

fn record_headers(span: &Span, headers: &HeaderMap) {
    if span.is_disabled() {
        return;
    }
    if let Some(provider) = headers
        .get(PROVIDER_HEADER)
        .and_then(|value| value.to_str().ok())
    {
        span.record("provider", provider);
    }
    if let Some(attempts) = headers
        .get(ATTEMPTS_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u32>().ok())
    {
        span.record("attempts", attempts);
    }
    let stream = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/event-stream"));
    span.record("stream", stream);
}

/// The OpenTelemetry generative-AI `gen_ai.operation.name` of an operation: a
/// Messages request is a chat.
pub(crate) fn semconv_operation(operation: Operation) -> &'static str {
    match operation {
        Operation::Embeddings => "embeddings",
        _ => "chat",
    }
}

/// Classifies an error of any type: a [`BoxError`] by its source chain,
/// anything else as a transport failure.
fn classify_error<E: 'static>(classifier: &SharedClassifier, error: &E) -> Outcome {
    let any: &dyn Any = error;
    if let Some(boxed) = any.downcast_ref::<BoxError>() {
        return classifier.classify_error(&**boxed);
    }
    if let Some(error) = any.downcast_ref::<std::io::Error>() {
        return classifier.classify_error(error);
    }
    Outcome::Failure(FailureKind::Transport)
}
