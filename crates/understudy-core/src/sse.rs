//! An incremental decoder for server-sent events.
//!
//! Providers stream answers as SSE (`text/event-stream`). Translation
//! (Anthropic events to OpenAI chunks) and the fallback's first-chunk guard
//! both need to see whole events as bytes arrive in arbitrary pieces; this
//! decoder follows the WHATWG parsing rules: lines end in LF, CRLF or CR; a
//! blank line dispatches; `data:` lines join with LF; lines starting with `:`
//! are comments; an event without data is not dispatched.

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
/// # Example
///
/// ```
/// use understudy_core::sse::SseDecoder;
///
/// let mut decoder = SseDecoder::new();
/// decoder.push(b": keep-alive\n\nevent: message_start\r\ndata: {\"type\":");
/// assert_eq!(decoder.next_event(), None); // not finished yet
/// decoder.push(b"\"message_start\"}\r\n\r\ndata: [DONE]\n\n");
///
/// let first = decoder.next_event().unwrap();
/// assert_eq!(first.event.as_deref(), Some("message_start"));
/// assert_eq!(first.data, "{\"type\":\"message_start\"}");
/// assert!(decoder.next_event().unwrap().is_done());
/// assert_eq!(decoder.next_event(), None);
/// ```
#[derive(Debug, Default)]
pub struct SseDecoder {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already consumed.
    start: usize,
    /// The last line ended in CR: skip an LF that starts the next chunk.
    skip_lf: bool,
    pending: SseEvent,
    has_data: bool,
}

impl SseDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes as they arrive.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.buffer.len() {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete event, if the bytes pushed so far hold one.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if self.skip_lf && self.start < self.buffer.len() {
                if self.buffer[self.start] == b'\n' {
                    self.start += 1;
                }
                self.skip_lf = false;
            }
            let rest = &self.buffer[self.start..];
            let end = rest.iter().position(|&b| b == b'\n' || b == b'\r')?;
            let terminator = rest[end];
            let line_start = self.start;
            self.start += end + 1;
            if terminator == b'\r' {
                if self.start < self.buffer.len() {
                    if self.buffer[self.start] == b'\n' {
                        self.start += 1;
                    }
                } else {
                    self.skip_lf = true;
                }
            }
            let line =
                String::from_utf8_lossy(&self.buffer[line_start..line_start + end]).into_owned();
            if let Some(event) = self.process_line(&line) {
                return Some(event);
            }
        }
    }

    /// Has a partial line or event been received that is not dispatched yet?
    pub fn has_partial(&self) -> bool {
        self.start < self.buffer.len() || self.has_data || self.pending.event.is_some()
    }

    fn process_line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.pending);
            let had_data = std::mem::replace(&mut self.has_data, false);
            return had_data.then_some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
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
        None
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
            while let Some(event) = decoder.next_event() {
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
        assert_eq!(decoder.next_event(), None);
        assert!(decoder.has_partial());
        decoder.push(b":[]}\n\n");
        assert_eq!(decoder.next_event().unwrap().data, "{\"choices\":[]}");
        assert!(!decoder.has_partial());
    }

    #[test]
    fn long_streams_do_not_grow_the_buffer() {
        let mut decoder = SseDecoder::new();
        for _ in 0..10_000 {
            decoder.push(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n");
            assert!(decoder.next_event().is_some());
        }
        assert!(decoder.buffer.capacity() < 8192);
    }
}
