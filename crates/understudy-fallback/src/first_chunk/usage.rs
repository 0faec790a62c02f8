//! The tokens an answer reports in its `usage`: read from a whole body, or
//! picked out of a stream's events as they pass.

use serde::Deserialize;
use understudy_core::TargetName;
use understudy_core::events::{Event, SharedObserver};

/// The longest line a stream's usage is looked for in; a longer one is
/// skipped (a usage chunk is a few hundred bytes).
const MAX_LINE: usize = 64 * 1024;

/// The key a usage object is found by.
pub(super) const KEY: &[u8] = b"\"usage\"";

/// Where [`KEY`] is in `haystack`: a searcher built once, not per event.
pub(super) fn find_key(haystack: &[u8]) -> Option<usize> {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(KEY));
    FINDER.find(haystack)
}

/// An answer's token counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Tokens {
    pub(super) input: u64,
    pub(super) output: u64,
}

/// A `usage` object: OpenAI's names (chat completions, embeddings) or
/// Anthropic's (Messages).
#[allow(clippy::struct_field_names)] // the wire names
#[derive(Deserialize)]
pub(super) struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

impl Usage {
    pub(super) fn tokens(&self) -> Tokens {
        Tokens {
            input: self.prompt_tokens.or(self.input_tokens).unwrap_or(0),
            output: self.completion_tokens.or(self.output_tokens).unwrap_or(0),
        }
    }
}

/// An event's data with a `usage` object; everything else skipped.
#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<Usage>,
    /// Anthropic's `message_start` carries it in its message.
    #[serde(default)]
    message: Option<Box<WithUsage>>,
}

impl WithUsage {
    fn tokens(&self) -> Option<Tokens> {
        self.usage
            .as_ref()
            .map(Usage::tokens)
            .or_else(|| self.message.as_ref().and_then(|message| message.tokens()))
    }
}

/// Reports `tokens` as the usage of an answer from `target`.
pub(super) fn report(observer: &SharedObserver, target: Option<&TargetName>, tokens: Tokens) {
    if let Some(target) = target {
        observer.on_event(&Event::Usage {
            provider: &target.provider,
            model: &target.model,
            input_tokens: tokens.input,
            output_tokens: tokens.output,
        });
    }
}

/// Finds the usage in a stream's bytes as they pass: each `data:` line
/// that holds a `"usage"` object is parsed; the others are only scanned
/// for their end. A stream reporting usage more than once (Anthropic's
/// start and final counts) keeps the largest count of each direction.
#[derive(Debug, Default)]
pub(super) struct UsageScan {
    /// The current line's bytes so far, when it started in an earlier
    /// frame.
    line: Vec<u8>,
    /// The current line grew past [`MAX_LINE`]: skipped to its end.
    overflow: bool,
    tokens: Option<Tokens>,
}

impl UsageScan {
    /// Scans the next bytes of the stream. Bytes with no `"usage"` in
    /// them, and no line carried over, cost one search for the key and one
    /// for the last line break.
    pub(super) fn push(&mut self, data: &[u8]) {
        let Some(last) = memchr::memrchr(b'\n', data) else {
            self.append(data);
            return;
        };
        let complete = data.get(..last).unwrap_or_default();
        let tail = data.get(last.saturating_add(1)..).unwrap_or_default();
        if !self.line.is_empty() || self.overflow || find_key(complete).is_some() {
            let mut rest = complete;
            loop {
                let Some(end) = memchr::memchr(b'\n', rest) else {
                    self.end_line(rest);
                    break;
                };
                self.end_line(rest.get(..end).unwrap_or_default());
                rest = rest.get(end.saturating_add(1)..).unwrap_or_default();
            }
        }
        self.line.clear();
        self.overflow = false;
        self.append(tail);
    }

    /// A line ends with `head`, its bytes in this frame.
    fn end_line(&mut self, head: &[u8]) {
        if self.line.is_empty() && !self.overflow {
            self.check(head);
        } else {
            self.append(head);
            if !self.overflow {
                let line = std::mem::take(&mut self.line);
                self.check(&line);
                self.line = line;
            }
            self.line.clear();
        }
        self.overflow = false;
    }

    /// The usage found so far.
    pub(super) fn tokens(&self) -> Option<Tokens> {
        self.tokens
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.overflow || bytes.is_empty() {
            return;
        }
        if self.line.len().saturating_add(bytes.len()) > MAX_LINE {
            self.overflow = true;
            self.line = Vec::new();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn check(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if !has_usage_object(data) {
            return;
        }
        let Some(found) = serde_json::from_slice::<WithUsage>(data)
            .ok()
            .and_then(|event| event.tokens())
        else {
            return;
        };
        let tokens = self.tokens.get_or_insert_default();
        tokens.input = tokens.input.max(found.input);
        tokens.output = tokens.output.max(found.output);
    }
}

/// Whether `data` has `"usage"` followed by an object (not `null`, as
/// every chunk of a stream with usage has).
pub(super) fn has_usage_object(data: &[u8]) -> bool {
    let mut rest = data;
    while let Some(at) = find_key(rest) {
        let after = rest.get(at.saturating_add(KEY.len())..).unwrap_or_default();
        let after = after.trim_ascii_start();
        if let Some(value) = after.strip_prefix(b":")
            && value.trim_ascii_start().first() == Some(&b'{')
        {
            return true;
        }
        rest = after;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_chunk_split_across_frames_is_found() {
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"usage\"}}],\"usage\":null}\n\n\
            data: {\"choices\":[],\"usage\": {\"prompt_tokens\":12,\"completion_tokens\":5,\"total_tokens\":17}}\r\n\r\n\
            data: [DONE]\n\n";
        for split in 0..stream.len() {
            let mut scan = UsageScan::default();
            let (a, b) = stream.split_at(split);
            scan.push(a);
            scan.push(b);
            assert_eq!(
                scan.tokens(),
                Some(Tokens {
                    input: 12,
                    output: 5
                }),
                "split at {split}"
            );
        }
    }

    #[test]
    fn anthropic_counts_keep_the_largest() {
        let mut scan = UsageScan::default();
        scan.push(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n");
        scan.push(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n");
        assert_eq!(
            scan.tokens(),
            Some(Tokens {
                input: 25,
                output: 15
            })
        );
    }

    #[test]
    fn no_usage_object_no_tokens_and_long_lines_are_skipped() {
        let mut scan = UsageScan::default();
        scan.push(b"data: {\"usage\":null,\"choices\":[]}\n\n");
        scan.push(b"data: {\"text\":\"the \\\"usage\\\": {\"}\n");
        assert_eq!(scan.tokens(), None);
        let mut long = b"data: {\"usage\":{\"prompt_tokens\":1},\"pad\":\"".to_vec();
        long.resize(MAX_LINE + 10, b'x');
        scan.push(&long);
        scan.push(b"\"}\n");
        assert_eq!(scan.tokens(), None);
        assert!(scan.line.is_empty());
    }
}
