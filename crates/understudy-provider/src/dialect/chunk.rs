//! Writing OpenAI `chat.completion.chunk` events, for dialects that
//! translate a provider's stream into OpenAI's.

use serde::Serialize;
use serde_json::{Value, json};

/// The longest `id` or `model` a provider may give a translated stream;
/// every chunk repeats both, so a longer one would make a stream's output
/// grow with its square.
pub(crate) const MAX_UPSTREAM_LABEL_BYTES: usize = 256;

/// A provider's `id` or `model` for a translated stream, when it is fit to
/// repeat in every chunk (at most [`MAX_UPSTREAM_LABEL_BYTES`], not
/// empty); `None` otherwise, for the caller to fall back on its own.
pub(crate) fn upstream_label(value: &str) -> Option<&str> {
    (!value.is_empty() && value.len() <= MAX_UPSTREAM_LABEL_BYTES).then_some(value)
}

/// Writes the SSE events of one OpenAI stream: every chunk carries the same
/// `id`, `created` and `model`; with `include_usage`, every chunk carries
/// `"usage": null` and the usage chunk has empty `choices`, as OpenAI's
/// streams do. With `usage_chunk` alone, the usage chunk is written and the
/// other chunks are as without usage.
#[derive(Clone, Debug)]
pub(crate) struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    usage_chunk: bool,
}

impl ChunkWriter {
    /// A writer for the stream `id` of `model`.
    pub(crate) fn new(id: String, created: u64, model: String, include_usage: bool) -> Self {
        Self {
            id,
            created,
            model,
            include_usage,
            usage_chunk: false,
        }
    }

    /// Writes the usage chunk even when the caller did not ask for it
    /// ([`AnswerContext::usage_chunk`](super::AnswerContext::usage_chunk)).
    pub(crate) fn with_usage_chunk(mut self, on: bool) -> Self {
        self.usage_chunk = on;
        self
    }

    /// A chunk of one choice (index 0) with this `delta` and
    /// `finish_reason`.
    pub(crate) fn delta(&self, out: &mut Vec<u8>, delta: &Value, finish_reason: Option<&str>) {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        write_event(out, &chunk);
    }

    /// The usage chunk (empty `choices`), when the caller asked for it or
    /// the writer was told to write it.
    pub(crate) fn usage(&self, out: &mut Vec<u8>, usage: &Value) {
        if !self.include_usage && !self.usage_chunk {
            return;
        }
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        });
        write_event(out, &chunk);
    }

    /// The end of the stream: `data: [DONE]`.
    pub(crate) fn done(out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

/// Writes one SSE event `data: {chunk}`.
pub(crate) fn write_event<T: Serialize + ?Sized>(out: &mut Vec<u8>, chunk: &T) {
    out.extend_from_slice(b"data: ");
    // Writing a JSON value, or a plain struct of strings and numbers, into
    // a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, chunk);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_upstream_labels_are_not_repeated() {
        assert_eq!(upstream_label("gemini-2.0-flash"), Some("gemini-2.0-flash"));
        assert_eq!(upstream_label(""), None);
        assert_eq!(
            upstream_label(&"m".repeat(MAX_UPSTREAM_LABEL_BYTES + 1)),
            None
        );
    }

    #[test]
    fn chunks_share_their_identity_and_carry_null_usage_when_asked() {
        let writer = ChunkWriter::new("chatcmpl-1".to_owned(), 7, "m".to_owned(), true);
        let mut out = Vec::new();
        writer.delta(&mut out, &json!({"content": "Hi"}), None);
        writer.usage(&mut out, &json!({"total_tokens": 3}));
        ChunkWriter::done(&mut out);
        let text = String::from_utf8(out).unwrap_or_default();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 3);
        let first: Value = serde_json::from_str(&events[0][6..]).unwrap_or_default();
        assert_eq!(first["id"], "chatcmpl-1");
        assert_eq!(first["usage"], Value::Null);
        assert!(first.as_object().is_some_and(|o| o.contains_key("usage")));
        let usage: Value = serde_json::from_str(&events[1][6..]).unwrap_or_default();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["created"], 7);
        assert_eq!(events[2], "data: [DONE]");

        let quiet = ChunkWriter::new("c".to_owned(), 0, "m".to_owned(), false);
        let mut out = Vec::new();
        quiet.delta(&mut out, &json!({}), Some("stop"));
        quiet.usage(&mut out, &json!({}));
        let text = String::from_utf8(out).unwrap_or_default();
        assert_eq!(text.matches("data: ").count(), 1);
        assert!(!text.contains("usage"));

        // The usage chunk alone: the other chunks carry no usage.
        let counted = quiet.with_usage_chunk(true);
        let mut out = Vec::new();
        counted.delta(&mut out, &json!({}), Some("stop"));
        counted.usage(&mut out, &json!({"total_tokens": 3}));
        let text = String::from_utf8(out).unwrap_or_default();
        assert_eq!(text.matches("data: ").count(), 2);
        assert_eq!(text.matches("usage").count(), 1, "{text}");
    }
}
