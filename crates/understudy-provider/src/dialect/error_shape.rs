//! Building OpenAI-shaped errors from what a provider answered.
//!
//! Every dialect ends an upstream error the same way: an [`OpenAiError`]
//! with the upstream status, a `type` the provider gave or one the
//! [`Outcome`] implies ([`default_error_type`]), the `code` the outcome
//! implies ([`with_outcome_code`]), and the provider's message, or a short
//! one of the gateway's when the body carries none ([`fallback_message`]).
//! [`openai_error`] does it all for a body in no known shape, and is what
//! [`Dialect::shape_error`](super::Dialect::shape_error) does by default.
//!
//! # Example
//!
//! A dialect whose provider answers errors as `{"problem": "…"}`:
//!
//! ```
//! use http::StatusCode;
//! use understudy_core::{FailureKind, OpenAiError, Outcome};
//! use understudy_provider::dialect::error_shape::{
//!     default_error_type, fallback_message, with_outcome_code,
//! };
//!
//! fn shape(status: StatusCode, outcome: Outcome, body: &[u8]) -> OpenAiError {
//!     let problem = serde_json::from_slice::<serde_json::Value>(body)
//!         .ok()
//!         .and_then(|json| json["problem"].as_str().map(str::to_owned))
//!         .unwrap_or_else(|| fallback_message(status, body));
//!     with_outcome_code(OpenAiError::new(status, default_error_type(outcome), problem), outcome)
//! }
//!
//! let error = shape(
//!     StatusCode::SERVICE_UNAVAILABLE,
//!     Outcome::Failure(FailureKind::Overloaded),
//!     br#"{"problem":"busy"}"#,
//! );
//! let json: serde_json::Value = serde_json::from_slice(&error.to_json()).unwrap();
//! assert_eq!(json["error"]["message"], "busy");
//! assert_eq!(json["error"]["type"], "overloaded_error");
//! assert_eq!(json["error"]["code"], "overloaded");
//! ```

use http::StatusCode;
use serde_json::Value;
use understudy_core::{ClientErrorKind, FailureKind, OpenAiError, Outcome};

/// The longest error body quoted in a [`fallback_message`].
const MAX_QUOTED_BODY: usize = 512;

/// The OpenAI error `type` for an outcome, when the provider gave none:
/// `rate_limit_error`, `overloaded_error`, `invalid_request_error` for a
/// client error, else `server_error`.
pub fn default_error_type(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Failure(FailureKind::RateLimited { .. }) => "rate_limit_error",
        Outcome::Failure(FailureKind::Overloaded) => "overloaded_error",
        Outcome::ClientError(_) => "invalid_request_error",
        _ => "server_error",
    }
}

/// Sets the OpenAI `code` that says what the outcome says:
/// `context_length_exceeded` (with `param: "messages"`), `content_filter`,
/// `rate_limit_exceeded` or `overloaded`; other outcomes set none.
pub fn with_outcome_code(error: OpenAiError, outcome: Outcome) -> OpenAiError {
    match outcome {
        Outcome::ClientError(ClientErrorKind::ContextLengthExceeded) => error
            .with_code("context_length_exceeded")
            .with_param("messages"),
        Outcome::ClientError(ClientErrorKind::ContentFiltered) => error.with_code("content_filter"),
        Outcome::Failure(FailureKind::RateLimited { .. }) => error.with_code("rate_limit_exceeded"),
        Outcome::Failure(FailureKind::Overloaded) => error.with_code("overloaded"),
        _ => error,
    }
}

/// A message for an error body that did not carry one: the body itself when
/// it is short text (at most 512 bytes, no markup), else only the status.
pub fn fallback_message(status: StatusCode, body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(text)
            if !text.trim().is_empty() && text.len() <= MAX_QUOTED_BODY && !text.contains('<') =>
        {
            format!("upstream returned {}: {}", status.as_u16(), text.trim())
        }
        _ => format!("upstream returned {}", status.as_u16()),
    }
}

/// Is this body already an OpenAI error envelope, with an
/// `error.message` string?
pub fn is_openai_error(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|json| {
        json.get("error")
            .and_then(|error| error.get("message"))
            .is_some_and(Value::is_string)
    })
}

/// An OpenAI-shaped error for an error body in no known shape (vLLM's bare
/// object, plain text, an HTML page): its top-level `message` if it has
/// one, else a [`fallback_message`]; the `type` and `code` from the
/// outcome.
pub fn openai_error(status: StatusCode, outcome: Outcome, body: &[u8]) -> OpenAiError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .as_ref()
        .and_then(|json| json.get("message"))
        .and_then(Value::as_str)
        .map_or_else(|| fallback_message(status, body), str::to_owned);
    with_outcome_code(
        OpenAiError::new(status, default_error_type(outcome), message),
        outcome,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_bodies_are_quoted_only_when_short_text() {
        let status = StatusCode::BAD_GATEWAY;
        assert_eq!(
            fallback_message(status, b" no route "),
            "upstream returned 502: no route"
        );
        assert_eq!(
            fallback_message(status, b"<html>bad gateway</html>"),
            "upstream returned 502"
        );
        assert_eq!(
            fallback_message(status, &[b'x'; 513]),
            "upstream returned 502"
        );
        assert_eq!(fallback_message(status, b"\xff"), "upstream returned 502");
    }

    #[test]
    fn only_an_error_envelope_with_a_message_is_openai_shaped() {
        assert!(is_openai_error(br#"{"error":{"message":"x","type":"t"}}"#));
        assert!(!is_openai_error(br#"{"error":{"message":1}}"#));
        assert!(!is_openai_error(br#"{"object":"error","message":"x"}"#));
        assert!(!is_openai_error(b"oops"));
    }

    #[test]
    fn a_bare_message_is_kept_and_the_outcome_sets_type_and_code() {
        let outcome = Outcome::Failure(FailureKind::RateLimited { retry_after: None });
        let error = openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            outcome,
            br#"{"message":"slow down"}"#,
        );
        assert_eq!(error.body().error.message, "slow down");
        assert_eq!(error.body().error.kind, "rate_limit_error");
        assert_eq!(
            error.body().error.code.as_deref(),
            Some("rate_limit_exceeded")
        );
    }
}
