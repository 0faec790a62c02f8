//! [`RequestDeadlineLayer`]: one deadline for a whole caller request, all
//! attempts included.

pub mod future;

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use self::future::ResponseFuture;
use crate::body::ResponseBody;
use crate::extensions::Deadline;

/// Gives each request a [`Deadline`] (which retry and fallback respect) and
/// answers 504 in the OpenAI error shape when no response head is ready by
/// then. A stream already released keeps flowing: the deadline bounds the
/// wait for the response, not the length of a generation.
///
/// Put it outside the layers that read the request body, so that a slow
/// upload counts against the same deadline.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use http::{Request, Response, StatusCode};
/// use tower::{Layer, ServiceExt, service_fn};
/// use understudy_core::{Deadline, RequestDeadlineLayer, ResponseBody};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let provider = service_fn(|request: Request<()>| async move {
///     // Every layer below sees how long is left.
///     let deadline = request.extensions().get::<Deadline>().copied().unwrap();
///     tokio::time::sleep(deadline.remaining() * 2).await;
///     Ok::<_, Infallible>(Response::new(ResponseBody::empty()))
/// });
/// let service = RequestDeadlineLayer::new(Duration::from_secs(30)).layer(provider);
/// let response = service.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RequestDeadlineLayer {
    timeout: Duration,
}

impl RequestDeadlineLayer {
    /// Requests get `timeout` to produce a response.
    pub const fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for RequestDeadlineLayer {
    type Service = RequestDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestDeadline {
            inner,
            timeout: self.timeout,
        }
    }
}

/// See [`RequestDeadlineLayer`].
#[derive(Clone, Debug)]
pub struct RequestDeadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B> Service<Request<B>> for RequestDeadline<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let deadline = Deadline::after(self.timeout);
        request.extensions_mut().insert(deadline);
        ResponseFuture {
            inner: tokio::time::timeout_at(deadline.instant(), self.inner.call(request)),
            timeout: self.timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http::StatusCode;
    use tower::{ServiceExt, service_fn};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_request_past_its_deadline_gets_a_504() {
        let slow = service_fn(|request: Request<()>| async move {
            let deadline = request.extensions().get::<Deadline>().copied().unwrap();
            tokio::time::sleep(deadline.remaining() + Duration::from_secs(1)).await;
            Ok::<_, Infallible>(Response::new(ResponseBody::empty()))
        });
        let service = RequestDeadlineLayer::new(Duration::from_secs(3)).layer(slow);
        let started = tokio::time::Instant::now();
        let response = service.oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
