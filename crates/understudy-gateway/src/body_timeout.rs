//! [`BodyTimeoutLayer`]: a request body must arrive in full within a time
//! limit, so a caller that announces a length and stalls cannot hold a
//! request (and its concurrency permit) open. The body ends with an
//! `io::Error` of kind `TimedOut`, which the replay layer answers with a
//! 408 in the OpenAI shape.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};
use understudy_core::{BoxError, Deadline};

use understudy_core::time::saturating_add as after;

/// Gives each request body `timeout` to arrive, and never longer than the
/// request's [`Deadline`] when one is set.
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeoutLayer {
    timeout: Duration,
}

impl BodyTimeoutLayer {
    /// Bodies get `timeout` to arrive in full.
    pub const fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for BodyTimeoutLayer {
    type Service = BodyTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyTimeout {
            inner,
            timeout: self.timeout,
        }
    }
}

/// See [`BodyTimeoutLayer`].
#[derive(Clone, Debug)]
pub struct BodyTimeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B> Service<Request<B>> for BodyTimeout<S>
where
    S: Service<Request<TimeoutBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut deadline = after(Instant::now(), self.timeout);
        if let Some(request_deadline) = request.extensions().get::<Deadline>() {
            deadline = deadline.min(request_deadline.instant());
        }
        let request = request.map(|body| TimeoutBody {
            inner: body,
            deadline,
            timer: None,
            done: false,
        });
        self.inner.call(request)
    }
}

pin_project! {
    /// A request body that fails with `TimedOut` once its time is up.
    #[derive(Debug)]
    pub struct TimeoutBody<B> {
        #[pin]
        inner: B,
        deadline: Instant,
        // Made when the body first has to be waited for: a body that
        // arrived with its head never needs a timer.
        timer: Option<Pin<Box<Sleep>>>,
        done: bool,
    }
}

impl<B> Body for TimeoutBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame.map_err(Into::into))),
            Poll::Pending => match this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(*this.deadline)))
                .as_mut()
                .poll(cx)
            {
                Poll::Ready(()) => {
                    *this.done = true;
                    Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request body did not arrive in time",
                    )
                    .into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures_util::StreamExt;
    use http::{Response, StatusCode};
    use http_body_util::{BodyExt, StreamBody};
    use tower::{ServiceBuilder, ServiceExt, service_fn};
    use understudy_core::{ReplayBody, ReplayLayer, ResponseBody};

    use super::*;

    /// One frame, then nothing, for ever.
    fn stalled() -> impl Body<Data = Bytes, Error = io::Error> {
        StreamBody::new(
            futures_util::stream::iter([Ok::<_, io::Error>(Frame::data(Bytes::from_static(
                b"{\"model\":",
            )))])
            .chain(futures_util::stream::pending()),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_gets_a_408_when_its_time_is_up() {
        let service = ServiceBuilder::new()
            .layer(BodyTimeoutLayer::new(Duration::from_secs(30)))
            .layer(ReplayLayer::new(1024))
            .service(service_fn(|_: Request<ReplayBody>| async {
                Ok::<_, std::convert::Infallible>(Response::new(ResponseBody::from("called")))
            }));
        let started = Instant::now();
        let response = service.oneshot(Request::new(stalled())).await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("request_timeout"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_time_counts_from_the_request_not_from_the_first_wait() {
        // The service waits 20 s before reading the body, which then
        // stalls: the 30 s count from the call, not from the first wait.
        let service = BodyTimeoutLayer::new(Duration::from_secs(30)).layer(service_fn(
            |request: Request<TimeoutBody<_>>| async move {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let read = request.into_body().collect().await;
                Ok::<_, std::convert::Infallible>(read.is_err())
            },
        ));
        let started = Instant::now();
        let timed_out = service.oneshot(Request::new(stalled())).await.unwrap();
        assert!(timed_out);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }
}
