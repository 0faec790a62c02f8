//! [`CommittedBody`]: a stream after its commit point.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;

use tokio::time::{Instant, Sleep};
use understudy_core::events::{Event, SharedObserver};
use understudy_core::{BoxError, OpenAiError, TargetName};

pin_project! {
    /// The stream of a committed response: first the frames read while
    /// waiting for content, then the rest of the upstream body as it comes.
    ///
    /// If the upstream body fails, or sends nothing for the idle timeout, the
    /// stream ends with one SSE `data:` event holding the error in the
    /// OpenAI shape, and `Event::StreamBrokenAfterCommit` is reported.
    pub(crate) struct CommittedBody<B> {
        held: Option<Bytes>,
        #[pin]
        inner: B,
        #[pin]
        idle: Sleep,
        idle_timeout: Duration,
        // When the last frame went out; the idle timer is moved to
        // `last + idle_timeout` only when the stream has to wait, so a burst
        // of frames costs no timer updates.
        last: Instant,
        finished: bool,
        target: Option<TargetName>,
        observer: SharedObserver,
    }
}

impl<B> CommittedBody<B> {
    pub(crate) fn new(
        held: Bytes,
        inner: B,
        idle_timeout: Duration,
        target: Option<TargetName>,
        observer: SharedObserver,
    ) -> Self {
        Self {
            held: (!held.is_empty()).then_some(held),
            inner,
            idle: tokio::time::sleep(idle_timeout),
            idle_timeout,
            last: Instant::now(),
            finished: false,
            target,
            observer,
        }
    }
}

impl<B> Body for CommittedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Some(held) = this.held.take() {
            this.idle
                .as_mut()
                .reset(Instant::now() + *this.idle_timeout);
            return Poll::Ready(Some(Ok(Frame::data(held))));
        }
        if *this.finished {
            return Poll::Ready(None);
        }
        let message = match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle
                    .as_mut()
                    .reset(Instant::now() + *this.idle_timeout);
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(None) => {
                *this.finished = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(_))) => "the provider's stream broke after it started".to_owned(),
            Poll::Pending => {
                let deadline = *this.last + *this.idle_timeout;
                if this.idle.deadline() != deadline {
                    this.idle.as_mut().reset(deadline);
                }
                if this.idle.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                format!(
                    "the provider's stream stalled for {} ms after it started",
                    this.idle_timeout.as_millis()
                )
            }
        };
        *this.finished = true;
        if let Some(target) = this.target.as_ref() {
            this.observer.on_event(&Event::StreamBrokenAfterCommit {
                provider: &target.provider,
                model: &target.model,
            });
        }
        let event = OpenAiError::bad_gateway(message)
            .with_code("stream_broken")
            .to_sse_event();
        Poll::Ready(Some(Ok(Frame::data(event))))
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
