//! Anthropic Messages response → OpenAI chat completion, and Anthropic
//! error bodies → the OpenAI error shape.

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use understudy_core::{OpenAiError, Outcome};

use crate::dialect::completion::{self, Completion, arguments_text, tool_call};
use crate::dialect::error_shape::{default_error_type, fallback_message, with_outcome_code};
use crate::dialect::structured::FORCED_TOOL_NAME;
use crate::error::ProviderError;

#[derive(Deserialize)]
struct Message {
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Thinking, server tool blocks and anything newer: no OpenAI equivalent.
    #[serde(other)]
    Other,
}

/// Anthropic's token counts. Every field may be absent or null.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[allow(clippy::struct_field_names)] // Anthropic's field names.
pub(crate) struct Usage {
    #[serde(default)]
    pub(crate) input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) output_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// OpenAI's prompt tokens count cached ones too.
    pub(crate) fn prompt_tokens(&self) -> u64 {
        self.input_tokens.unwrap_or(0)
            + self.cache_creation_input_tokens.unwrap_or(0)
            + self.cache_read_input_tokens.unwrap_or(0)
    }

    /// Fills in what a later report (a `message_delta`) says.
    pub(crate) fn update(&mut self, later: &Self) {
        for (mine, theirs) in [
            (&mut self.input_tokens, later.input_tokens),
            (&mut self.output_tokens, later.output_tokens),
            (
                &mut self.cache_creation_input_tokens,
                later.cache_creation_input_tokens,
            ),
            (
                &mut self.cache_read_input_tokens,
                later.cache_read_input_tokens,
            ),
        ] {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
    }

    /// The OpenAI `usage` object.
    pub(crate) fn to_openai(self) -> Value {
        completion::usage(
            self.prompt_tokens(),
            self.output_tokens.unwrap_or(0),
            None,
            self.cache_read_input_tokens,
        )
    }
}

/// Anthropic's `stop_reason` → OpenAI's `finish_reason`.
///
/// ```
/// use understudy_provider::anthropic::finish_reason;
///
/// assert_eq!(finish_reason("end_turn"), "stop");
/// assert_eq!(finish_reason("max_tokens"), "length");
/// assert_eq!(finish_reason("tool_use"), "tool_calls");
/// assert_eq!(finish_reason("stop_sequence"), "stop");
/// assert_eq!(finish_reason("refusal"), "content_filter");
/// ```
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything newer.
        _ => "stop",
    }
}

/// The `finish_reason` of an answer: [`finish_reason`], except that the
/// `tool_use` stop of an answer whose only tool use was the structured
/// output's (`structured_only`) is a plain `stop`.
pub(crate) fn answer_finish_reason(stop_reason: &str, structured_only: bool) -> &'static str {
    match finish_reason(stop_reason) {
        "tool_calls" if structured_only => "stop",
        reason => reason,
    }
}

/// Translates an Anthropic Messages response body into an OpenAI chat
/// completion: text blocks join into `message.content`, `tool_use` blocks
/// become `message.tool_calls`, `stop_reason` becomes `finish_reason` and
/// the token counts become `usage`.
///
/// A `tool_use` block of the tool that carries structured output
/// ([`FORCED_TOOL_NAME`]) is the answer itself: its `input`, as JSON text,
/// joins `message.content`, it is no tool call, and the `tool_use` stop it
/// caused finishes with `stop`.
///
/// # Example
///
/// ```
/// use understudy_provider::anthropic::translate_response;
///
/// let body = br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5",
///   "content":[{"type":"text","text":"Hi!"}],"stop_reason":"end_turn","stop_sequence":null,
///   "usage":{"input_tokens":10,"output_tokens":3}}"#;
/// let json: serde_json::Value = serde_json::from_slice(&translate_response(body, 1_700_000_000).unwrap()).unwrap();
/// assert_eq!(json["object"], "chat.completion");
/// assert_eq!(json["choices"][0]["message"]["content"], "Hi!");
/// assert_eq!(json["choices"][0]["finish_reason"], "stop");
/// assert_eq!(json["usage"]["total_tokens"], 13);
/// ```
pub fn translate_response(body: &[u8], created: u64) -> Result<Bytes, ProviderError> {
    let message: Message = serde_json::from_slice(body)
        .map_err(|e| ProviderError::invalid_response(format!("not a Messages response: {e}")))?;
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    let mut structured = false;
    for block in message.content {
        match block {
            Block::Text { text: part } => text.get_or_insert_with(String::new).push_str(&part),
            Block::ToolUse { id, name, input } => {
                let arguments = arguments_text(&input);
                if name == FORCED_TOOL_NAME {
                    structured = true;
                    text.get_or_insert_with(String::new).push_str(&arguments);
                    continue;
                }
                tool_calls.push(tool_call(&id, &name, &arguments));
            }
            Block::Other => {}
        }
    }
    let finish = message
        .stop_reason
        .as_deref()
        .map(|reason| answer_finish_reason(reason, structured && tool_calls.is_empty()));
    Completion {
        id: &message.id,
        created,
        model: &message.model,
        content: text,
        tool_calls,
        finish_reason: finish,
        usage: message.usage.unwrap_or_default().to_openai(),
    }
    .into_bytes()
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorFields,
}

#[derive(Deserialize)]
struct ErrorFields {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Translates an Anthropic error body into the OpenAI error shape, given
/// the status and the [`Outcome`] it was classified as.
///
/// The OpenAI `type` is Anthropic's where OpenAI has the same word
/// (`invalid_request_error`, `authentication_error`, `permission_error`,
/// `rate_limit_error`), `overloaded_error` is kept so the body still reads
/// as overload, and `api_error` becomes `server_error`. The `code` comes from
/// the outcome: `context_length_exceeded`, `content_filter`,
/// `rate_limit_exceeded` or `overloaded`.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use understudy_core::LlmClassifier;
/// use understudy_provider::anthropic::translate_error;
///
/// let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
/// let status = StatusCode::from_u16(529).unwrap();
/// let outcome = LlmClassifier::new().classify_parts(status, &HeaderMap::new(), Some(body));
/// let error = translate_error(status, outcome, body);
/// let json: serde_json::Value = serde_json::from_slice(&error.to_json()).unwrap();
/// assert_eq!(json["error"]["type"], "overloaded_error");
/// assert_eq!(json["error"]["message"], "Overloaded");
/// assert_eq!(json["error"]["code"], "overloaded");
/// ```
pub fn translate_error(status: StatusCode, outcome: Outcome, body: &[u8]) -> OpenAiError {
    let fields = serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .map(|e| e.error);
    let anthropic_type = fields.as_ref().and_then(|f| f.kind.as_deref());
    let kind: &'static str = match anthropic_type {
        Some("invalid_request_error" | "not_found_error" | "request_too_large") => {
            "invalid_request_error"
        }
        Some("authentication_error") => "authentication_error",
        Some("permission_error") => "permission_error",
        Some("rate_limit_error") => "rate_limit_error",
        Some("overloaded_error") => "overloaded_error",
        Some(_) => "server_error",
        None => default_error_type(outcome),
    };
    let message = fields
        .and_then(|f| f.message)
        .unwrap_or_else(|| fallback_message(status, body));
    with_outcome_code(OpenAiError::new(status, kind, message), outcome)
}
