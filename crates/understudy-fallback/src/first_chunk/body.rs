//! [`CommittedBody`]: a stream after its commit point.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;

use tokio::time::{Instant, Sleep};
use understudy_core::events::{Event, SharedObserver};
use understudy_core::{BoxError, OpenAiError, Operation, TargetName};

use super::strip::{UsageStrip, gather_stripped};
use super::usage::{self, UsageScan};
use crate::resume::{BreakReason, BrokeAfterCommit};

/// Frames gathered past this size go out at once.
const FLUSH_AT: usize = 16 * 1024;

pin_project! {
    /// The stream of a committed response: first the frames read while
    /// waiting for content, then the rest of the upstream body as it comes.
    ///
    /// Frames already available when the caller's connection asks for data
    /// go out as one frame, so a burst becomes one write; nothing is held
    /// back waiting for more.
    ///
    /// If the upstream body fails, or sends nothing for the idle timeout, the
    /// stream ends with one SSE `data:` event holding the error in the
    /// OpenAI shape, and `Event::StreamBrokenAfterCommit` is reported. A
    /// resumable stream (its route resumes, see `crate::resume`) ends with a
    /// [`BrokeAfterCommit`] error instead, for the resume above to act on.
    pub(crate) struct CommittedBody<B> {
        #[pin]
        inner: B,
        // Data gathered and not yet released: one frame as it came, or
        // several joined.
        single: Option<Bytes>,
        joined: BytesMut,
        trailers: Option<HeaderMap>,
        #[pin]
        idle: Sleep,
        idle_timeout: Duration,
        // When the last frame arrived; the idle timer is moved to
        // `last + idle_timeout` only when the stream has to wait.
        last: Instant,
        finished: bool,
        target: Option<TargetName>,
        // The API whose shape the stream has, for the shape of the error
        // event that ends it.
        operation: Operation,
        observer: SharedObserver,
        // End a break with an error rather than an error event.
        resumable: bool,
        // The break to return once the data before it is out.
        pending_break: Option<BrokeAfterCommit>,
        // The usage chunk, looked for as the stream passes; reported when
        // it ends.
        usage: UsageScan,
        // The usage taken out of the caller's stream, when the caller did
        // not ask for it.
        strip: Option<UsageStrip>,
    }
}

impl<B> CommittedBody<B> {
    pub(crate) fn new(
        held: Bytes,
        inner: B,
        idle_timeout: Duration,
        target: Option<TargetName>,
        operation: Operation,
        observer: SharedObserver,
        resumable: bool,
    ) -> Self {
        let mut usage = UsageScan::default();
        usage.push(&held);
        Self {
            inner,
            single: (!held.is_empty()).then_some(held),
            joined: BytesMut::new(),
            trailers: None,
            idle: tokio::time::sleep(idle_timeout),
            idle_timeout,
            last: Instant::now(),
            finished: false,
            target,
            operation,
            observer,
            resumable,
            pending_break: None,
            usage,
            strip: None,
        }
    }

    /// Takes the usage out of the caller's stream (what was held before
    /// the commit included): the caller did not ask for it.
    pub(crate) fn strip_usage(mut self) -> Self {
        let mut strip = UsageStrip::default();
        if let Some(held) = self.single.take() {
            put(Some(&mut strip), &mut self.single, &mut self.joined, held);
        }
        self.strip = Some(strip);
        self
    }
}

/// Reports the stream's usage, if it had any, as it ends.
fn report_usage(usage: &UsageScan, target: Option<&TargetName>, observer: &SharedObserver) {
    if let Some(tokens) = usage.tokens() {
        usage::report(observer, target, tokens);
    }
}

/// Adds `data` to what is held, through `strip` when there is one.
fn put(
    strip: Option<&mut UsageStrip>,
    single: &mut Option<Bytes>,
    joined: &mut BytesMut,
    data: Bytes,
) {
    match strip {
        Some(strip) => gather_stripped(strip, single, joined, data),
        None => gather(single, joined, data),
    }
}

/// Adds what `strip` still holds (the stream is over) to what is held.
fn flush(strip: Option<&mut UsageStrip>, single: &mut Option<Bytes>, joined: &mut BytesMut) {
    if let Some(strip) = strip
        && strip.holds()
    {
        if let Some(first) = single.take() {
            joined.extend_from_slice(&first);
        }
        strip.finish(joined);
    }
}

/// Adds `data` to what is held.
pub(super) fn gather(single: &mut Option<Bytes>, joined: &mut BytesMut, data: Bytes) {
    if data.is_empty() {
        return;
    }
    if single.is_none() && joined.is_empty() {
        *single = Some(data);
        return;
    }
    if let Some(first) = single.take() {
        joined.extend_from_slice(&first);
    }
    joined.extend_from_slice(&data);
}

/// Takes what is held, if anything.
fn release(single: &mut Option<Bytes>, joined: &mut BytesMut) -> Option<Bytes> {
    single
        .take()
        .or_else(|| (!joined.is_empty()).then(|| joined.split().freeze()))
}

fn held_len(single: Option<&Bytes>, joined: &BytesMut) -> usize {
    single.map_or(0, Bytes::len) + joined.len()
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
        if *this.finished {
            if let Some(data) = release(this.single, this.joined) {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if let Some(broke) = this.pending_break.take() {
                return Poll::Ready(Some(Err(broke.into())));
            }
            return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        let (reason, message) = loop {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    *this.last = Instant::now();
                    match frame.into_data() {
                        Ok(data) => {
                            this.usage.push(&data);
                            put(this.strip.as_mut(), this.single, this.joined, data);
                            if held_len(this.single.as_ref(), this.joined) >= FLUSH_AT
                                && let Some(data) = release(this.single, this.joined)
                            {
                                return Poll::Ready(Some(Ok(Frame::data(data))));
                            }
                        }
                        Err(frame) => {
                            // Trailers end the body: release the data first.
                            *this.finished = true;
                            report_usage(this.usage, this.target.as_ref(), this.observer);
                            flush(this.strip.as_mut(), this.single, this.joined);
                            *this.trailers = frame.into_trailers().ok();
                            if let Some(data) = release(this.single, this.joined) {
                                return Poll::Ready(Some(Ok(Frame::data(data))));
                            }
                            return Poll::Ready(
                                this.trailers.take().map(|t| Ok(Frame::trailers(t))),
                            );
                        }
                    }
                }
                Poll::Ready(None) => {
                    *this.finished = true;
                    report_usage(this.usage, this.target.as_ref(), this.observer);
                    flush(this.strip.as_mut(), this.single, this.joined);
                    return Poll::Ready(
                        release(this.single, this.joined).map(|data| Ok(Frame::data(data))),
                    );
                }
                Poll::Ready(Some(Err(_))) => {
                    break (
                        BreakReason::Cut,
                        "the provider's stream broke after it started".to_owned(),
                    );
                }
                Poll::Pending => {
                    if let Some(data) = release(this.single, this.joined) {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    let deadline = *this.last + *this.idle_timeout;
                    if this.idle.deadline() != deadline {
                        this.idle.as_mut().reset(deadline);
                    }
                    if this.idle.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    break (
                        BreakReason::Stall,
                        format!(
                            "the provider's stream stalled for {} ms after it started",
                            this.idle_timeout.as_millis()
                        ),
                    );
                }
            }
        };
        *this.finished = true;
        flush(this.strip.as_mut(), this.single, this.joined);
        if let Some(target) = this.target.as_ref() {
            this.observer.on_event(&Event::StreamBrokenAfterCommit {
                provider: &target.provider,
                model: &target.model,
            });
        }
        if *this.resumable {
            let broke = BrokeAfterCommit { reason, message };
            if let Some(data) = release(this.single, this.joined) {
                *this.pending_break = Some(broke);
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            return Poll::Ready(Some(Err(broke.into())));
        }
        let event = OpenAiError::bad_gateway(message)
            .with_code("stream_broken")
            .to_sse_event_for(*this.operation);
        // What came before the break goes out first, then the error event.
        gather(this.single, this.joined, event);
        Poll::Ready(release(this.single, this.joined).map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.finished
            && self.single.is_none()
            && self.joined.is_empty()
            && self.trailers.is_none()
            && self.pending_break.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
