//! Anthropic Messages: `POST /v1/messages`, the model and `stream` in the
//! body, named SSE events from `message_start` to `message_stop`, errors as
//! `{"type":"error","error":{"type","message"}}`.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ChatRequest, Context, ErrorAnswer, LISTED_MODEL, MODEL_HOLE, PROMPT_TOKENS, Rendered, Template,
    forced_tool, openai, sse_text, tool_arguments,
};

/// The fields of a Messages request the mock reads.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    messages: Vec<Value>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    tool_choice: Option<Value>,
}

pub(super) fn read_request(body: &[u8]) -> Result<ChatRequest, String> {
    let request: Request<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    // `{"type":"tool","name":N}` forces tool N.
    let tool = request
        .tool_choice
        .as_ref()
        .filter(|choice| choice["type"] == "tool")
        .and_then(|choice| forced_tool(choice.get("name")));
    Ok(ChatRequest {
        model: request.model.into_owned(),
        stream: request.stream,
        include_usage: false,
        tool,
        continue_from: super::continuation(&request.messages),
    })
}

pub(super) fn render(context: &Context<'_>) -> Rendered {
    let content = json!([{ "type": "text", "text": context.text }]);
    let full = message(MODEL_HOLE, &content, "end_turn", context.pieces.len());
    let mut stream = Vec::with_capacity(context.pieces.len() + 6);
    stream.push(Template::sse(
        Some("message_start"),
        &message_start(MODEL_HOLE),
    ));
    stream.push(Template::sse(
        Some("content_block_start"),
        &json!({
            "type": "content_block_start",
            "index": 0,
            "content_block": { "type": "text", "text": "" },
        }),
    ));
    stream.push(Template::sse(Some("ping"), &json!({ "type": "ping" })));
    for piece in context.pieces {
        stream.push(Template::sse(
            Some("content_block_delta"),
            &json!({
                "type": "content_block_delta",
                "index": 0,
                "delta": { "type": "text_delta", "text": piece },
            }),
        ));
    }
    stream.extend(
        ending("end_turn", context.pieces.len())
            .iter()
            .map(|(event, data)| Template::sse(Some(event), data)),
    );
    Rendered {
        full: Template::new(&full.to_string()),
        stream,
        usage: None,
        tail: Vec::new(),
        models: Bytes::from(
            json!({
                "data": [{
                    "type": "model",
                    "id": LISTED_MODEL,
                    "display_name": format!("Mock model of {}", context.name),
                    "created_at": "2025-01-01T00:00:00Z",
                }],
                "has_more": false,
                "first_id": LISTED_MODEL,
                "last_id": LISTED_MODEL,
            })
            .to_string(),
        ),
    }
}

fn message(model: &str, content: &Value, stop: &str, tokens: usize) -> Value {
    json!({
        "id": "msg_understudy_mock",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": { "input_tokens": PROMPT_TOKENS, "output_tokens": tokens },
    })
}

fn message_start(model: &str) -> Value {
    json!({
        "type": "message_start",
        "message": {
            "id": "msg_understudy_mock",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": { "input_tokens": PROMPT_TOKENS, "output_tokens": 1 },
        },
    })
}

/// The events after the last delta: the block's stop, the message's delta
/// and its stop.
fn ending(stop: &str, tokens: usize) -> [(&'static str, Value); 3] {
    [
        (
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": 0 }),
        ),
        (
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop, "stop_sequence": null },
                "usage": { "output_tokens": tokens },
            }),
        ),
        ("message_stop", json!({ "type": "message_stop" })),
    ]
}

pub(super) fn error(status: StatusCode, message: &str, retry: Option<Duration>) -> ErrorAnswer {
    let body = json!({
        "type": "error",
        "error": { "type": error_type(status), "message": message },
    });
    openai::with_retry_after(ErrorAnswer::json(status, &body), retry)
}

pub(super) fn error_event(message: &str) -> Bytes {
    let data = json!({
        "type": "error",
        "error": { "type": "overloaded_error", "message": message },
    });
    Bytes::from(sse_text(Some("error"), &data, "\n"))
}

fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

fn tool_block(tool: &str, input: &Value) -> Value {
    json!({
        "type": "tool_use",
        "id": "toolu_understudy_mock",
        "name": tool,
        "input": input,
    })
}

/// A message that calls `tool`.
pub(super) fn tool_full(model: &str, tool: &str) -> Value {
    let content = json!([tool_block(tool, &tool_arguments())]);
    message(model, &content, "tool_use", 1)
}

/// A stream that calls `tool`: a `tool_use` block whose input comes as
/// `input_json_delta`s.
pub(super) fn tool_stream(model: &str, tool: &str) -> Vec<Bytes> {
    let mut events = vec![
        ("message_start", message_start(model)),
        (
            "content_block_start",
            json!({
                "type": "content_block_start",
                "index": 0,
                "content_block": tool_block(tool, &json!({})),
            }),
        ),
        (
            "content_block_delta",
            json!({
                "type": "content_block_delta",
                "index": 0,
                "delta": {
                    "type": "input_json_delta",
                    "partial_json": tool_arguments().to_string(),
                },
            }),
        ),
    ];
    events.extend(ending("tool_use", 1));
    events
        .iter()
        .map(|(event, data)| Bytes::from(sse_text(Some(event), data, "\n")))
        .collect()
}
