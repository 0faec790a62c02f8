//! [`SseTranslation`]: an upstream SSE stream translated, event by event,
//! into another stream as its bytes arrive.
//!
//! The translation drives an [`EventTranslator`], which knows one pair of
//! wire formats, the same way for every pair: it decodes the input with
//! [`SseDecoder`] (whose line and event bound is a
//! [`FailureKind::StreamBroken`] error), hands each event to the
//! translator, ends at the event the translator says ends the stream,
//! and holds an error back behind output already produced, for
//! [`take_error`](SseTranslation::take_error) or the next call.

use bytes::Bytes;
use understudy_core::sse::{SseDecoder, SseEvent};
use understudy_core::{ClassifiedError, FailureKind, Outcome};

use crate::error::ProviderError;

/// What an event means for the input after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// More events may follow.
    Continue,
    /// The translated stream is complete: the rest of the input is ignored.
    Stop,
}

/// The part of a [`SseTranslation`] that knows the two wire formats.
pub(crate) trait EventTranslator {
    /// Checks each input before it is decoded (a bound on the raw stream);
    /// an error ends the translation. Every input passes by default.
    fn admit(&mut self, _input: &[u8]) -> Result<(), ClassifiedError> {
        Ok(())
    }

    /// Writes the translation of one event into `out`; an error ends the
    /// translation.
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<Flow, ClassifiedError>;

    /// The upstream stream ended before an event said [`Flow::Stop`]: writes
    /// the translated stream's end into `out`, or returns the error ending
    /// there is. By default the stream was cut, a
    /// [`FailureKind::StreamBroken`] error.
    fn end(&mut self, _out: &mut Vec<u8>) -> Result<(), ClassifiedError> {
        Err(ProviderError::StreamCut.classified(Outcome::Failure(FailureKind::StreamBroken)))
    }
}

/// An SSE stream being translated by an [`EventTranslator`].
#[derive(Debug)]
pub(crate) struct SseTranslation<T> {
    decoder: SseDecoder,
    translator: T,
    finished: bool,
    pending_error: Option<ClassifiedError>,
}

impl<T: EventTranslator> SseTranslation<T> {
    /// A translation by `translator`, with the decoder's default bound.
    pub(crate) fn new(translator: T) -> Self {
        Self {
            decoder: SseDecoder::new(),
            translator,
            finished: false,
            pending_error: None,
        }
    }

    /// The event translator.
    pub(crate) fn translator_mut(&mut self) -> &mut T {
        &mut self.translator
    }

    /// A line or an event's data longer than `bytes` is a
    /// [`FailureKind::StreamBroken`] error.
    pub(crate) fn set_max_event_bytes(&mut self, bytes: usize) {
        self.decoder.set_max_event_bytes(bytes);
    }

    /// Feeds upstream bytes; returns the translation of the events they
    /// completed. An error behind output is held for the next call (or
    /// [`take_error`](Self::take_error)); after an error or [`Flow::Stop`],
    /// input is ignored.
    pub(crate) fn push(&mut self, input: &[u8]) -> Result<Bytes, ClassifiedError> {
        if let Some(error) = self.pending_error.take() {
            return Err(error);
        }
        if self.finished {
            return Ok(Bytes::new());
        }
        if let Err(error) = self.translator.admit(input) {
            self.finished = true;
            return Err(error);
        }
        self.decoder.push(input);
        let mut out = Vec::new();
        loop {
            let handled = match self.decoder.next_event() {
                Ok(None) => break,
                Ok(Some(event)) => self.translator.event(&event, &mut out),
                // A line or event larger than the decoder holds.
                Err(error) => Err(ClassifiedError::new(Outcome::Failure(
                    FailureKind::StreamBroken,
                ))
                .with_source(error)),
            };
            match handled {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => {
                    self.finished = true;
                    break;
                }
                Err(error) => {
                    self.finished = true;
                    if out.is_empty() {
                        return Err(error);
                    }
                    self.pending_error = Some(error);
                    break;
                }
            }
        }
        Ok(Bytes::from(out))
    }

    /// The upstream stream ended: the translation's last bytes, or the
    /// error that ending there is (the one held back, if any).
    pub(crate) fn finish(&mut self) -> Result<Bytes, ClassifiedError> {
        if let Some(error) = self.pending_error.take() {
            return Err(error);
        }
        if self.finished {
            return Ok(Bytes::new());
        }
        self.finished = true;
        let mut out = Vec::new();
        self.translator.end(&mut out)?;
        Ok(Bytes::from(out))
    }

    /// An error held back by [`push`](Self::push) behind output it
    /// returned.
    pub(crate) fn take_error(&mut self) -> Option<ClassifiedError> {
        self.pending_error.take()
    }

    /// Has the translation ended (the stream's end, an error, or
    /// [`finish`](Self::finish)) with no error left to take?
    pub(crate) fn is_finished(&self) -> bool {
        self.finished && self.pending_error.is_none()
    }
}
