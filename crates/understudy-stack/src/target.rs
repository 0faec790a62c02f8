//! [`TargetStack`]: the builder of one target's layers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::ServiceBuilder;
use tower::timeout::TimeoutLayer;
use tower::util::BoxCloneSyncService;
use tower_service::Service;
use understudy_core::events::SharedObserver;
use understudy_core::{BoxError, Classify, ReplayBody, ResponseBody, SharedClassifier, TargetName};
use understudy_fallback::{FirstChunkLayer, Target};
use understudy_health::{HealthLayer, HealthRegistry};
use understudy_observe::AttemptLayer;
use understudy_retry::{RetryBudget, RetryLayer};

/// One target's stack, boxed: what [`TargetStack::build`] puts in a
/// [`Target`], and what a [`Fallback`](understudy_fallback::Fallback) of
/// built targets selects among.
pub type TargetService = BoxCloneSyncService<Request<ReplayBody>, Response<ResponseBody>, BoxError>;

/// Builds one target: a model at a provider, wrapped in the layers that
/// keep calls to it alive, in this order (outermost first):
///
/// ```text
/// Retry → Health → Timeout → FirstChunk → Attempt telemetry → service
/// ```
///
/// Each layer is there only when its method was called. What the builder
/// wires for you:
/// - the provider's name goes to every layer that reports it;
/// - [`health`](Self::health) also listens to the first-chunk guard, so a
///   stream that breaks after the commit counts against the provider;
/// - [`telemetry`](Self::telemetry) reaches retry, the first-chunk guard and
///   the attempt layer (which it adds);
/// - [`classifier`](Self::classifier) reaches every layer that classifies.
///   Give the provider's service the same one: it reads error bodies, and
///   the layers above trust what it concluded.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use http::{Request, Response};
/// use tower::service_fn;
/// use understudy_core::{ReplayBody, ResponseBody};
/// use understudy_health::{HealthConfig, HealthRegistry};
/// use understudy_retry::RetryConfig;
/// use understudy_stack::TargetStack;
///
/// let registry = HealthRegistry::new(HealthConfig::default());
/// let provider = service_fn(|_: Request<ReplayBody>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(ResponseBody::from("{}")))
/// });
/// // One budget per provider, shared by every target that calls it.
/// let retry = RetryConfig::default().max_retries(2);
/// let budget = retry.new_budget();
/// let target = TargetStack::new("openai", "gpt-4o-mini", provider)
///     .retry(retry)
///     .budget(budget)
///     .health(&registry)
///     .timeout(Duration::from_secs(30))
///     .first_chunk(Duration::from_secs(15))
///     .build();
/// assert_eq!(target.provider(), "openai");
/// ```
pub struct TargetStack<S> {
    name: TargetName,
    service: S,
    retry: Option<RetryLayer>,
    budget: Option<RetryBudget>,
    health: Option<HealthRegistry>,
    timeout: Option<Duration>,
    first_chunk: Option<FirstChunkLayer>,
    telemetry: Option<SharedObserver>,
    system: Option<&'static str>,
    classifier: Option<SharedClassifier>,
}

impl<S> TargetStack<S> {
    /// Starts the stack of `model` at `provider`, served by `service` (the
    /// provider's service, for instance `understudy_provider`'s). The names
    /// come from configuration: they become metric labels.
    pub fn new(provider: impl Into<Arc<str>>, model: impl Into<Arc<str>>, service: S) -> Self {
        Self {
            name: TargetName::new(provider, model),
            service,
            retry: None,
            budget: None,
            health: None,
            timeout: None,
            first_chunk: None,
            telemetry: None,
            system: None,
            classifier: None,
        }
    }

    /// Retries failed attempts: a
    /// [`RetryConfig`](understudy_retry::RetryConfig), or a [`RetryLayer`]
    /// already set up (for instance with its own jitter).
    #[must_use]
    pub fn retry(mut self, retry: impl Into<RetryLayer>) -> Self {
        self.retry = Some(retry.into());
        self
    }

    /// Draws retries from `budget`, the provider's: every target that calls
    /// one provider should share one budget, as they share its health.
    /// Without it, the retry layer has a budget of its own.
    #[must_use]
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Records every attempt in `registry`, fails fast while the provider
    /// is ejected, and counts streams that break after the commit.
    #[must_use]
    pub fn health(mut self, registry: &HealthRegistry) -> Self {
        self.health = Some(registry.clone());
        self
    }

    /// Bounds each attempt (each try, not the whole request) by `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Holds each answer until its commit point: a first-chunk timeout, or
    /// a [`FirstChunkLayer`] already set up. Its observer is replaced by
    /// the stack's telemetry and health.
    #[must_use]
    pub fn first_chunk(mut self, first_chunk: impl Into<FirstChunkLayer>) -> Self {
        self.first_chunk = Some(first_chunk.into());
        self
    }

    /// Reports the stack's events (retries, attempts, commits with their
    /// time to first content, breaks after the commit) to `observer`, and
    /// adds the attempt layer: a span and metrics per attempt.
    #[must_use]
    pub fn telemetry(mut self, observer: &SharedObserver) -> Self {
        self.telemetry = Some(observer.clone());
        self
    }

    /// Names the provider's API in the exported attempt spans'
    /// `gen_ai.system` (see [`AttemptLayer::system`]).
    #[must_use]
    pub fn gen_ai_system(mut self, system: &'static str) -> Self {
        self.system = Some(system);
        self
    }

    /// Classifies with `classifier` in every layer, instead of each
    /// layer's own (by default
    /// [`LlmClassifier`](understudy_core::LlmClassifier)).
    #[must_use]
    pub fn classifier(mut self, classifier: impl Classify) -> Self {
        self.classifier = Some(SharedClassifier::new(classifier));
        self
    }

    /// The target: the layers asked for around the service, boxed.
    pub fn build<B>(self) -> Target<TargetService>
    where
        S: Service<Request<ReplayBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let Self {
            name,
            service,
            retry,
            budget,
            health,
            timeout,
            first_chunk,
            telemetry,
            system,
            classifier,
        } = self;
        let provider = name.provider.clone();
        let retry = retry.map(|mut layer| {
            layer = layer.provider(provider.clone());
            if let Some(budget) = budget {
                layer = layer.budget(budget);
            }
            if let Some(observer) = &telemetry {
                layer = layer.observer(observer.clone());
            }
            if let Some(classifier) = &classifier {
                layer = layer.classifier(classifier.clone());
            }
            layer
        });
        let health_layer = health.as_ref().map(|registry| {
            let layer = HealthLayer::new(registry.clone(), provider.clone());
            match &classifier {
                Some(classifier) => layer.classifier(classifier.clone()),
                None => layer,
            }
        });
        let first_chunk = first_chunk.map(|mut layer| {
            let observer: Option<SharedObserver> = match (&telemetry, &health) {
                (Some(telemetry), Some(registry)) => {
                    Some(Arc::new((telemetry.clone(), registry.clone())))
                }
                (Some(telemetry), None) => Some(telemetry.clone()),
                (None, Some(registry)) => Some(Arc::new(registry.clone())),
                (None, None) => None,
            };
            if let Some(observer) = observer {
                layer = layer.observer(observer);
            }
            if let Some(classifier) = &classifier {
                layer = layer.classifier(classifier.clone());
            }
            layer
        });
        let attempt = telemetry.map(|observer| {
            let mut layer =
                AttemptLayer::new(provider.clone(), name.model.clone()).with_observer(observer);
            if let Some(classifier) = &classifier {
                layer = layer.classifier(classifier.clone());
            }
            if let Some(system) = system {
                layer = layer.system(system);
            }
            // The attempt layer wraps the body to time its first byte; the
            // stack's layers agree on one body type.
            ServiceBuilder::new()
                .map_response(boxed)
                .layer(layer)
                .into_inner()
        });
        let stack = ServiceBuilder::new()
            .option_layer(retry)
            .option_layer(health_layer)
            .option_layer(timeout.map(TimeoutLayer::new))
            .option_layer(first_chunk)
            .option_layer(attempt)
            .map_err(Into::<BoxError>::into)
            .map_response(boxed)
            .service(service);
        Target::new(name, TargetService::new(stack))
    }
}

impl<S> fmt::Debug for TargetStack<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetStack")
            .field("name", &self.name)
            .field("retry", &self.retry)
            .field("health", &self.health.is_some())
            .field("timeout", &self.timeout)
            .field("first_chunk", &self.first_chunk)
            .field("telemetry", &self.telemetry.is_some())
            .field("classifier", &self.classifier.is_some())
            .finish_non_exhaustive()
    }
}

fn boxed<B>(response: Response<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    response.map(ResponseBody::new)
}
