//! [`AnthropicStreamBody`]: the translator driven by a response body's
//! frames, cooperative with the task that polls it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use understudy_core::{BoxError, ClassifiedError};

use super::AnthropicStreamTranslator;
use crate::dialect::stream_body::{StreamTranslate, TranslatedBody};

pin_project! {
    /// A response body that translates an Anthropic event stream into
    /// OpenAI chunks as its frames arrive.
    ///
    /// Errors of the inner body become
    /// [`FailureKind::StreamBroken`](understudy_core::FailureKind::StreamBroken)
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
        inner: TranslatedBody<B, AnthropicStreamTranslator>,
    }
}

impl<B> AnthropicStreamBody<B> {
    /// Wraps the body of an Anthropic streaming response.
    pub fn new(inner: B, translator: AnthropicStreamTranslator) -> Self {
        Self {
            inner: TranslatedBody::new(inner, translator),
        }
    }

    /// More than `bytes` raw upstream bytes before the first content is a
    /// [`FailureKind::StreamBroken`](understudy_core::FailureKind::StreamBroken)
    /// error; see [`AnthropicStreamTranslator::max_bytes_before_content`].
    /// Defaults to
    /// [`DEFAULT_MAX_BYTES_BEFORE_CONTENT`](super::DEFAULT_MAX_BYTES_BEFORE_CONTENT).
    pub fn max_bytes_before_content(self, bytes: usize) -> Self {
        Self {
            inner: self
                .inner
                .map_translator(|translator| translator.max_bytes_before_content(bytes)),
        }
    }

    /// A line or an event's data longer than `bytes` is a
    /// [`FailureKind::StreamBroken`](understudy_core::FailureKind::StreamBroken)
    /// error; see [`AnthropicStreamTranslator::max_event_bytes`]. Defaults to
    /// [`DEFAULT_MAX_EVENT_BYTES`](understudy_core::sse::DEFAULT_MAX_EVENT_BYTES).
    pub fn max_event_bytes(self, bytes: usize) -> Self {
        Self {
            inner: self
                .inner
                .map_translator(|translator| translator.max_event_bytes(bytes)),
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
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl StreamTranslate for AnthropicStreamTranslator {
    fn push(&mut self, input: &[u8]) -> Result<Bytes, ClassifiedError> {
        Self::push(self, input)
    }

    fn finish(&mut self) -> Result<Bytes, ClassifiedError> {
        Self::finish(self)
    }

    fn take_error(&mut self) -> Option<ClassifiedError> {
        Self::take_error(self)
    }

    fn is_finished(&self) -> bool {
        Self::is_finished(self)
    }
}
