//! [`AnthropicStreamBody`]: the translator driven by a response body's
//! frames, cooperative with the task that polls it.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use understudy_core::{BoxError, ClassifiedError, FailureKind, Outcome};

use super::{AnthropicStreamTranslator, YIELD_AFTER_BYTES, YIELD_AFTER_FRAMES};

pin_project! {
    /// A response body that translates an Anthropic event stream into
    /// OpenAI chunks as its frames arrive.
    ///
    /// Errors of the inner body become [`FailureKind::StreamBroken`]
    /// errors (an inner error that is already a [`ClassifiedError`] keeps
    /// its outcome); an Anthropic `error` event becomes the error
    /// [`AnthropicStreamTranslator`] classified. The body ends after
    /// `data: [DONE]`.
    ///
    /// The translator's bounds apply
    /// ([`max_bytes_before_content`](Self::max_bytes_before_content),
    /// [`max_event_bytes`](Self::max_event_bytes)). And the body is
    /// cooperative: when upstream frames keep arriving without producing
    /// output (`ping` events, thinking deltas sent as fast as the upstream
    /// can), `poll_frame` wakes its task and returns [`Poll::Pending`] after
    /// 32 frames or 64 KiB, so a timeout polled by the same task (the
    /// first-chunk or request timeout) gets its turn. This is a plain bound
    /// rather than tokio's cooperative budget, so it holds whatever the
    /// inner body is and whichever runtime polls it.
    #[derive(Debug)]
    pub struct AnthropicStreamBody<B> {
        #[pin]
        inner: B,
        translator: AnthropicStreamTranslator,
        done: bool,
    }
}

impl<B> AnthropicStreamBody<B> {
    /// Wraps the body of an Anthropic streaming response.
    pub fn new(inner: B, translator: AnthropicStreamTranslator) -> Self {
        Self {
            inner,
            translator,
            done: false,
        }
    }

    /// More than `bytes` raw upstream bytes before the first content is a
    /// [`FailureKind::StreamBroken`] error; see
    /// [`AnthropicStreamTranslator::max_bytes_before_content`]. Defaults to
    /// [`DEFAULT_MAX_BYTES_BEFORE_CONTENT`](super::DEFAULT_MAX_BYTES_BEFORE_CONTENT).
    pub fn max_bytes_before_content(self, bytes: usize) -> Self {
        Self {
            translator: self.translator.max_bytes_before_content(bytes),
            ..self
        }
    }

    /// A line or an event's data longer than `bytes` is a
    /// [`FailureKind::StreamBroken`] error; see
    /// [`AnthropicStreamTranslator::max_event_bytes`]. Defaults to
    /// [`DEFAULT_MAX_EVENT_BYTES`](understudy_core::sse::DEFAULT_MAX_EVENT_BYTES).
    pub fn max_event_bytes(self, bytes: usize) -> Self {
        Self {
            translator: self.translator.max_event_bytes(bytes),
            ..self
        }
    }
}

impl<B> Body for AnthropicStreamBody<B>
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
        let mut this = self.project();
        // Work done in this call without output, for the yield bound.
        let mut frames = 0_u32;
        let mut bytes = 0_usize;
        loop {
            if frames >= YIELD_AFTER_FRAMES || bytes >= YIELD_AFTER_BYTES {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if let Some(error) = this.translator.take_error() {
                *this.done = true;
                return Poll::Ready(Some(Err(error.into())));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            if this.translator.is_finished() {
                // Read the end of the upstream body if it is already there,
                // so the connection can go back to the pool; never wait.
                *this.done = true;
                let _ = this.inner.as_mut().poll_frame(cx);
                return Poll::Ready(None);
            }
            let result = match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    frames += 1;
                    match frame.into_data() {
                        Ok(data) => {
                            bytes = bytes.saturating_add(data.len());
                            this.translator.push(&data)
                        }
                        Err(_trailers) => continue,
                    }
                }
                Some(Err(error)) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(broken(error.into()))));
                }
                None => this.translator.finish(),
            };
            match result {
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Err(error) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(error.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

fn broken(error: BoxError) -> BoxError {
    if error.is::<ClassifiedError>() {
        return error;
    }
    ClassifiedError::new(Outcome::Failure(FailureKind::StreamBroken))
        .with_source(error)
        .into()
}
