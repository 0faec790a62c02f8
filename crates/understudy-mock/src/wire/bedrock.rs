//! AWS Bedrock Runtime's Converse API: `POST /model/{modelId}/converse` and
//! `/converse-stream` (the model, percent-encoded, and the stream in the
//! path), SigV4-signed requests, streams of binary event-stream frames
//! (`application/vnd.amazon.eventstream`), errors named in the
//! `x-amzn-ErrorType` header with a `{"message":…}` body.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue as FrameValue, Message};
use aws_smithy_types::str_bytes::StrBytes;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::{
    ChatCall, ChatRequest, Context, ErrorAnswer, LISTED_MODEL, PROMPT_TOKENS, Rendered, Template,
    percent_decode, tool_arguments,
};
use crate::stats::PathKind;

/// The content type of a `ConverseStream` answer.
pub(super) const EVENT_STREAM: HeaderValue =
    HeaderValue::from_static("application/vnd.amazon.eventstream");

/// The headers every answer carries.
pub(super) const COMMON_HEADERS: &[(&str, &str)] =
    &[("x-amzn-requestid", "00000000-0000-4000-8000-00000000b0cc")];

/// The message of Bedrock's 429.
pub(super) const THROTTLED: &str = "Too many requests, please wait before trying again.";

/// Where Bedrock's error names are qualified.
const ERROR_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";

pub(super) fn chat_call(uri: &Uri) -> Option<ChatCall> {
    let (model, operation) = uri.path().strip_prefix("/model/")?.rsplit_once('/')?;
    let (kind, stream) = match operation {
        "converse" => (PathKind::BedrockConverse, false),
        "converse-stream" => (PathKind::BedrockConverseStream, true),
        _ => return None,
    };
    let model = percent_decode(model)?;
    if model.is_empty() {
        return None;
    }
    Some(ChatCall {
        kind,
        model: Some(model),
        stream: Some(stream),
    })
}

pub(super) fn is_models_path(uri: &Uri) -> bool {
    uri.path() == "/foundation-models"
}

/// Requires a `SigV4` `authorization` header and `x-amz-date`; the signature
/// itself is not checked.
pub(super) fn authorize(headers: &HeaderMap) -> Result<(), ErrorAnswer> {
    let signed = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("AWS4-HMAC-SHA256 "));
    if signed && headers.contains_key("x-amz-date") {
        return Ok(());
    }
    let body = json!({ "message": "Missing Authentication Token" });
    Err(ErrorAnswer::json(StatusCode::FORBIDDEN, &body).header(
        "x-amzn-errortype",
        HeaderValue::from_static("MissingAuthenticationTokenException"),
    ))
}

/// The fields of a Converse request the mock reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[allow(dead_code)]
    messages: Vec<IgnoredAny>,
    #[serde(default)]
    tool_config: Option<Value>,
}

pub(super) fn read_request(call: &ChatCall, body: &[u8]) -> Result<ChatRequest, String> {
    let request: Request = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let tool = request
        .tool_config
        .as_ref()
        .and_then(|config| super::forced_tool(config.pointer("/toolChoice/tool/name")));
    Ok(ChatRequest {
        model: call.model.clone().unwrap_or_default(),
        stream: call.stream.unwrap_or(false),
        include_usage: false,
        tool,
        continue_from: None,
    })
}

fn string(value: &'static str) -> FrameValue {
    FrameValue::String(StrBytes::from(value))
}

/// One event-stream frame; encoding fails only past the format's size
/// limits, which the mock's frames are far below.
fn frame(headers: Vec<Header>, payload: &Value) -> Bytes {
    let message = Message::new_from_parts(headers, Bytes::from(payload.to_string()));
    let mut out = Vec::new();
    match write_message_to(&message, &mut out) {
        Ok(()) => Bytes::from(out),
        Err(_) => Bytes::new(),
    }
}

/// An event frame of type `event`.
fn event(event: &'static str, payload: &Value) -> Bytes {
    frame(
        vec![
            Header::new(":event-type", string(event)),
            Header::new(":content-type", string("application/json")),
            Header::new(":message-type", string("event")),
        ],
        payload,
    )
}

/// An exception frame of type `exception`.
fn exception(exception: &'static str, message: &str) -> Bytes {
    frame(
        vec![
            Header::new(":exception-type", string(exception)),
            Header::new(":content-type", string("application/json")),
            Header::new(":message-type", string("exception")),
        ],
        &json!({ "message": message }),
    )
}

fn usage(tokens: usize) -> Value {
    json!({
        "inputTokens": PROMPT_TOKENS,
        "outputTokens": tokens,
        "totalTokens": PROMPT_TOKENS + tokens,
    })
}

fn answer(content: &Value, stop: &str, tokens: usize) -> Value {
    json!({
        "output": { "message": { "role": "assistant", "content": content } },
        "stopReason": stop,
        "usage": usage(tokens),
        "metrics": { "latencyMs": 1 },
    })
}

/// The frames after the last delta: the block's stop, the message's stop
/// and the metadata.
fn ending(stop: &str, tokens: usize) -> [Bytes; 3] {
    [
        event("contentBlockStop", &json!({ "contentBlockIndex": 0 })),
        event("messageStop", &json!({ "stopReason": stop })),
        event(
            "metadata",
            &json!({ "usage": usage(tokens), "metrics": { "latencyMs": 1 } }),
        ),
    ]
}

fn message_start() -> Bytes {
    event("messageStart", &json!({ "role": "assistant" }))
}

pub(super) fn render(context: &Context<'_>) -> Rendered {
    let tokens = context.pieces.len();
    let full = answer(&json!([{ "text": context.text }]), "end_turn", tokens);
    let mut stream = Vec::with_capacity(tokens + 4);
    stream.push(Template::fixed(message_start()));
    for piece in context.pieces {
        stream.push(Template::fixed(event(
            "contentBlockDelta",
            &json!({ "contentBlockIndex": 0, "delta": { "text": piece } }),
        )));
    }
    stream.extend(ending("end_turn", tokens).into_iter().map(Template::fixed));
    Rendered {
        full: Template::fixed(Bytes::from(full.to_string())),
        stream,
        usage: None,
        tail: Vec::new(),
        models: Bytes::from(
            json!({
                "modelSummaries": [{
                    "modelArn": format!("arn:aws:bedrock:us-east-1::foundation-model/{LISTED_MODEL}"),
                    "modelId": LISTED_MODEL,
                    "modelName": format!("Mock model of {}", context.name),
                    "providerName": "Understudy",
                    "inputModalities": ["TEXT"],
                    "outputModalities": ["TEXT"],
                    "responseStreamingSupported": true,
                    "modelLifecycle": { "status": "ACTIVE" },
                }],
            })
            .to_string(),
        ),
    }
}

/// The name of the exception an HTTP status stands for.
fn error_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "UnrecognizedClientException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        409 => "ConflictException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 | 529 => "ServiceUnavailableException",
        400..=499 => "ValidationException",
        _ => "InternalServerException",
    }
}

/// An error as Bedrock sends it: the exception's name in
/// `x-amzn-ErrorType`, the message in the body.
pub(super) fn error(status: StatusCode, message: &str) -> ErrorAnswer {
    let name = format!("{}:{ERROR_NAMESPACE}", error_name(status));
    let value =
        HeaderValue::from_str(&name).unwrap_or_else(|_| HeaderValue::from_static("UnknownError"));
    ErrorAnswer::json(status, &json!({ "message": message })).header("x-amzn-errortype", value)
}

/// An exception frame: the service is unavailable.
pub(super) fn error_event(message: &str) -> Bytes {
    exception("serviceUnavailableException", message)
}

/// A `messageStart` frame whose message checksum is wrong.
pub(super) fn broken_frame() -> Bytes {
    let mut bytes = message_start().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last ^= 0xff;
    }
    Bytes::from(bytes)
}

/// What a guardrail answers in place of the model.
const BLOCKED: &str = "Sorry, the model cannot answer this request.";

/// The answer to a prompt a guardrail blocks.
pub(super) fn blocked() -> Bytes {
    let content = json!([{ "text": BLOCKED }]);
    Bytes::from(answer(&content, "guardrail_intervened", 1).to_string())
}

/// The stream answering a prompt a guardrail blocks.
pub(super) fn blocked_stream() -> Vec<Bytes> {
    let delta = json!({ "contentBlockIndex": 0, "delta": { "text": BLOCKED } });
    let mut frames = vec![message_start(), event("contentBlockDelta", &delta)];
    frames.extend(ending("guardrail_intervened", 1));
    frames
}

/// A Converse answer that calls `tool`.
pub(super) fn tool_full(tool: &str) -> Value {
    let content = json!([{
        "toolUse": {
            "toolUseId": "tooluse_understudy_mock",
            "name": tool,
            "input": tool_arguments(),
        },
    }]);
    answer(&content, "tool_use", 1)
}

/// A stream that calls `tool`: a `contentBlockStart` naming it, then its
/// input as a JSON string.
pub(super) fn tool_stream(tool: &str) -> Vec<Bytes> {
    let start = json!({
        "contentBlockIndex": 0,
        "start": { "toolUse": { "toolUseId": "tooluse_understudy_mock", "name": tool } },
    });
    let delta = json!({
        "contentBlockIndex": 0,
        "delta": { "toolUse": { "input": tool_arguments().to_string() } },
    });
    let mut frames = vec![
        message_start(),
        event("contentBlockStart", &start),
        event("contentBlockDelta", &delta),
    ];
    frames.extend(ending("tool_use", 1));
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_decoded_model_and_the_stream() {
        let call = |uri: &str| chat_call(&uri.parse().unwrap());
        let found =
            call("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream").unwrap();
        assert_eq!(
            found.model.as_deref(),
            Some("anthropic.claude-3-haiku-20240307-v1:0")
        );
        assert_eq!(found.stream, Some(true));
        let arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x";
        let found = call(&format!("/model/{arn}/converse")).unwrap();
        assert_eq!(
            found.model.as_deref(),
            Some("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x")
        );
        assert_eq!(found.stream, Some(false));
        assert_eq!(call("/model/m/invoke"), None);
        assert_eq!(call("/model//converse"), None);
        assert_eq!(call("/model/bad%zz/converse"), None);
    }
}
