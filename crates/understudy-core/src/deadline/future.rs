//! The response future of [`RequestDeadline`](super::RequestDeadline).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::time::Timeout;

use crate::body::ResponseBody;
use crate::openai_error::OpenAiError;

pin_project! {
    /// The response future of [`RequestDeadline`](super::RequestDeadline): a 504 in the
    /// OpenAI error shape when the deadline passes first.
    pub struct ResponseFuture<F> {
        #[pin]
        pub(super) inner: Timeout<F>,
        pub(super) timeout: Duration,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody>, Infallible>>,
{
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_elapsed)) => Poll::Ready(Ok(OpenAiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout_error",
                format!(
                    "no provider answered within the request timeout of {} ms",
                    this.timeout.as_millis()
                ),
            )
            .with_code("request_timeout")
            .to_response())),
        }
    }
}
