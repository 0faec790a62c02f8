//! The `application/vnd.amazon.eventstream` framing of a Converse stream,
//! decoded by `aws-smithy-eventstream` (which checks both CRCs), each frame
//! bounded before it is buffered.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::BytesMut;

use crate::error::ProviderError;

/// The smallest frame: a 12-byte prelude and a 4-byte message CRC.
const MIN_FRAME_BYTES: usize = 16;

/// Buffers a stream's bytes and yields its frames, one at a time.
#[derive(Debug)]
pub(super) struct FrameReader {
    buffer: BytesMut,
    decoder: MessageFrameDecoder,
    max_frame_bytes: usize,
}

impl FrameReader {
    pub(super) fn new(max_frame_bytes: usize) -> Self {
        Self {
            buffer: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
            max_frame_bytes,
        }
    }

    pub(super) fn set_max_frame_bytes(&mut self, bytes: usize) {
        self.max_frame_bytes = bytes;
    }

    pub(super) fn push(&mut self, input: &[u8]) {
        self.buffer.extend_from_slice(input);
    }

    /// Bytes of a frame not yet complete.
    pub(super) fn has_partial_frame(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// The next whole frame, `None` until one is buffered. A frame whose
    /// declared length is over the bound is refused as soon as its length
    /// is read; a frame whose CRCs or headers are wrong is an error.
    pub(super) fn next_frame(&mut self) -> Result<Option<Message>, ProviderError> {
        let Some(prelude) = self.buffer.first_chunk::<4>() else {
            return Ok(None);
        };
        let total = usize::try_from(u32::from_be_bytes(*prelude)).unwrap_or(usize::MAX);
        if total > self.max_frame_bytes {
            return Err(ProviderError::invalid_response(format!(
                "an event-stream frame of {total} bytes is over the bound of {} bytes",
                self.max_frame_bytes
            )));
        }
        if total < MIN_FRAME_BYTES {
            return Err(ProviderError::invalid_response(format!(
                "an event-stream frame of {total} bytes is shorter than any frame"
            )));
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        match self.decoder.decode_frame(&mut self.buffer) {
            Ok(DecodedFrame::Complete(message)) => Ok(Some(message)),
            Ok(DecodedFrame::Incomplete) => Err(ProviderError::invalid_response(
                "an event-stream frame could not be read whole",
            )),
            Err(error) => Err(ProviderError::invalid_response(format!(
                "corrupt event-stream frame: {error}"
            ))),
        }
    }
}
