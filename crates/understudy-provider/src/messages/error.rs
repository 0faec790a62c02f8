//! OpenAI error shapes → Anthropic error shapes, as answers and as the
//! final stream event.

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use understudy_core::{OpenAiError, anthropic_error_type};

/// The Anthropic error `type` for an HTTP status: core's
/// [`anthropic_error_type`], which every Anthropic-shaped error of the
/// gateway uses.
///
/// ```
/// use http::StatusCode;
/// use understudy_provider::messages::error_type;
///
/// assert_eq!(error_type(StatusCode::TOO_MANY_REQUESTS), "rate_limit_error");
/// assert_eq!(error_type(StatusCode::SERVICE_UNAVAILABLE), "overloaded_error");
/// ```
pub fn error_type(status: StatusCode) -> &'static str {
    anthropic_error_type(status)
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    error: Option<Value>,
    /// vLLM's bare errors: `{"object":"error","message":…}`.
    #[serde(default)]
    message: Option<Value>,
}

/// Converts an OpenAI error answer (`{"error":{"message","type","code"}}`)
/// into Anthropic's (`{"type":"error","error":{"type","message"}}`).
///
/// The status is kept (a status below 400 becomes 500: an error answer
/// is never a success); the `type` is [`error_type`]'s for it; the message
/// is kept. An error whose `code` is `context_length_exceeded` reads
/// "prompt is too long: …", the words Anthropic uses and its clients look
/// for before compacting a conversation. A body without a readable message
/// (not JSON, an HTML page from a proxy) is not quoted: the message is the
/// status's reason.
///
/// # Example
///
/// ```
/// use http::StatusCode;
/// use understudy_provider::messages::error_body;
///
/// let openai = br#"{"error":{"message":"Rate limit reached","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#;
/// let (status, body) = error_body(StatusCode::TOO_MANY_REQUESTS, openai);
/// assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
/// let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(json, serde_json::json!({
///     "type": "error",
///     "error": {"type": "rate_limit_error", "message": "Rate limit reached"},
/// }));
/// ```
pub fn error_body(status: StatusCode, openai_error_json: &[u8]) -> (StatusCode, Bytes) {
    let status = if status.as_u16() < 400 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        status
    };
    let envelope = serde_json::from_slice::<Envelope>(openai_error_json).ok();
    let (message, code) = match &envelope {
        Some(Envelope {
            error: Some(error), ..
        }) => (
            error.get("message").and_then(Value::as_str),
            error.get("code").and_then(Value::as_str),
        ),
        Some(Envelope { message, .. }) => (message.as_ref().and_then(Value::as_str), None),
        None => (None, None),
    };
    let message = message.filter(|m| !m.is_empty()).map_or_else(
        || {
            status
                .canonical_reason()
                .unwrap_or("upstream error")
                .to_owned()
        },
        str::to_owned,
    );
    let mut error = OpenAiError::new(status, error_type(status), message);
    if let Some(code) = code {
        error = error.with_code(code);
    }
    (status, error.to_anthropic_json())
}
