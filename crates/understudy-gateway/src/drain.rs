//! [`DrainBody`]: an event stream that, when the shutdown drain runs out,
//! ends with an SSE error event in its API's shape (OpenAI's, or
//! Anthropic's for the Messages endpoint) instead of being cut mid-event at
//! the HTTP level.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use understudy_core::{OpenAiError, Operation};

pin_project! {
    /// Passes `B` through until `cut` is cancelled, then sends one error
    /// event and ends.
    pub struct DrainBody<B> {
        #[pin]
        inner: B,
        #[pin]
        cut: WaitForCancellationFutureOwned,
        operation: Operation,
        ended: bool,
    }
}

impl<B> DrainBody<B> {
    /// Wraps an event-stream body answering `operation`.
    pub fn new(inner: B, cut: CancellationToken, operation: Operation) -> Self {
        Self {
            inner,
            cut: cut.cancelled_owned(),
            operation,
            ended: false,
        }
    }
}

impl<B> fmt::Debug for DrainBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainBody")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// The event a stream answering `operation` ends with when the drain cuts
/// it.
pub fn shutdown_event(operation: Operation) -> Bytes {
    OpenAiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "the gateway is shutting down and its drain time ran out before the stream ended",
    )
    .with_code("shutting_down")
    .to_sse_event_for(operation)
}

impl<B> Body for DrainBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        // The cut is looked at only when the stream has nothing to send:
        // a frame that is ready goes first, and a stream that is flowing
        // pays no lock per frame for it.
        match this.inner.poll_frame(cx) {
            Poll::Pending if this.cut.poll(cx).is_ready() => {
                *this.ended = true;
                Poll::Ready(Some(Ok(Frame::data(shutdown_event(*this.operation)))))
            }
            Poll::Ready(None) => {
                *this.ended = true;
                Poll::Ready(None)
            }
            polled => polled,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.ended {
            SizeHint::with_exact(0)
        } else {
            SizeHint::default()
        }
    }
}
