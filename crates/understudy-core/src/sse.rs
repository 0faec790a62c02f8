//! An incremental decoder for server-sent events.
//!
//! Providers stream answers as SSE (`text/event-stream`). Translation
//! (Anthropic events to OpenAI chunks) and the fallback's first-chunk guard
//! both need to see whole events as bytes arrive in arbitrary pieces; this
//! decoder follows the WHATWG parsing rules: lines end in LF, CRLF or CR; a
//! blank line dispatches; `data:` lines join with LF; lines starting with `:`
//! are comments; an event without data is not dispatched.
//!
//! The decoder looks at each byte once, however the bytes are split, and
//! holds at most [`SseDecoder::max_event_bytes`] of one line or one event's
//! data: a peer that sends one endless line, or an endless event, gets
//! [`SseError::EventTooLarge`] instead of memory and CPU.

use std::borrow::Cow;
use std::fmt;

/// The largest line, and the most data of one event, an [`SseDecoder`]
/// holds by default: 1 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Why an [`SseDecoder`] stopped decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SseError {
    /// A line, or the data of one event, is longer than `limit` bytes.
    EventTooLarge {
        /// The decoder's [`max_event_bytes`](SseDecoder::max_event_bytes).
        limit: usize,
    },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EventTooLarge { limit } => {
                write!(
                    f,
                    "a server-sent event or line is larger than {limit} bytes"
                )
            }
        }
    }
}

impl std::error::Error for SseError {}

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (none means `message`).
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

impl SseEvent {
    /// Is this the OpenAI end-of-stream marker, `data: [DONE]`?
    pub fn is_done(&self) -> bool {
        self.data == "[DONE]"
    }
}

/// Decodes a byte stream into [`SseEvent`]s.
///
/// A line longer than [`max_event_bytes`](Self::max_event_bytes), or an
/// event whose data grows past it, makes [`next_event`](Self::next_event)
/// return [`SseError::EventTooLarge`]; from then on the decoder drops what
/// it held and what is pushed, and returns the same error.
///
/// # Example
///
/// ```
/// use understudy_core::sse::{SseDecoder, SseError};
///
/// let mut decoder = SseDecoder::new();
/// decoder.push(b": keep-alive\n\nevent: message_start\r\ndata: {\"type\":");
/// assert_eq!(decoder.next_event(), Ok(None)); // not finished yet
/// decoder.push(b"\"message_start\"}\r\n\r\ndata: [DONE]\n\n");
///
/// let first = decoder.next_event().unwrap().unwrap();
/// assert_eq!(first.event.as_deref(), Some("message_start"));
/// assert_eq!(first.data, "{\"type\":\"message_start\"}");
/// assert!(decoder.next_event().unwrap().unwrap().is_done());
/// assert_eq!(decoder.next_event(), Ok(None));
///
/// // A line that never ends is an error once it passes the limit.
/// let mut decoder = SseDecoder::with_max_event_bytes(16);
/// decoder.push(b"data: 0123456789abcdef");
/// assert_eq!(decoder.next_event(), Err(SseError::EventTooLarge { limit: 16 }));
/// ```
#[derive(Debug)]
pub struct SseDecoder {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already consumed.
    start: usize,
    /// Bytes of `buffer` already searched for a line end: the partial
    /// line `start..scanned` holds none.
    scanned: usize,
    /// The last line ended in CR: skip an LF that starts the next chunk.
    skip_lf: bool,
    pending: SseEvent,
    has_data: bool,
    max_event_bytes: usize,
    failed: bool,
    /// Bytes searched for line ends, in all: tests check it stays linear.
    #[cfg(test)]
    examined: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// An empty decoder that holds at most [`DEFAULT_MAX_EVENT_BYTES`] of
    /// one line or event.
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// An empty decoder that holds at most `limit` bytes of one line, and of
    /// the data of one event.
    pub fn with_max_event_bytes(limit: usize) -> Self {
        Self {
            buffer: Vec::new(),
            start: 0,
            scanned: 0,
            skip_lf: false,
            pending: SseEvent::default(),
            has_data: false,
            max_event_bytes: limit,
            failed: false,
            #[cfg(test)]
            examined: 0,
        }
    }

    /// Changes the limit on one line and on the data of one event; what is
    /// already held is checked against it by the next
    /// [`next_event`](Self::next_event).
    pub fn set_max_event_bytes(&mut self, limit: usize) {
        self.max_event_bytes = limit;
    }

    /// The limit on one line and on the data of one event.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// Feeds bytes as they arrive. After an error they are dropped.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed {
            return;
        }
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
            self.scanned = 0;
        } else if self.start > 4096 && self.start * 2 > self.buffer.len() {
            self.buffer.drain(..self.start);
            self.scanned = self.scanned.saturating_sub(self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete event, if the bytes pushed so far hold one.
    ///
    /// Returns [`SseError::EventTooLarge`] when a line or an event's data
    /// is longer than [`max_event_bytes`](Self::max_event_bytes), and again
    /// on every later call.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        if self.failed {
            return Err(self.error());
        }
        loop {
            if self.skip_lf && self.start < self.buffer.len() {
                if self.buffer[self.start] == b'\n' {
                    self.start += 1;
                }
                self.skip_lf = false;
            }
            let from = self.scanned.max(self.start);
            let found = memchr::memchr2(b'\n', b'\r', &self.buffer[from..]);
            #[cfg(test)]
            {
                self.examined += found.map_or(self.buffer.len() - from, |offset| offset + 1);
            }
            let Some(offset) = found else {
                self.scanned = self.buffer.len();
                if self.buffer.len() - self.start > self.max_event_bytes {
                    return Err(self.fail());
                }
                return Ok(None);
            };
            let end = from + offset;
            let line_start = self.start;
            if end - line_start > self.max_event_bytes {
                return Err(self.fail());
            }
            let terminator = self.buffer[end];
            self.start = end + 1;
            if terminator == b'\r' {
                if self.start < self.buffer.len() {
                    if self.buffer[self.start] == b'\n' {
                        self.start += 1;
                    }
                } else {
                    self.skip_lf = true;
                }
            }
            self.scanned = self.start;
            // The line is read where it lies (copied only when it is not
            // UTF-8): the buffer is set aside while the event takes it in.
            let buffer = std::mem::take(&mut self.buffer);
            let processed = match String::from_utf8_lossy(&buffer[line_start..end]) {
                Cow::Borrowed(line) => self.process_line(line),
                Cow::Owned(line) => self.process_line(&line),
            };
            if !self.failed {
                self.buffer = buffer;
            }
            if let Some(event) = processed? {
                return Ok(Some(event));
            }
        }
    }

    /// Has a partial line or event been received that is not dispatched yet?
    pub fn has_partial(&self) -> bool {
        self.start < self.buffer.len() || self.has_data || self.pending.event.is_some()
    }

    fn error(&self) -> SseError {
        SseError::EventTooLarge {
            limit: self.max_event_bytes,
        }
    }

    /// Stops decoding for good and frees what was held.
    fn fail(&mut self) -> SseError {
        self.failed = true;
        self.buffer = Vec::new();
        self.start = 0;
        self.scanned = 0;
        self.skip_lf = false;
        self.pending = SseEvent::default();
        self.has_data = false;
        self.error()
    }

    fn process_line(&mut self, line: &str) -> Result<Option<SseEvent>, SseError> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.pending);
            let had_data = std::mem::replace(&mut self.has_data, false);
            return Ok(had_data.then_some(event));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                let separator = usize::from(self.has_data);
                let total = self
                    .pending
                    .data
                    .len()
                    .saturating_add(separator)
                    .saturating_add(value.len());
                if total > self.max_event_bytes {
                    return Err(self.fail());
                }
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.pending.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.pending.id = Some(value.to_owned()),
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(event) = decoder.next_event().unwrap() {
                events.push(event);
            }
        }
        events
    }

    #[test]
    fn any_split_gives_the_same_events() {
        let stream: &[u8] =
            b"event: a\r\ndata: one\r\ndata: two\r\n\r\n: ping\n\ndata:x\r\rdata: [DONE]\n\n";
        let whole = decode_all(&[stream]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].event.as_deref(), Some("a"));
        assert_eq!(whole[0].data, "one\ntwo");
        assert_eq!(whole[1].data, "x");
        assert!(whole[2].is_done());
        for split in 1..stream.len() {
            let (head, tail) = stream.split_at(split);
            assert_eq!(decode_all(&[head, tail]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytes), whole);
    }

    #[test]
    fn comments_and_empty_events_are_not_dispatched() {
        assert!(decode_all(&[b": comment\n\nevent: ping\n\n\n"]).is_empty());
    }

    #[test]
    fn partial_input_is_reported() {
        let mut decoder = SseDecoder::new();
        assert!(!decoder.has_partial());
        decoder.push(b"data: {\"choices\"");
        assert_eq!(decoder.next_event(), Ok(None));
        assert!(decoder.has_partial());
        decoder.push(b":[]}\n\n");
        assert_eq!(
            decoder.next_event().unwrap().unwrap().data,
            "{\"choices\":[]}"
        );
        assert!(!decoder.has_partial());
    }

    #[test]
    fn long_streams_do_not_grow_the_buffer() {
        let mut decoder = SseDecoder::new();
        for _ in 0..10_000 {
            decoder.push(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n");
            assert!(decoder.next_event().unwrap().is_some());
        }
        assert!(decoder.buffer.capacity() < 8192);
    }

    #[test]
    fn a_long_line_in_small_pieces_is_scanned_once() {
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: ");
        let piece = [b'x'; 16];
        let pieces = 20_000;
        for _ in 0..pieces {
            decoder.push(&piece);
            assert_eq!(decoder.next_event(), Ok(None));
        }
        decoder.push(b"\n\n");
        let event = decoder.next_event().unwrap().unwrap();
        assert_eq!(event.data.len(), 16 * pieces);
        // Each byte searched once (the two line ends included), not the
        // whole partial line again on every push.
        assert_eq!(decoder.examined, 6 + 16 * pieces + 2);
    }

    #[test]
    fn an_endless_line_is_an_error_and_is_not_held() {
        let mut decoder = SseDecoder::new();
        let piece = vec![b'x'; 64 * 1024];
        let mut pushed = 0;
        let error = loop {
            decoder.push(&piece);
            pushed += piece.len();
            match decoder.next_event() {
                Ok(None) => assert!(pushed <= DEFAULT_MAX_EVENT_BYTES),
                Ok(Some(event)) => panic!("unexpected {event:?}"),
                Err(error) => break error,
            }
        };
        assert_eq!(
            error,
            SseError::EventTooLarge {
                limit: DEFAULT_MAX_EVENT_BYTES
            }
        );
        assert_eq!(pushed, DEFAULT_MAX_EVENT_BYTES + piece.len());
        // Nothing more is buffered, and the error stays.
        decoder.push(&piece);
        decoder.push(b"\n\ndata: late\n\n");
        assert_eq!(decoder.buffer.capacity(), 0);
        assert_eq!(decoder.next_event(), Err(error));
    }

    #[test]
    fn a_long_complete_line_is_an_error() {
        let mut decoder = SseDecoder::with_max_event_bytes(10);
        decoder.push(b"data: 1234\n\ndata: 12345\n\n");
        assert_eq!(decoder.next_event().unwrap().unwrap().data, "1234");
        assert_eq!(
            decoder.next_event(),
            Err(SseError::EventTooLarge { limit: 10 })
        );
    }

    #[test]
    fn an_event_with_endless_data_lines_is_an_error() {
        let mut decoder = SseDecoder::with_max_event_bytes(1000);
        let mut result = Ok(None);
        for _ in 0..1000 {
            decoder.push(b"data: 0123456789\n");
            result = decoder.next_event();
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::EventTooLarge { limit: 1000 }));
        assert!(decoder.pending.data.is_empty());
        // Exactly at the limit is fine: n lines of ten bytes joined by LF
        // are 11 * n - 1 bytes.
        let mut decoder = SseDecoder::with_max_event_bytes(11 * 91 - 1);
        for _ in 0..91 {
            decoder.push(b"data: 0123456789\n");
        }
        decoder.push(b"\n");
        assert_eq!(
            decoder.next_event().unwrap().unwrap().data.len(),
            11 * 91 - 1
        );
    }
}
