//! Writing an OpenAI `chat.completion`, for dialects that translate a
//! provider's whole answer into OpenAI's.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::ProviderError;

/// Seconds since the epoch, for a completion's or a chunk's `created`.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A tool call of an answer's message: `arguments` is JSON text.
pub(crate) fn tool_call(id: &str, name: &str, arguments: &str) -> Value {
    json!({
        "id": id,
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    })
}

/// A tool's input as `arguments` text: `{}` for none.
pub(crate) fn arguments_text(input: &Value) -> String {
    if input.is_null() {
        "{}".to_owned()
    } else {
        input.to_string()
    }
}

/// The OpenAI `usage` object: `total` is `prompt` + `completion` unless
/// the provider gave one; `cached` prompt tokens as `cached_tokens`.
pub(crate) fn usage(
    prompt: u64,
    completion: u64,
    total: Option<u64>,
    cached: Option<u64>,
) -> Value {
    let total = total.unwrap_or_else(|| prompt.saturating_add(completion));
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
    });
    if let Some(cached) = cached {
        usage["prompt_tokens_details"] = json!({ "cached_tokens": cached });
    }
    usage
}

/// What one OpenAI chat completion says.
pub(crate) struct Completion<'a> {
    /// The completion's `id`.
    pub(crate) id: &'a str,
    /// Its `created`, seconds since the epoch.
    pub(crate) created: u64,
    /// The `model` that answered.
    pub(crate) model: &'a str,
    /// The message's `content`; `null` when none.
    pub(crate) content: Option<String>,
    /// The message's `tool_calls`, left out when empty.
    pub(crate) tool_calls: Vec<Value>,
    /// The choice's `finish_reason`.
    pub(crate) finish_reason: Option<&'a str>,
    /// The `usage` object.
    pub(crate) usage: Value,
}

impl Completion<'_> {
    /// The completion as JSON bytes: one choice (index 0) with an
    /// assistant message.
    pub(crate) fn into_bytes(self) -> Result<Bytes, ProviderError> {
        let mut message = json!({
            "role": "assistant",
            "content": self.content,
            "refusal": null,
        });
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(self.tool_calls);
        }
        let completion = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": self.finish_reason,
            }],
            "usage": self.usage,
        });
        serde_json::to_vec(&completion)
            .map(Bytes::from)
            .map_err(|e| ProviderError::invalid_response(e.to_string()))
    }
}
