//! The Anthropic error shape, for the errors of operations whose callers
//! speak Anthropic's API ([`Operation::Messages`]): every [`OpenAiError`]
//! can be written in it, as an answer or as the event that ends a stream.
//!
//! `{"type":"error","error":{"type":"overloaded_error","message":"…"}}`,
//! the type chosen by status ([`anthropic_error_type`]).

use bytes::Bytes;
use http::{Response, StatusCode};
use serde::Serialize;

use crate::{OpenAiError, Operation};

/// The Anthropic error `type` for an HTTP status.
///
/// | status            | `type`                  |
/// |-------------------|-------------------------|
/// | 400, other 4xx    | `invalid_request_error` |
/// | 401               | `authentication_error`  |
/// | 402               | `billing_error`         |
/// | 403               | `permission_error`      |
/// | 404               | `not_found_error`       |
/// | 413               | `request_too_large`     |
/// | 429               | `rate_limit_error`      |
/// | 503, 529          | `overloaded_error`      |
/// | 504               | `timeout_error`         |
/// | 500, 502, other   | `api_error`             |
///
/// 502 is `api_error`: a bad gateway is a fault, not a sign of load; 503
/// is the overload the gateway and providers answer with, as Anthropic's
/// 529 is. Anthropic's SDKs pick their exception by status.
///
/// ```
/// use http::StatusCode;
/// use understudy_core::anthropic_error_type;
///
/// assert_eq!(anthropic_error_type(StatusCode::TOO_MANY_REQUESTS), "rate_limit_error");
/// assert_eq!(anthropic_error_type(StatusCode::SERVICE_UNAVAILABLE), "overloaded_error");
/// ```
pub fn anthropic_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicErrorObject<'a>,
}

#[derive(Serialize)]
struct AnthropicErrorObject<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

impl OpenAiError {
    /// The error in Anthropic's shape: the type by status
    /// ([`anthropic_error_type`]), the same message. A context-length
    /// error (code `context_length_exceeded`) reads "prompt is too long:
    /// …", the words Anthropic uses and its clients look for before
    /// compacting a conversation.
    ///
    /// ```
    /// use understudy_core::OpenAiError;
    ///
    /// let json = OpenAiError::service_unavailable("all busy").to_anthropic_json();
    /// assert_eq!(
    ///     &json[..],
    ///     br#"{"type":"error","error":{"type":"overloaded_error","message":"all busy"}}"#,
    /// );
    /// ```
    pub fn to_anthropic_json(&self) -> Bytes {
        let error = &self.body().error;
        let message = if error.code.as_deref() == Some("context_length_exceeded")
            && !error
                .message
                .to_ascii_lowercase()
                .contains("prompt is too long")
        {
            std::borrow::Cow::Owned(format!("prompt is too long: {}", error.message))
        } else {
            std::borrow::Cow::Borrowed(error.message.as_str())
        };
        let body = AnthropicError {
            kind: "error",
            error: AnthropicErrorObject {
                kind: anthropic_error_type(self.status()),
                message: &message,
            },
        };
        // Serialising strings into a Vec cannot fail.
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// The error as the final SSE event of a stream answering `operation`:
    /// OpenAI's `data: {"error":…}` ([`to_sse_event`](Self::to_sse_event)),
    /// or for [`Operation::Messages`] Anthropic's
    /// `event: error\ndata: {"type":"error",…}`.
    ///
    /// ```
    /// use understudy_core::{OpenAiError, Operation};
    ///
    /// let event = OpenAiError::bad_gateway("cut").to_sse_event_for(Operation::Messages);
    /// assert!(event.starts_with(b"event: error\ndata: {\"type\":\"error\""));
    /// ```
    pub fn to_sse_event_for(&self, operation: Operation) -> Bytes {
        if operation != Operation::Messages {
            return self.to_sse_event();
        }
        let json = self.to_anthropic_json();
        let mut event = Vec::with_capacity(json.len().saturating_add(22));
        event.extend_from_slice(b"event: error\ndata: ");
        event.extend_from_slice(&json);
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }

    /// The error as an HTTP response for `operation`: OpenAI's shape
    /// ([`to_response`](Self::to_response)), or Anthropic's for
    /// [`Operation::Messages`]; the same status and `Retry-After`.
    pub fn to_response_for<B: From<Bytes>>(&self, operation: Operation) -> Response<B> {
        let mut response: Response<B> = self.to_response();
        if operation == Operation::Messages {
            *response.body_mut() = B::from(self.to_anthropic_json());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_length_reads_as_anthropic_words() {
        let error = OpenAiError::invalid_request("too many tokens: 300000 > 200000")
            .with_code("context_length_exceeded");
        let json: serde_json::Value =
            serde_json::from_slice(&error.to_anthropic_json()).unwrap_or_default();
        assert_eq!(json["error"]["type"], "invalid_request_error");
        assert_eq!(
            json["error"]["message"],
            "prompt is too long: too many tokens: 300000 > 200000"
        );
        let chat = error.to_sse_event_for(Operation::ChatCompletions);
        assert_eq!(chat, error.to_sse_event());
    }
}
