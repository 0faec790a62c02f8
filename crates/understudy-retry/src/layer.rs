use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;
use understudy_core::events::{SharedObserver, noop_observer};
use understudy_core::{Classify, SharedClassifier};

use crate::backoff::{Backoff, Jitter, RandomJitter};
use crate::budget::RetryBudget;
use crate::config::RetryConfig;
use crate::service::{Retry, Shared};

/// Applies [`Retry`] to a target's service. Every service it builds shares
/// one [`RetryBudget`].
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
///
/// use http::{Request, Response};
/// use tower::{Layer, ServiceExt, service_fn};
/// use understudy_core::ReplayBody;
/// use understudy_retry::{RetryConfig, RetryLayer};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // A provider that answers 503 once, then 200.
/// let calls = Arc::new(AtomicU32::new(0));
/// let seen = calls.clone();
/// let provider = service_fn(move |_: Request<ReplayBody>| {
///     let status = if seen.fetch_add(1, Ordering::SeqCst) == 0 { 503 } else { 200 };
///     async move { Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(()).unwrap()) }
/// });
/// let config = RetryConfig::default().max_retries(2).base_delay(Duration::from_millis(100));
/// let service = RetryLayer::new(config).provider("openai").layer(provider);
///
/// let response = service.oneshot(Request::new(ReplayBody::from("{}"))).await.unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(calls.load(Ordering::SeqCst), 2);
/// # }
/// ```
#[derive(Clone)]
pub struct RetryLayer {
    shared: Arc<Shared>,
}

impl RetryLayer {
    /// A layer with this configuration. A backoff cap below its base is
    /// raised to the base.
    pub fn new(config: RetryConfig) -> Self {
        let backoff = Backoff::clamped(config.base_delay, config.max_delay);
        Self {
            shared: Arc::new(Shared {
                config,
                backoff,
                budget: config.new_budget(),
                provider: Arc::from(""),
                observer: noop_observer(),
                jitter: Arc::new(RandomJitter),
                classifier: SharedClassifier::default(),
            }),
        }
    }

    /// Names the provider in events (`"openai"`).
    pub fn provider(self, name: impl Into<Arc<str>>) -> Self {
        self.map(|shared| shared.provider = name.into())
    }

    /// Reports `Retry` and `RetryBudgetExhausted` events to `observer`.
    pub fn observer(self, observer: SharedObserver) -> Self {
        self.map(|shared| shared.observer = observer)
    }

    /// Draws backoff jitter from `jitter` (tests inject a fixed one).
    pub fn jitter(self, jitter: impl Jitter + 'static) -> Self {
        self.map(|shared| shared.jitter = Arc::new(jitter))
    }

    /// Decides what is retried with `classifier` instead of
    /// [`LlmClassifier`](understudy_core::LlmClassifier); give the whole
    /// stack the same one.
    pub fn classifier(self, classifier: impl Classify) -> Self {
        let classifier = SharedClassifier::new(classifier);
        self.map(|shared| shared.classifier = classifier)
    }

    /// Shares `budget` instead of the layer's own.
    pub fn budget(self, budget: RetryBudget) -> Self {
        self.map(|shared| shared.budget = budget)
    }

    /// The budget the services share.
    pub fn get_budget(&self) -> &RetryBudget {
        &self.shared.budget
    }

    fn map(self, f: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        f(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }
}

impl From<RetryConfig> for RetryLayer {
    fn from(config: RetryConfig) -> Self {
        Self::new(config)
    }
}

impl fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("provider", &self.shared.provider)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, self.shared.clone())
    }
}
