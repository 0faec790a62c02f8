//! [`HoldBody`]: a response body that keeps something alive (a concurrency
//! permit, a connection's in-flight mark) until the body ends or is
//! dropped.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Wraps `B`, holding `T` until the body is dropped; `T` is also
    /// released as soon as the body has ended.
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
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
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
