//! [`HealthLayer`]: records each attempt and fails fast while a provider is
//! unavailable.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;
use understudy_core::{BoxError, Classify, PanicRouting, SharedClassifier};

use crate::future::{Record, ResponseFuture, State};
use crate::registry::HealthRegistry;
use crate::state::{Admission, Entry};

/// Wraps one provider's service with [`Health`].
///
/// # Example
///
/// ```
/// use http::{Request, Response};
/// use tower::{Layer, ServiceExt, service_fn};
/// use understudy_core::{ReplayBody, Unavailable, cause_ref};
/// use understudy_health::{HealthConfig, HealthLayer, HealthRegistry};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let registry = HealthRegistry::new(HealthConfig::builder().consecutive_failures(1).build().unwrap());
/// let failing = service_fn(|_: Request<ReplayBody>| async {
///     Ok::<_, std::convert::Infallible>(Response::builder().status(503).body(()).unwrap())
/// });
/// let service = HealthLayer::new(registry.clone(), "openai").layer(failing);
///
/// let first = service.clone().oneshot(Request::new(ReplayBody::from("{}"))).await.unwrap();
/// assert_eq!(first.status(), 503); // recorded: one failure ejects here
/// let error = service.oneshot(Request::new(ReplayBody::from("{}"))).await.unwrap_err();
/// assert!(cause_ref::<Unavailable>(&*error).is_some()); // failed fast, not sent
/// # }
/// ```
#[derive(Clone)]
pub struct HealthLayer {
    registry: HealthRegistry,
    provider: Arc<str>,
    classifier: SharedClassifier,
}

impl HealthLayer {
    /// Tracks `provider` in `registry`.
    pub fn new(registry: HealthRegistry, provider: impl Into<Arc<str>>) -> Self {
        let provider = provider.into();
        registry.register(&provider);
        Self {
            registry,
            provider,
            classifier: SharedClassifier::default(),
        }
    }

    /// Decides what counts against the provider with `classifier` instead
    /// of [`LlmClassifier`](understudy_core::LlmClassifier); give the whole
    /// stack the same one.
    #[must_use]
    pub fn classifier(mut self, classifier: impl Classify) -> Self {
        self.classifier = SharedClassifier::new(classifier);
        self
    }
}

impl fmt::Debug for HealthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthLayer")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = Health<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Health {
            inner,
            entry: self.registry.entry(&self.provider),
            registry: self.registry.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// Records every attempt's outcome and latency in the registry; while the
/// provider is ejected, cooling down, or probing with its trial taken, fails
/// fast with [`Unavailable`](understudy_core::Unavailable) and never calls
/// the inner service.
///
/// A request carrying [`PanicRouting`] is let through even then (the
/// selector above found every target unavailable) and its outcome recorded.
///
/// `poll_ready` only forwards to the inner service: it never waits on an
/// ejected provider, because the fallback above skips those.
#[derive(Clone)]
pub struct Health<S> {
    inner: S,
    entry: Arc<Entry>,
    registry: HealthRegistry,
    classifier: SharedClassifier,
}

// ===== impl Health =====

impl<S> Health<S> {
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

impl<S: fmt::Debug> fmt::Debug for Health<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, B> Service<Request<ReqBody>> for Health<S>
where
    S: Service<Request<ReqBody>, Response = Response<B>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let admission = match self.registry.admit(&self.entry) {
            // Panic mode: the selector found every target unavailable and
            // tries them anyway; let it through and record what happens.
            Err(_) if request.extensions().get::<PanicRouting>().is_some() => Ok(Admission::Normal),
            other => other,
        };
        match admission {
            Err(unavailable) => ResponseFuture {
                state: State::Refused {
                    error: Some(unavailable.into()),
                },
            },
            Ok(admission) => ResponseFuture {
                state: State::Called {
                    future: self.inner.call(request),
                    record: Some(Record {
                        registry: self.registry.clone(),
                        entry: self.entry.clone(),
                        classifier: self.classifier.clone(),
                        start: Instant::now(),
                        _trial: match admission {
                            Admission::Normal => None,
                            Admission::Trial(guard) => Some(guard),
                        },
                    }),
                },
            },
        }
    }
}
