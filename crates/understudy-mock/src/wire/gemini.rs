//! The Gemini API: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse` (the model and the stream in the path),
//! `GenerateContentResponse` bodies, SSE events whose lines end in `\r\n`,
//! errors as `{"error":{"code":429,"message","status":"RESOURCE_EXHAUSTED"}}`.

use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, Uri};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::{
    ChatCall, ChatRequest, Context, ErrorAnswer, LISTED_MODEL, MODEL_HOLE, PROMPT_TOKENS, Rendered,
    Template, percent_decode, sse_text, tool_arguments,
};
use crate::stats::PathKind;

/// Google ends each SSE line with a CRLF.
const EOL: &str = "\r\n";

/// The API versions served.
const VERSIONS: [&str; 2] = ["/v1beta/", "/v1/"];

pub(super) fn chat_call(uri: &Uri) -> Option<ChatCall> {
    let path = uri.path();
    let rest = VERSIONS
        .iter()
        .find_map(|version| path.strip_prefix(version))?
        .strip_prefix("models/")?;
    let (model, method) = rest.rsplit_once(':')?;
    let (kind, stream) = match method {
        "generateContent" => (PathKind::GeminiGenerate, false),
        "streamGenerateContent" => (PathKind::GeminiStream, true),
        _ => return None,
    };
    if model.is_empty() || model.contains('/') {
        return None;
    }
    Some(ChatCall {
        kind,
        model: Some(percent_decode(model)?),
        stream: Some(stream),
    })
}

pub(super) fn is_models_path(uri: &Uri) -> bool {
    matches!(uri.path(), "/v1beta/models" | "/v1/models")
}

/// The fields of a `generateContent` request the mock reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[allow(dead_code)]
    contents: Vec<IgnoredAny>,
    #[serde(default)]
    tool_config: Option<ToolConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    #[serde(default)]
    function_calling_config: Option<FunctionCallingConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    allowed_function_names: Vec<String>,
}

pub(super) fn read_request(call: &ChatCall, body: &[u8]) -> Result<ChatRequest, String> {
    let request: Request = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    // Mode `ANY` with exactly one allowed function forces that function.
    let tool = request
        .tool_config
        .and_then(|config| config.function_calling_config)
        .filter(|config| config.mode.as_deref() == Some("ANY"))
        .and_then(
            |config| match <[String; 1]>::try_from(config.allowed_function_names) {
                Ok([name]) if !name.is_empty() => Some(name),
                _ => None,
            },
        );
    Ok(ChatRequest {
        model: call.model.clone().unwrap_or_default(),
        stream: call.stream.unwrap_or(false),
        include_usage: false,
        tool,
    })
}

fn usage(tokens: usize) -> Value {
    json!({
        "promptTokenCount": PROMPT_TOKENS,
        "candidatesTokenCount": tokens,
        "totalTokenCount": PROMPT_TOKENS + tokens,
    })
}

/// A response with one candidate holding `part`; the last one of an answer
/// has the finish reason and the usage.
fn response(model: &str, part: &Value, last: Option<usize>) -> Value {
    let mut candidate = json!({
        "content": { "role": "model", "parts": [part] },
        "index": 0,
    });
    let mut body =
        json!({ "candidates": [], "modelVersion": model, "responseId": "understudy-mock" });
    if let Some(tokens) = last {
        candidate["finishReason"] = json!("STOP");
        body["usageMetadata"] = usage(tokens);
    }
    body["candidates"] = json!([candidate]);
    body
}

fn event(data: &Value) -> String {
    sse_text(None, data, EOL)
}

pub(super) fn render(context: &Context<'_>) -> Rendered {
    let tokens = context.pieces.len();
    let full = response(MODEL_HOLE, &json!({ "text": context.text }), Some(tokens));
    let stream = context
        .pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let last = (i + 1 == tokens).then_some(tokens);
            Template::new(&event(&response(
                MODEL_HOLE,
                &json!({ "text": piece }),
                last,
            )))
        })
        .collect();
    Rendered {
        full: Template::new(&full.to_string()),
        stream,
        usage: None,
        tail: Vec::new(),
        models: Bytes::from(
            json!({
                "models": [{
                    "name": format!("models/{LISTED_MODEL}"),
                    "version": "001",
                    "displayName": format!("Mock model of {}", context.name),
                    "inputTokenLimit": 1_048_576,
                    "outputTokenLimit": 8192,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                }],
            })
            .to_string(),
        ),
    }
}

/// Google's name of the status an HTTP status stands for.
fn status_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 | 529 => "UNAVAILABLE",
        408 | 504 => "DEADLINE_EXCEEDED",
        400..=499 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

fn body(status: StatusCode, message: &str, retry: Option<Duration>) -> Value {
    let mut error = json!({
        "code": status.as_u16(),
        "message": message,
        "status": status_name(status),
    });
    if status == StatusCode::TOO_MANY_REQUESTS {
        let secs = retry.unwrap_or(Duration::from_secs(1)).as_secs();
        error["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{secs}s"),
        }]);
    }
    json!({ "error": error })
}

/// An error as Google sends it; a 429 says when to retry in a `RetryInfo`
/// detail (one second unless `retry` says otherwise).
pub(super) fn error(status: StatusCode, message: &str, retry: Option<Duration>) -> ErrorAnswer {
    ErrorAnswer::json(status, &body(status, message, retry))
}

pub(super) fn error_event(message: &str) -> Bytes {
    Bytes::from(event(&body(StatusCode::SERVICE_UNAVAILABLE, message, None)))
}

/// A response to a blocked prompt: its feedback and no candidate.
fn blocked_response(model: &str) -> Value {
    json!({
        "promptFeedback": { "blockReason": "SAFETY" },
        "usageMetadata": { "promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS },
        "modelVersion": model,
        "responseId": "understudy-mock",
    })
}

/// The answer to a blocked prompt.
pub(super) fn blocked(model: &str) -> Bytes {
    Bytes::from(blocked_response(model).to_string())
}

/// The stream answering a blocked prompt: one event.
pub(super) fn blocked_event(model: &str) -> Bytes {
    Bytes::from(event(&blocked_response(model)))
}

/// A response that calls `tool`.
pub(super) fn tool_full(model: &str, tool: &str) -> Value {
    let part = json!({ "functionCall": { "name": tool, "args": tool_arguments() } });
    response(model, &part, Some(1))
}

/// A stream that calls `tool`: one event with the whole call.
pub(super) fn tool_stream(model: &str, tool: &str) -> Vec<Bytes> {
    vec![Bytes::from(event(&tool_full(model, tool)))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_model_and_the_stream() {
        let call = |uri: &str| chat_call(&uri.parse().unwrap());
        let found = call("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse").unwrap();
        assert_eq!(found.model.as_deref(), Some("gemini-2.0-flash"));
        assert_eq!(found.stream, Some(true));
        let found = call("/v1/models/gemini-1.5-pro:generateContent").unwrap();
        assert_eq!(found.kind, PathKind::GeminiGenerate);
        assert_eq!(found.stream, Some(false));
        assert_eq!(call("/v1beta/models/gemini:countTokens"), None);
        assert_eq!(call("/v1beta/models/:generateContent"), None);
        assert_eq!(call("/v1beta/tunedModels/x:generateContent"), None);
    }
}
