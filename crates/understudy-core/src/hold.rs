//! [`HoldBody`]: a response body that keeps something alive (a concurrency
//! permit, a connection's in-flight mark, a balanced deployment's count of
//! requests in flight) until the body ends, fails or is dropped.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Wraps `B`, holding `T` until the body is dropped; `T` is also
    /// released as soon as the body has ended or failed.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use http_body_util::BodyExt;
    /// use understudy_core::{HoldBody, ResponseBody};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let guard = Arc::new(());
    /// let body = HoldBody::new(ResponseBody::from("{}"), guard.clone());
    /// assert_eq!(Arc::strong_count(&guard), 2);
    /// let bytes = body.collect().await.unwrap().to_bytes();
    /// assert_eq!(bytes, "{}");
    /// assert_eq!(Arc::strong_count(&guard), 1, "released with the body");
    /// # }
    /// ```
    pub struct HoldBody<B, T> {
        #[pin]
        inner: B,
        held: Option<T>,
    }
}

impl<B, T> HoldBody<B, T> {
    /// Holds `held` for the life of `inner`.
    pub fn new(inner: B, held: T) -> Self {
        Self {
            inner,
            held: Some(held),
        }
    }
}

impl<B, T> fmt::Debug for HoldBody<B, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HoldBody")
            .field("held", &self.held.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body, T> Body for HoldBody<B, T> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None | Some(Err(_))) => true,
            // The last frame: what is held goes now, not when the caller
            // polls once more.
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if ended {
            this.held.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
