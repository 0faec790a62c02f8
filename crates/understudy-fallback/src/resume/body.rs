//! [`ResumeBody`]: a committed stream that goes on from another target when
//! it breaks.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::Response;
use http_body::{Body, Frame, SizeHint};
use understudy_core::events::{Event, SharedObserver};
use understudy_core::sse::SseDecoder;
use understudy_core::{BoxError, OpenAiError, ResponseBody, RouteName, TargetName, cause_ref};

use super::splice::Splice;
use super::{BreakReason, BrokeAfterCommit};

/// A continuation under way: the next target's committed answer, if one
/// answered.
pub(crate) type Continuation = Pin<Box<dyn Future<Output = Option<Resumed>> + Send>>;

/// A target that continues the stream.
pub(crate) struct Resumed {
    /// Its committed answer.
    pub(crate) response: Response<ResponseBody>,
    /// Who answered.
    pub(crate) target: TargetName,
    /// What the answer may repeat first, to be stripped.
    pub(crate) strip: Vec<String>,
}

/// Where continuations come from: the route's remaining targets.
pub(crate) trait Resume: Send {
    /// Asks the next available target to continue after `prefix`.
    fn next(&mut self, prefix: &str) -> Continuation;
}

enum State {
    Streaming,
    Resuming {
        continuation: Continuation,
        reason: BreakReason,
        message: String,
    },
    Done,
}

/// The body of a committed stream on a route that resumes.
pub(crate) struct ResumeBody {
    inner: ResponseBody,
    decoder: SseDecoder,
    splice: Splice,
    out: BytesMut,
    state: State,
    resume: Box<dyn Resume>,
    /// The target whose stream is being read.
    from: TargetName,
    route: Option<RouteName>,
    observer: SharedObserver,
    max_event_bytes: usize,
}

impl ResumeBody {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        inner: ResponseBody,
        from: TargetName,
        include_usage: bool,
        resume: Box<dyn Resume>,
        max_bytes: usize,
        route: Option<RouteName>,
        observer: SharedObserver,
        max_event_bytes: usize,
    ) -> Self {
        Self {
            inner,
            decoder: SseDecoder::with_max_event_bytes(max_event_bytes),
            splice: Splice::new(include_usage, max_bytes),
            out: BytesMut::new(),
            state: State::Streaming,
            resume,
            from,
            route,
            observer,
            max_event_bytes,
        }
    }

    /// Reads what arrived; a break it holds, if any.
    fn take_in(&mut self, data: &[u8]) -> Option<BreakReason> {
        self.decoder.push(data);
        loop {
            match self.decoder.next_event() {
                Ok(Some(event)) => match self.splice.on_event(&event) {
                    Ok(Some(bytes)) => self.out.extend_from_slice(&bytes),
                    Ok(None) => {}
                    Err(reason) => return Some(reason),
                },
                Ok(None) => return None,
                Err(_) => return Some(BreakReason::Malformed),
            }
        }
    }

    /// The stream broke: continue it elsewhere, or end it with an error
    /// event.
    fn broke(&mut self, reason: BreakReason, message: String) {
        if matches!(reason, BreakReason::Malformed | BreakReason::ErrorEvent) {
            // The first-chunk guard reports cuts and stalls itself.
            self.observer.on_event(&Event::StreamBrokenAfterCommit {
                provider: &self.from.provider,
                model: &self.from.model,
            });
        }
        if self.splice.resumable() {
            let continuation = self.resume.next(self.splice.text());
            self.state = State::Resuming {
                continuation,
                reason,
                message,
            };
        } else {
            self.fail(message);
        }
    }

    /// Ends the stream with an error event.
    fn fail(&mut self, message: String) {
        let event = OpenAiError::bad_gateway(message)
            .with_code("stream_broken")
            .to_sse_event();
        self.out.extend_from_slice(&event);
        self.state = State::Done;
    }

    fn resumed(&mut self, resumed: Resumed, reason: BreakReason) {
        self.observer.on_event(&Event::Resume {
            route: self.route.as_ref().map(RouteName::as_str),
            from: &self.from.provider,
            to: &resumed.target.provider,
            reason: reason.as_str(),
            chars_sent: self.splice.text().chars().count(),
        });
        let comment = format!(
            ": resumed from {} to {}\n\n",
            self.from.provider, resumed.target.provider
        );
        self.out.extend_from_slice(comment.as_bytes());
        self.splice.continue_with(resumed.strip);
        self.decoder = SseDecoder::with_max_event_bytes(self.max_event_bytes);
        self.inner = resumed.response.into_body();
        self.from = resumed.target;
        self.state = State::Streaming;
    }

    fn release(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }
}

impl Body for ResumeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Done => return Poll::Ready(this.release().map(|d| Ok(Frame::data(d)))),
                State::Resuming {
                    continuation,
                    reason,
                    message,
                } => match continuation.as_mut().poll(cx) {
                    Poll::Pending => {
                        return match this.release() {
                            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                            None => Poll::Pending,
                        };
                    }
                    Poll::Ready(Some(resumed)) => {
                        let reason = *reason;
                        this.resumed(resumed, reason);
                    }
                    Poll::Ready(None) => {
                        let message = std::mem::take(message);
                        this.fail(message);
                    }
                },
                State::Streaming => match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data()
                            && let Some(reason) = this.take_in(&data)
                        {
                            this.broke(
                                reason,
                                "the provider's stream sent an error or a malformed event after it started"
                                    .to_owned(),
                            );
                        }
                        if let Some(data) = this.release() {
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                    }
                    Poll::Ready(Some(Err(error))) => {
                        let (reason, message) = match cause_ref::<BrokeAfterCommit>(&*error) {
                            Some(broke) => (broke.reason, broke.message.clone()),
                            None => (
                                BreakReason::Cut,
                                "the provider's stream broke after it started".to_owned(),
                            ),
                        };
                        this.broke(reason, message);
                    }
                    Poll::Ready(None) => {
                        if this.splice.ended() {
                            this.state = State::Done;
                        } else {
                            // An end without a finish: the answer was cut.
                            this.broke(
                                BreakReason::Cut,
                                "the provider's stream ended before the answer finished".to_owned(),
                            );
                        }
                    }
                    Poll::Pending => {
                        return match this.release() {
                            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                            None => Poll::Pending,
                        };
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done) && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
