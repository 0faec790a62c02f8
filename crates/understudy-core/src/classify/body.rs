//! Recognising what an error body says, in the shapes OpenAI-compatible
//! servers and Anthropic send.
//!
//! - OpenAI: `{"error":{"message":…,"type":"invalid_request_error","param":…,"code":"context_length_exceeded"}}`
//! - Azure OpenAI: the same envelope, `"code":"content_filter"`, sometimes an
//!   `innererror` with `"code":"ResponsibleAIPolicyViolation"`
//! - Anthropic: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`
//! - vLLM: `{"object":"error","message":"This model's maximum context length
//!   is 4096 tokens…","type":"BadRequestError","code":400}`, with or without
//!   the `error` envelope

use serde::Deserialize;
use serde_json::Value;

/// What an error body was recognised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyVerdict {
    ContextLengthExceeded,
    ContentFiltered,
    Overloaded,
    RateLimited,
    /// An error envelope that says nothing more specific.
    OtherError,
}

#[derive(Deserialize)]
struct Envelope {
    error: Option<ErrorFields>,
    /// vLLM answers errors without an envelope: `{"object":"error","message":…}`.
    object: Option<String>,
    #[serde(flatten)]
    bare: ErrorFields,
}

#[derive(Deserialize)]
struct ErrorFields {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<Value>,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    innererror: Option<Value>,
}

/// Reads an error envelope; `None` when the body is not one.
pub(crate) fn recognise(body: &[u8]) -> Option<BodyVerdict> {
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    let error = match envelope.error {
        Some(error) => error,
        None if envelope.object.as_deref() == Some("error") => envelope.bare,
        None => return None,
    };
    let code = error
        .code
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = error
        .kind
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or_default();
    let inner_code = error
        .innererror
        .as_ref()
        .and_then(|inner| inner.get("code"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = error.message.unwrap_or_default().to_ascii_lowercase();

    let verdict = if code == "context_length_exceeded"
        || code == "string_above_max_length"
        || message.contains("maximum context length")
        || message.contains("prompt is too long")
        || message.contains("context window")
        || message.contains("context_length_exceeded")
    {
        BodyVerdict::ContextLengthExceeded
    } else if code == "content_filter"
        || code == "content_policy_violation"
        || inner_code == "ResponsibleAIPolicyViolation"
    {
        BodyVerdict::ContentFiltered
    } else if kind == "overloaded_error" {
        BodyVerdict::Overloaded
    } else if kind == "rate_limit_error" || code == "rate_limit_exceeded" {
        BodyVerdict::RateLimited
    } else {
        BodyVerdict::OtherError
    };
    Some(verdict)
}
