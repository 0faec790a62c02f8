//! The bytes a mock answers with, in the OpenAI and Anthropic formats.
//!
//! Everything that does not depend on the request is rendered once at
//! start: a response is a template whose only hole is the `model` the
//! request named, filled in with one allocation per response.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};
use understudy_core::OpenAiError;

use crate::config::WireFormat;

/// A placeholder for the model that JSON escapes and that no name holds.
const MODEL_HOLE: &str = "\u{1}model\u{1}";
/// Tokens counted for every prompt.
const PROMPT_TOKENS: usize = 10;
/// The model `GET /v1/models` lists.
pub(crate) const LISTED_MODEL: &str = "mock-model";

/// A rendered JSON text with holes for the model.
#[derive(Debug)]
struct Template {
    /// The text between the holes: one more part than holes.
    parts: Vec<Bytes>,
}

impl Template {
    fn new(text: &str) -> Self {
        let hole = serde_json::to_string(MODEL_HOLE).unwrap_or_default();
        Self {
            parts: text
                .split(hole.as_str())
                .map(|part| Bytes::copy_from_slice(part.as_bytes()))
                .collect(),
        }
    }

    fn sse(event: Option<&str>, data: &Value) -> Self {
        let mut text = String::new();
        if let Some(event) = event {
            text.push_str("event: ");
            text.push_str(event);
            text.push('\n');
        }
        text.push_str("data: ");
        text.push_str(&data.to_string());
        text.push_str("\n\n");
        Self::new(&text)
    }

    fn len_with(&self, model: &[u8]) -> usize {
        self.parts.iter().map(Bytes::len).sum::<usize>()
            + model.len() * (self.parts.len().saturating_sub(1))
    }

    fn write(&self, model: &[u8], out: &mut BytesMut) {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(model);
            }
            out.extend_from_slice(part);
        }
    }
}

/// The responses of one mock.
#[derive(Debug)]
pub(crate) struct Wire {
    format: WireFormat,
    name: String,
    name_header: HeaderValue,
    /// The answer's text split into the stream's content chunks.
    pieces: Vec<String>,
    full: Template,
    stream: Vec<Template>,
    /// OpenAI only: the usage chunk sent before `[DONE]` when the request
    /// asks for it.
    usage_event: Option<Template>,
    models: Bytes,
}

impl Wire {
    pub(crate) fn new(format: WireFormat, name: &str, stream_chunks: usize) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let text = format!("Hello from {name}.");
        let pieces = split_text(&text, stream_chunks);
        let completion_tokens = pieces.len();
        let name_header = HeaderValue::from_str(name)
            .unwrap_or_else(|_| HeaderValue::from_static("understudy-mock"));
        let (full, stream, usage_event, models) = match format {
            WireFormat::OpenAi => {
                let (stream, usage) = openai_stream(created, &pieces);
                (
                    openai_full(created, &text, completion_tokens),
                    stream,
                    Some(usage),
                    json!({
                        "object": "list",
                        "data": [{
                            "id": LISTED_MODEL,
                            "object": "model",
                            "created": created,
                            "owned_by": name,
                        }],
                    }),
                )
            }
            WireFormat::Anthropic => (
                anthropic_full(&text, completion_tokens),
                anthropic_stream(&pieces),
                None,
                json!({
                    "data": [{
                        "type": "model",
                        "id": LISTED_MODEL,
                        "display_name": format!("Mock model of {name}"),
                        "created_at": "2025-01-01T00:00:00Z",
                    }],
                    "has_more": false,
                    "first_id": LISTED_MODEL,
                    "last_id": LISTED_MODEL,
                }),
            ),
        };
        Self {
            format,
            name: name.to_owned(),
            name_header,
            pieces,
            full,
            stream,
            usage_event,
            models: Bytes::from(models.to_string()),
        }
    }

    pub(crate) const fn format(&self) -> WireFormat {
        self.format
    }

    pub(crate) const fn name_header(&self) -> &HeaderValue {
        &self.name_header
    }

    pub(crate) fn models(&self) -> Bytes {
        self.models.clone()
    }

    /// The non-streaming answer for `model`.
    pub(crate) fn full(&self, model: &str) -> Bytes {
        let model = model_json(model);
        let mut out = BytesMut::with_capacity(self.full.len_with(&model));
        self.full.write(&model, &mut out);
        out.freeze()
    }

    /// The streamed answer for `model`, one SSE event per item, all sharing
    /// one buffer.
    pub(crate) fn stream(&self, model: &str, include_usage: bool) -> Vec<Bytes> {
        let model = model_json(model);
        let usage = self.usage_event.as_ref().filter(|_| include_usage);
        let (body, done) = match self.format {
            // `data: [DONE]` comes after the optional usage chunk.
            WireFormat::OpenAi => self.stream.split_at(self.stream.len().saturating_sub(1)),
            WireFormat::Anthropic => (self.stream.as_slice(), &[][..]),
        };
        let templates = || body.iter().chain(usage).chain(done);
        let total = templates().map(|t| t.len_with(&model)).sum();
        let mut out = BytesMut::with_capacity(total);
        let mut ends = Vec::with_capacity(self.stream.len() + 1);
        for template in templates() {
            template.write(&model, &mut out);
            ends.push(out.len());
        }
        let all = out.freeze();
        let mut start = 0;
        ends.into_iter()
            .map(|end| {
                let event = all.slice(start..end);
                start = end;
                event
            })
            .collect()
    }

    /// The body split into the stream's number of pieces, for a
    /// non-streaming answer sent slowly or cut short.
    pub(crate) fn split_full(&self, model: &str) -> Vec<Bytes> {
        let full = self.full(model);
        let count = self.pieces.len().clamp(1, full.len().max(1));
        let size = full.len().div_ceil(count);
        (0..full.len())
            .step_by(size.max(1))
            .map(|start| full.slice(start..(start + size).min(full.len())))
            .collect()
    }

    /// An error body in the format's shape.
    pub(crate) fn error_body(&self, status: StatusCode, message: &str) -> Bytes {
        match self.format {
            WireFormat::OpenAi => openai_error(status, message).to_json(),
            WireFormat::Anthropic => Bytes::from(
                json!({
                    "type": "error",
                    "error": { "type": anthropic_error_type(status), "message": message },
                })
                .to_string(),
            ),
        }
    }

    /// The error a fault answers with for `status`.
    pub(crate) fn fault_error(&self, status: StatusCode) -> Bytes {
        let message = match status.as_u16() {
            429 => format!("Rate limit reached for {} (injected).", self.name),
            503 | 529 => format!("{} is overloaded (injected).", self.name),
            code => format!("{} failed with status {code} (injected).", self.name),
        };
        self.error_body(status, &message)
    }

    /// A streamed error event before any content, in the format's shape.
    pub(crate) fn error_event(&self) -> Bytes {
        let message = format!("{} is overloaded (injected error event).", self.name);
        match self.format {
            WireFormat::OpenAi => {
                openai_error(StatusCode::SERVICE_UNAVAILABLE, &message).to_sse_event()
            }
            WireFormat::Anthropic => {
                let data = json!({
                    "type": "error",
                    "error": { "type": "overloaded_error", "message": message },
                });
                Bytes::from(format!("event: error\ndata: {data}\n\n"))
            }
        }
    }

    /// A body that is neither JSON nor SSE (no line breaks, so no event).
    pub(crate) fn garbage(&self) -> Bytes {
        Bytes::from(format!(
            "<html><head><title>502 Bad Gateway</title></head><body>{} answered \
             with garbage: neither JSON nor SSE</body></html>",
            self.name
        ))
    }
}

/// The model as a JSON string; an unescapable model cannot happen for a
/// `&str`, so the fallback never shows.
fn model_json(model: &str) -> Vec<u8> {
    serde_json::to_vec(model).unwrap_or_else(|_| b"\"\"".to_vec())
}

/// Splits `text` into `count` pieces of near-equal length in characters
/// (fewer if the text is shorter), never inside a character.
pub(crate) fn split_text(text: &str, count: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let count = count.clamp(1, chars.len().max(1));
    let base = chars.len() / count;
    let extra = chars.len() % count;
    let mut pieces = Vec::with_capacity(count);
    let mut start = 0;
    for i in 0..count {
        let len = base + usize::from(i < extra);
        pieces.push(chars[start..start + len].iter().collect());
        start += len;
    }
    pieces
}

fn openai_error(status: StatusCode, message: &str) -> OpenAiError {
    let (kind, code) = match status.as_u16() {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => ("invalid_request_error", Some("permission_denied")),
        404 => ("invalid_request_error", Some("not_found")),
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        503 | 529 => ("server_error", Some("overloaded")),
        400..=499 => ("invalid_request_error", None),
        _ => ("server_error", None),
    };
    let error = OpenAiError::new(status, kind, message);
    match code {
        Some(code) => error.with_code(code),
        None => error,
    }
}

fn anthropic_error_type(status: StatusCode) -> &'static str {
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

fn openai_full(created: u64, text: &str, completion_tokens: usize) -> Template {
    let body = json!({
        "id": "chatcmpl-understudy-mock",
        "object": "chat.completion",
        "created": created,
        "model": MODEL_HOLE,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text, "refusal": null },
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": completion_tokens,
            "total_tokens": PROMPT_TOKENS + completion_tokens,
        },
        "system_fingerprint": "understudy-mock",
    });
    Template::new(&body.to_string())
}

/// The chunk events then `[DONE]`, and the usage chunk apart.
fn openai_stream(created: u64, pieces: &[String]) -> (Vec<Template>, Template) {
    let chunk = |delta: Value, finish: Value| {
        Template::sse(
            None,
            &json!({
                "id": "chatcmpl-understudy-mock",
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL_HOLE,
                "system_fingerprint": "understudy-mock",
                "choices": [{
                    "index": 0,
                    "delta": delta,
                    "logprobs": null,
                    "finish_reason": finish,
                }],
            }),
        )
    };
    let mut events = Vec::with_capacity(pieces.len() + 3);
    events.push(chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    ));
    for piece in pieces {
        events.push(chunk(json!({ "content": piece }), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    events.push(Template::new("data: [DONE]\n\n"));
    let usage = Template::sse(
        None,
        &json!({
            "id": "chatcmpl-understudy-mock",
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL_HOLE,
            "system_fingerprint": "understudy-mock",
            "choices": [],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": pieces.len(),
                "total_tokens": PROMPT_TOKENS + pieces.len(),
            },
        }),
    );
    (events, usage)
}

fn anthropic_full(text: &str, output_tokens: usize) -> Template {
    let body = json!({
        "id": "msg_understudy_mock",
        "type": "message",
        "role": "assistant",
        "model": MODEL_HOLE,
        "content": [{ "type": "text", "text": text }],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": { "input_tokens": PROMPT_TOKENS, "output_tokens": output_tokens },
    });
    Template::new(&body.to_string())
}

fn anthropic_stream(pieces: &[String]) -> Vec<Template> {
    let mut events = Vec::with_capacity(pieces.len() + 6);
    events.push(Template::sse(
        Some("message_start"),
        &json!({
            "type": "message_start",
            "message": {
                "id": "msg_understudy_mock",
                "type": "message",
                "role": "assistant",
                "model": MODEL_HOLE,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": { "input_tokens": PROMPT_TOKENS, "output_tokens": 1 },
            },
        }),
    ));
    events.push(Template::sse(
        Some("content_block_start"),
        &json!({
            "type": "content_block_start",
            "index": 0,
            "content_block": { "type": "text", "text": "" },
        }),
    ));
    events.push(Template::sse(Some("ping"), &json!({ "type": "ping" })));
    for piece in pieces {
        events.push(Template::sse(
            Some("content_block_delta"),
            &json!({
                "type": "content_block_delta",
                "index": 0,
                "delta": { "type": "text_delta", "text": piece },
            }),
        ));
    }
    events.push(Template::sse(
        Some("content_block_stop"),
        &json!({ "type": "content_block_stop", "index": 0 }),
    ));
    events.push(Template::sse(
        Some("message_delta"),
        &json!({
            "type": "message_delta",
            "delta": { "stop_reason": "end_turn", "stop_sequence": null },
            "usage": { "output_tokens": pieces.len() },
        }),
    ));
    events.push(Template::sse(
        Some("message_stop"),
        &json!({ "type": "message_stop" }),
    ));
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_splits_into_near_equal_pieces() {
        assert_eq!(split_text("abcdefg", 3), ["abc", "de", "fg"]);
        assert_eq!(split_text("ab", 5), ["a", "b"]);
        assert_eq!(split_text("héllo", 1), ["héllo"]);
        assert_eq!(split_text("", 4), [""]);
    }

    #[test]
    fn the_model_is_echoed_escaped() {
        let wire = Wire::new(WireFormat::OpenAi, "primary", 4);
        let body: Value = serde_json::from_slice(&wire.full("gpt \"4\"")).unwrap();
        assert_eq!(body["model"], "gpt \"4\"");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "Hello from primary."
        );
    }

    #[test]
    fn split_bodies_join_to_the_whole() {
        let wire = Wire::new(WireFormat::Anthropic, "backup", 5);
        let pieces = wire.split_full("claude");
        assert_eq!(pieces.len(), 5);
        assert_eq!(pieces.concat(), wire.full("claude").to_vec());
    }
}
