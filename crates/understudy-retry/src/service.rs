use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::ServiceExt;
use tower_service::Service;
use understudy_core::events::{Event, SharedObserver};
use understudy_core::{
    Attempt, AttemptCounter, BoxError, Classify, Deadline, Outcome, ReplayBody, SharedClassifier,
};

use crate::backoff::{Backoff, Jitter};
use crate::budget::RetryBudget;
use crate::config::RetryConfig;
use crate::error::RetryError;
use crate::future::ResponseFuture;

/// What every service of one [`RetryLayer`](crate::RetryLayer) shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) config: RetryConfig,
    pub(crate) backoff: Backoff,
    pub(crate) budget: RetryBudget,
    pub(crate) provider: Arc<str>,
    pub(crate) observer: SharedObserver,
    pub(crate) jitter: Arc<dyn Jitter>,
    pub(crate) classifier: SharedClassifier,
}

/// Retries one target's failed attempts; see the [crate docs](crate).
///
/// Built by [`RetryLayer`](crate::RetryLayer).
pub struct Retry<S> {
    inner: S,
    shared: Arc<Shared>,
}

// ===== impl Retry =====

impl<S> Retry<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

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

impl<S: Clone> Clone for Retry<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("provider", &self.shared.provider)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<ReplayBody>> for Retry<S>
where
    S: Service<Request<ReplayBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = ResponseFuture<B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReplayBody>) -> Self::Future {
        // The ready service goes into the future for the first try; its
        // clone stays here. Retries drive a clone to readiness in the future.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        self.shared.budget.deposit();
        Box::pin(send_with_retries(inner, self.shared.clone(), request))
    }
}

async fn send_with_retries<S, B>(
    mut service: S,
    shared: Arc<Shared>,
    request: Request<ReplayBody>,
) -> Result<Response<B>, BoxError>
where
    S: Service<Request<ReplayBody>, Response = Response<B>>,
    S::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let deadline = parts.extensions.get::<Deadline>().copied();
    let counter = parts.extensions.get::<AttemptCounter>().cloned();
    let classifier = &shared.classifier;
    let mut attempt = Attempt::FIRST;
    loop {
        let mut request = Request::from_parts(parts.clone(), body.clone());
        request.extensions_mut().insert(attempt);
        if attempt.is_retry() {
            // `Retry::poll_ready` only forwards to the inner service, so a
            // clone must be made ready again before each re-send.
            service.ready().await.map_err(Into::into)?;
        }
        let result = service.call(request).await.map_err(Into::into);
        let outcome = match &result {
            Ok(response) => classifier.classify_response(response),
            Err(error) => classifier.classify_error(&**error),
        };
        let Some(delay) = retry_delay(&shared, outcome, attempt, deadline) else {
            return finish(result, attempt, outcome);
        };
        if !shared.budget.withdraw() {
            shared.observer.on_event(&Event::RetryBudgetExhausted {
                provider: &shared.provider,
                outcome,
            });
            return finish(result, attempt, outcome);
        }
        attempt = attempt.next();
        shared.observer.on_event(&Event::Retry {
            provider: &shared.provider,
            attempt,
            delay,
            outcome,
        });
        if let Some(counter) = &counter {
            counter.add(1);
        }
        // Release the failed response (and its connection) before waiting.
        drop(result);
        tokio::time::sleep(delay).await;
    }
}

/// The wait before the next try, or `None` when this result is final.
fn retry_delay(
    shared: &Shared,
    outcome: Outcome,
    attempt: Attempt,
    deadline: Option<Deadline>,
) -> Option<Duration> {
    let config = &shared.config;
    if !outcome.is_retryable() || attempt.0 > config.max_retries {
        return None;
    }
    let delay = match outcome.retry_after() {
        Some(wait) if wait > config.max_retry_after => return None,
        Some(wait) => wait,
        None => shared.backoff.delay(attempt.0, &*shared.jitter),
    };
    if let Some(deadline) = deadline
        && deadline.remaining() < delay.saturating_add(config.min_remaining)
    {
        return None;
    }
    Some(delay)
}

fn finish<B>(
    result: Result<Response<B>, BoxError>,
    attempt: Attempt,
    outcome: Outcome,
) -> Result<Response<B>, BoxError> {
    result.map_err(|error| RetryError::new(attempt.0, outcome, error).into())
}
