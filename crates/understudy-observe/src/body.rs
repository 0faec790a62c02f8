//! [`TtfbBody`]: measures the time to the first byte of a response body.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use metrics::Histogram;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tracing::Span;

pin_project! {
    /// A response body that records, on its first non-empty data frame, the
    /// time since its attempt was sent: the
    /// `understudy_time_to_first_byte_seconds` histogram and the `ttfb_ms`
    /// field of the `llm.attempt` span. Everything else passes through.
    ///
    /// Returned by [`ObserveAttempt`](crate::ObserveAttempt); only the
    /// bodies of successful attempts are timed.
    pub struct TtfbBody<B> {
        #[pin]
        inner: B,
        first: Option<FirstByte>,
    }
}

pub(crate) struct FirstByte {
    pub(crate) start: Instant,
    pub(crate) histogram: Histogram,
    pub(crate) span: Span,
}

impl<B> TtfbBody<B> {
    pub(crate) fn new(inner: B, first: Option<FirstByte>) -> Self {
        Self { inner, first }
    }

    /// A body that records nothing.
    pub fn untimed(inner: B) -> Self {
        Self { inner, first: None }
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The inner body, by value.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for TtfbBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && frame.data_ref().is_some_and(Buf::has_remaining)
            && let Some(first) = this.first.take()
        {
            let elapsed = first.start.elapsed();
            first.histogram.record(elapsed.as_secs_f64());
            first
                .span
                .record("ttfb_ms", crate::telemetry::millis(elapsed));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Default> Default for TtfbBody<B> {
    fn default() -> Self {
        Self::untimed(B::default())
    }
}

impl<B> fmt::Debug for TtfbBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TtfbBody")
            .field("timing", &self.first.is_some())
            .finish_non_exhaustive()
    }
}
