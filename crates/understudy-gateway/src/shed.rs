//! [`ShedLayer`]: at most `max_concurrent_requests` requests in flight;
//! the next one is answered at once with a 503 `overloaded` in the OpenAI
//! shape and `Retry-After: 1`, before its body is read or a provider is
//! called.
//!
//! Unlike `tower::limit::ConcurrencyLimit` + `LoadShed`, the permit is held
//! by the response body, so a stream counts until it ends: streams are
//! what hold memory and upstream connections the longest.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::task::ready;

use futures_util::future::{Either, Ready};
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};
use understudy_core::{OpenAiError, ResponseBody};

use understudy_core::HoldBody;

/// Limits requests in flight; see the module docs.
#[derive(Clone, Debug)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
}

impl ShedLayer {
    /// At most `max` requests in flight at once.
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            permits: self.permits.clone(),
        }
    }
}

/// See [`ShedLayer`].
#[derive(Clone, Debug)]
pub struct Shed<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S, B> Service<Request<B>> for Shed<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future =
        Either<Ready<Result<Response<ResponseBody>, Infallible>>, ResponseFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Either::Left(futures_util::future::ready(Ok(overloaded())));
        };
        Either::Right(ResponseFuture {
            inner: self.inner.call(request),
            permit: Some(permit),
        })
    }
}

fn overloaded() -> Response<ResponseBody> {
    OpenAiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "the gateway is at its limit of concurrent requests; retry shortly",
    )
    .with_code("overloaded")
    .with_retry_after(Duration::from_secs(1))
    .to_response()
}

pin_project! {
    /// The response future of [`Shed`]: hands the permit to the body.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody>, Infallible>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        Poll::Ready(result.map(|response| match this.permit.take() {
            Some(permit) => response.map(|body| ResponseBody::new(HoldBody::new(body, permit))),
            None => response,
        }))
    }
}
