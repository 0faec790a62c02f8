//! OpenAI chat completion → Anthropic Messages `message`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::ProviderError;

/// Maps an OpenAI `finish_reason` to an Anthropic `stop_reason`.
///
/// | `finish_reason`   | `stop_reason` |
/// |-------------------|---------------|
/// | `stop`            | `end_turn`    |
/// | `length`          | `max_tokens`  |
/// | `tool_calls`, `function_call` | `tool_use` |
/// | `content_filter`  | `refusal`     |
/// | anything else     | `end_turn`    |
///
/// OpenAI says `stop` for a stop sequence too, and does not say which one:
/// the answer is `end_turn` with `stop_sequence: null`.
///
/// ```
/// use understudy_provider::messages::stop_reason;
///
/// assert_eq!(stop_reason("length"), "max_tokens");
/// assert_eq!(stop_reason("tool_calls"), "tool_use");
/// ```
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// The `stop_reason` of an answer: [`stop_reason`], except that an answer
/// with tool calls that finished with `stop` (some OpenAI-compatible
/// servers say so) stopped for `tool_use`, which is what Anthropic clients
/// wait for before running the tools.
pub(super) fn answer_stop_reason(
    finish_reason: Option<&str>,
    has_tool_calls: bool,
) -> &'static str {
    match finish_reason.map_or("stop", stop_reason) {
        "end_turn" if has_tool_calls => "tool_use",
        reason => reason,
    }
}

/// An OpenAI `usage` object, as far as an Anthropic `usage` needs it.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub(super) struct ChatUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl ChatUsage {
    /// Anthropic's `usage`: `input_tokens` counts the prompt tokens that
    /// were not read from the cache (OpenAI's `prompt_tokens` counts them
    /// all), `cache_read_input_tokens` the rest when the completion reports
    /// cached tokens.
    pub(super) fn to_anthropic(self) -> Map<String, Value> {
        let cached = self.prompt_tokens_details.and_then(|d| d.cached_tokens);
        let mut usage = Map::new();
        usage.insert(
            "input_tokens".to_owned(),
            Value::from(self.prompt_tokens.saturating_sub(cached.unwrap_or(0))),
        );
        usage.insert(
            "output_tokens".to_owned(),
            Value::from(self.completion_tokens),
        );
        if let Some(cached) = cached {
            usage.insert(
                "cache_read_input_tokens".to_owned(),
                Value::from(cached.min(self.prompt_tokens)),
            );
        }
        usage
    }
}

/// `msg_` and the completion's id; when it has none, one made of the time.
pub(super) fn message_id(completion_id: Option<&str>) -> String {
    if let Some(id) = completion_id.filter(|id| !id.is_empty()) {
        return format!("msg_{id}");
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!("msg_{nanos:x}")
}

/// A tool call's `arguments` → a `tool_use` block's `input`: the JSON
/// object they hold, `{}` when they hold anything else.
pub(super) fn tool_input(arguments: Option<&Value>) -> Value {
    match arguments {
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(object @ Value::Object(_)) => object,
            _ => json!({}),
        },
        Some(object @ Value::Object(_)) => object.clone(),
        _ => json!({}),
    }
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    id: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u64,
    message: Message,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Deserialize)]
struct ToolCall {
    #[serde(default)]
    id: Option<String>,
    function: Function,
}

#[derive(Deserialize)]
struct Function {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

/// Converts an OpenAI chat completion into an Anthropic Messages `message`
/// answering for `model` (the caller's `model` field).
///
/// The first choice is the answer: its text (and a `refusal`'s text) is a
/// `text` block when not empty, then each tool call is a `tool_use` block
/// (`arguments` parsed; anything but a JSON object is `{}`). `id` is `msg_`
/// and the completion's id, `stop_reason` is mapped by [`stop_reason`] (an
/// answer with tool calls stops for `tool_use`), and `usage` is the
/// completion's (see the [module documentation](crate::messages)).
///
/// A body that is not a chat completion, or has no choice, is an
/// [`invalid_response`](ProviderError::invalid_response) error.
///
/// # Example
///
/// ```
/// use understudy_provider::messages::from_chat;
///
/// let completion = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o",
///   "choices":[{"index":0,"message":{"role":"assistant","content":"Hi!","tool_calls":[
///     {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
///     "finish_reason":"tool_calls"}],
///   "usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"#;
/// let message: serde_json::Value =
///     serde_json::from_slice(&from_chat(completion, "claude-sonnet-4-5").unwrap()).unwrap();
/// assert_eq!(message["id"], "msg_chatcmpl-1");
/// assert_eq!(message["type"], "message");
/// assert_eq!(message["model"], "claude-sonnet-4-5");
/// assert_eq!(message["content"][0], serde_json::json!({"type":"text","text":"Hi!"}));
/// assert_eq!(message["content"][1]["input"], serde_json::json!({"city":"Paris"}));
/// assert_eq!(message["stop_reason"], "tool_use");
/// assert_eq!(message["usage"], serde_json::json!({"input_tokens":12,"output_tokens":7}));
/// ```
pub fn from_chat(completion: &[u8], model: &str) -> Result<Bytes, ProviderError> {
    let completion: Completion = serde_json::from_slice(completion)
        .map_err(|e| ProviderError::invalid_response(format!("not a chat completion: {e}")))?;
    let choice = completion
        .choices
        .iter()
        .find(|choice| choice.index == 0)
        .or(completion.choices.first())
        .ok_or_else(|| ProviderError::invalid_response("the chat completion has no choice"))?;

    let mut content = Vec::new();
    let mut text = content_text(choice.message.content.as_ref());
    if let Some(refusal) = choice.message.refusal.as_deref() {
        text.push_str(refusal);
    }
    if !text.is_empty() {
        content.push(json!({ "type": "text", "text": text }));
    }
    let calls = choice.message.tool_calls.as_deref().unwrap_or_default();
    for (position, call) in calls.iter().enumerate() {
        let id = match call.id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => format!("toolu_{position}"),
        };
        content.push(json!({
            "type": "tool_use",
            "id": id,
            "name": call.function.name,
            "input": tool_input(call.function.arguments.as_ref()),
        }));
    }

    let message = json!({
        "id": message_id(completion.id.as_deref()),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": answer_stop_reason(choice.finish_reason.as_deref(), !calls.is_empty()),
        "stop_sequence": null,
        "usage": completion.usage.unwrap_or_default().to_anthropic(),
    });
    serde_json::to_vec(&message)
        .map(Bytes::from)
        .map_err(|e| ProviderError::invalid_response(e.to_string()))
}

/// A message's `content`: a string, or text parts (joined), or nothing.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}
