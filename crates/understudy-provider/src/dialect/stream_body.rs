//! A response body that translates a provider's stream as its frames
//! arrive, for the dialects whose streams are translated
//! ([`Dialect::translate_stream`](super::Dialect::translate_stream)).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use understudy_core::{BoxError, ClassifiedError, FailureKind, Outcome};

/// [`TranslatedBody::poll_frame`] yields after this many upstream frames
/// without output...
const YIELD_AFTER_FRAMES: u32 = 32;
/// ...or after this many upstream bytes without output.
const YIELD_AFTER_BYTES: usize = 64 * 1024;

/// An incremental translator of a provider's stream into OpenAI SSE.
pub(crate) trait StreamTranslate {
    /// Feeds upstream bytes; returns the OpenAI SSE bytes they completed.
    /// An error returned behind output is held for
    /// [`take_error`](Self::take_error).
    fn push(&mut self, input: &[u8]) -> Result<Bytes, ClassifiedError>;

    /// The upstream stream ended: the last bytes, or the error that ending
    /// there is.
    fn finish(&mut self) -> Result<Bytes, ClassifiedError>;

    /// An error held back by [`push`](Self::push) behind output it returned.
    fn take_error(&mut self) -> Option<ClassifiedError>;

    /// Has the translated stream ended (nothing more to read upstream)?
    fn is_finished(&self) -> bool;
}

pin_project! {
    /// A body that feeds its inner body's frames to a translator.
    ///
    /// Errors of the inner body become [`FailureKind::StreamBroken`]
    /// errors (an inner error that is already a [`ClassifiedError`] keeps
    /// its outcome). The body is cooperative: when upstream frames keep
    /// arriving without producing output, `poll_frame` wakes its task and
    /// returns [`Poll::Pending`] after 32 frames or 64 KiB, so a timeout
    /// polled by the same task gets its turn. This is a plain bound rather
    /// than tokio's cooperative budget, so it holds whatever the inner body
    /// is and whichever runtime polls it.
    #[derive(Debug)]
    pub(crate) struct TranslatedBody<B, T> {
        #[pin]
        inner: B,
        translator: T,
        done: bool,
    }
}

impl<B, T> TranslatedBody<B, T> {
    /// Translates `inner` with `translator`.
    pub(crate) fn new(inner: B, translator: T) -> Self {
        Self {
            inner,
            translator,
            done: false,
        }
    }

    /// The same body with its translator changed by `change`.
    pub(crate) fn map_translator(self, change: impl FnOnce(T) -> T) -> Self {
        Self {
            translator: change(self.translator),
            ..self
        }
    }
}

impl<B, T> Body for TranslatedBody<B, T>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    T: StreamTranslate,
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
