//! Bedrock Converse response → OpenAI chat completion.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use understudy_core::{ClientErrorKind, Outcome};

use super::is_forced_tool;
use crate::dialect::completion::{self, Completion, arguments_text, tool_call};
use crate::error::ProviderError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Converse {
    output: Output,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Vec<Block>,
}

/// A content block: text, a tool use, or something this translation drops
/// (reasoning, citations, anything newer).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Block {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolUse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(clippy::struct_field_names)] // Bedrock's field names.
struct ToolUse {
    tool_use_id: String,
    name: String,
    #[serde(default)]
    input: Value,
}

/// Bedrock's token counts. Every field may be absent.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(clippy::struct_field_names)] // Bedrock's field names.
pub(super) struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_write_input_tokens: Option<u64>,
}

impl Usage {
    /// The OpenAI `usage` object: prompt tokens count cache reads and
    /// writes too; the total is Bedrock's when it gives one.
    pub(super) fn to_openai(self) -> Value {
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
            .saturating_add(self.cache_write_input_tokens.unwrap_or(0));
        completion::usage(
            prompt,
            self.output_tokens.unwrap_or(0),
            self.total_tokens,
            self.cache_read_input_tokens,
        )
    }
}

/// Bedrock's `stopReason` → OpenAI's `finish_reason`.
///
/// ```
/// use understudy_provider::bedrock::finish_reason;
///
/// assert_eq!(finish_reason("end_turn"), "stop");
/// assert_eq!(finish_reason("stop_sequence"), "stop");
/// assert_eq!(finish_reason("max_tokens"), "length");
/// assert_eq!(finish_reason("tool_use"), "tool_calls");
/// assert_eq!(finish_reason("guardrail_intervened"), "content_filter");
/// assert_eq!(finish_reason("content_filtered"), "content_filter");
/// ```
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "content_filtered" | "guardrail_intervened" => "content_filter",
        // end_turn, stop_sequence and anything newer.
        _ => "stop",
    }
}

/// The `finish_reason` of an answer that was the forced tool's input:
/// the answer itself, so `stop` where Bedrock says `tool_use`.
pub(super) fn structured_finish_reason(stop_reason: &str) -> &'static str {
    match finish_reason(stop_reason) {
        "tool_calls" => "stop",
        other => other,
    }
}

/// Translates a Bedrock Converse response body into an OpenAI chat
/// completion with this `id`, `model` (the model id asked for) and
/// `created`.
///
/// Text blocks join into `message.content`, `toolUse` blocks become
/// `message.tool_calls`, `stopReason` becomes `finish_reason` and `usage`
/// the token counts. The forced tool of `response_format`
/// ([`FORCED_TOOL_NAME`](crate::dialect::structured::FORCED_TOOL_NAME)) is
/// the answer: its input, serialised, is `message.content`.
///
/// # Example
///
/// ```
/// use understudy_provider::bedrock::translate_response;
///
/// let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Hi!"}]}},
///   "stopReason":"end_turn","usage":{"inputTokens":10,"outputTokens":3,"totalTokens":13},
///   "metrics":{"latencyMs":200}}"#;
/// let out = translate_response(body, "amazon.nova-pro-v1:0", "chatcmpl-1", 1_700_000_000).unwrap();
/// let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
/// assert_eq!(json["object"], "chat.completion");
/// assert_eq!(json["model"], "amazon.nova-pro-v1:0");
/// assert_eq!(json["choices"][0]["message"]["content"], "Hi!");
/// assert_eq!(json["choices"][0]["finish_reason"], "stop");
/// assert_eq!(json["usage"]["total_tokens"], 13);
/// ```
pub fn translate_response(
    body: &[u8],
    model: &str,
    id: &str,
    created: u64,
) -> Result<Bytes, ProviderError> {
    let converse: Converse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::invalid_response(format!("not a Converse response: {e}")))?;
    let blocks = converse
        .output
        .message
        .map(|message| message.content)
        .unwrap_or_default();
    let mut text: Option<String> = None;
    let mut structured: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in blocks {
        if let Some(part) = block.text {
            text.get_or_insert_with(String::new).push_str(&part);
        }
        if let Some(tool) = block.tool_use {
            let arguments = arguments_text(&tool.input);
            if is_forced_tool(&tool.name) {
                structured = Some(arguments);
            } else {
                tool_calls.push(tool_call(&tool.tool_use_id, &tool.name, &arguments));
            }
        }
    }
    let stop_reason = converse.stop_reason.as_deref();
    let (content, finish) = match structured {
        Some(answer) => (Some(answer), stop_reason.map(structured_finish_reason)),
        None => (text, stop_reason.map(finish_reason)),
    };
    Completion {
        id,
        created,
        model,
        content,
        tool_calls,
        finish_reason: finish,
        usage: converse.usage.unwrap_or_default().to_openai(),
    }
    .into_bytes()
}

/// A 2xx answer a guardrail or content filter stopped before it said
/// anything: [`ClientErrorKind::ContentFiltered`].
pub(super) fn filtered_outcome(body: &[u8]) -> Option<Outcome> {
    let converse: Converse = serde_json::from_slice(body).ok()?;
    let filtered = matches!(
        converse.stop_reason.as_deref(),
        Some("content_filtered" | "guardrail_intervened")
    );
    let said_nothing = converse.output.message.is_none_or(|message| {
        message.content.iter().all(|block| {
            block.tool_use.is_none() && block.text.as_deref().is_none_or(str::is_empty)
        })
    });
    (filtered && said_nothing).then_some(Outcome::ClientError(ClientErrorKind::ContentFiltered))
}
