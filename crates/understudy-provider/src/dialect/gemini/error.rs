//! Google's error envelope: what it means ([`classify`]) and how the
//! caller sees it ([`translate_error`]).

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use understudy_core::classify::{parse_reset_duration, retry_after};
use understudy_core::{ClientErrorKind, FailureKind, OpenAiError, Outcome};

use super::response::{GenerateContentResponse, is_filtered};
use crate::dialect::error_shape::{default_error_type, fallback_message, with_outcome_code};

/// `{"error": {"code", "message", "status", "details"}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) error: GoogleError,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct GoogleError {
    #[serde(default)]
    pub(crate) code: Option<u16>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) details: Vec<Value>,
}

impl GoogleError {
    /// `RetryInfo.retryDelay` (`"2s"`, `"1.5s"`), if a detail carries it.
    fn retry_delay(&self) -> Option<Duration> {
        self.details
            .iter()
            .filter(|detail| {
                detail
                    .get("@type")
                    .and_then(Value::as_str)
                    .is_some_and(|kind| kind.ends_with("google.rpc.RetryInfo"))
            })
            .find_map(|detail| detail.get("retryDelay").and_then(Value::as_str))
            .and_then(parse_reset_duration)
    }

    /// Does an `ErrorInfo` detail, or the message, say the key is invalid?
    fn key_rejected(&self) -> bool {
        let reason = self.details.iter().any(|detail| {
            matches!(
                detail.get("reason").and_then(Value::as_str),
                Some(
                    "API_KEY_INVALID" | "API_KEY_SERVICE_BLOCKED" | "API_KEY_HTTP_REFERRER_BLOCKED"
                )
            )
        });
        reason
            || self
                .message
                .as_deref()
                .is_some_and(|m| m.contains("API key not valid") || m.contains("API key expired"))
    }

    /// "The input token count (…) exceeds the maximum number of tokens
    /// allowed (…)".
    fn context_too_long(&self) -> bool {
        self.message.as_deref().is_some_and(|message| {
            let message = message.to_ascii_lowercase();
            message.contains("input token count") && message.contains("exceeds the maximum")
        })
    }

    /// What this error means, answered with `status` (the HTTP status, or
    /// the envelope's `code` for an error inside a stream).
    pub(crate) fn outcome(&self, status: StatusCode, headers: &HeaderMap) -> Option<Outcome> {
        let google_status = match self.status.as_deref() {
            Some(google_status) => google_status,
            None => match status.as_u16() {
                400 => "INVALID_ARGUMENT",
                429 => "RESOURCE_EXHAUSTED",
                500 => "INTERNAL",
                503 => "UNAVAILABLE",
                504 => "DEADLINE_EXCEEDED",
                _ => return None,
            },
        };
        Some(match google_status {
            "RESOURCE_EXHAUSTED" => Outcome::Failure(FailureKind::RateLimited {
                retry_after: self
                    .retry_delay()
                    .or_else(|| retry_after(headers, SystemTime::now())),
            }),
            "UNAVAILABLE" => Outcome::Failure(FailureKind::Overloaded),
            "DEADLINE_EXCEEDED" => Outcome::Failure(FailureKind::Timeout),
            "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => {
                Outcome::Failure(FailureKind::Server(server_status(status)))
            }
            "UNAUTHENTICATED" => {
                Outcome::Failure(FailureKind::Unauthorized(StatusCode::UNAUTHORIZED))
            }
            "PERMISSION_DENIED" => {
                Outcome::Failure(FailureKind::Unauthorized(StatusCode::FORBIDDEN))
            }
            // The key, the project or its region cannot use the API: the
            // gateway's setup, not the caller's request.
            _ if self.key_rejected() => {
                Outcome::Failure(FailureKind::Unauthorized(StatusCode::UNAUTHORIZED))
            }
            "FAILED_PRECONDITION" => Outcome::Failure(FailureKind::Server(status)),
            "INVALID_ARGUMENT" | "OUT_OF_RANGE" | "NOT_FOUND" if self.context_too_long() => {
                Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)
            }
            "INVALID_ARGUMENT" | "OUT_OF_RANGE" | "NOT_FOUND" | "ALREADY_EXISTS" => {
                Outcome::ClientError(ClientErrorKind::Rejected(client_status(status)))
            }
            _ => return None,
        })
    }
}

/// The status a server failure is reported with: `status` when it is an
/// error status, else 500 (an error event inside a 200 stream).
fn server_status(status: StatusCode) -> StatusCode {
    if status.is_client_error() || status.is_server_error() {
        status
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// The status a refusal of the request is reported with: `status` when it
/// is a 4xx, else 400.
fn client_status(status: StatusCode) -> StatusCode {
    if status.is_client_error() {
        status
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// Classifies an answer whose body was read: Google's error envelope by
/// its `status` (and `RetryInfo`), and a 2xx answer that a safety filter
/// emptied (a blocked prompt, or a candidate stopped by a filter before
/// any content) as [`ClientErrorKind::ContentFiltered`]. `None` when the
/// body says nothing this dialect knows better than the classifier.
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Outcome> {
    if status.is_success() {
        let response = serde_json::from_slice::<GenerateContentResponse>(body).ok()?;
        if response.block_reason().is_some() {
            return Some(Outcome::ClientError(ClientErrorKind::ContentFiltered));
        }
        let candidate = response.candidates.first()?;
        let filtered = candidate.finish_reason.as_deref().is_some_and(is_filtered)
            && candidate.parts().iter().all(|part| {
                part.answer_text().is_none_or(str::is_empty) && part.function_call.is_none()
            });
        return filtered.then_some(Outcome::ClientError(ClientErrorKind::ContentFiltered));
    }
    let envelope = serde_json::from_slice::<Envelope>(body).ok()?;
    envelope.error.outcome(status, headers)
}

/// Translates a Gemini error body into the OpenAI error shape, keeping
/// Google's message; the `type` and `code` follow the [`Outcome`] it was
/// classified as (`rate_limit_error` / `rate_limit_exceeded`,
/// `overloaded_error` / `overloaded`, `invalid_request_error`,
/// `context_length_exceeded`, …). A body in no known shape is quoted only
/// when it is short text.
///
/// ```
/// use http::StatusCode;
/// use understudy_core::{FailureKind, Outcome};
/// use understudy_provider::dialect::gemini::translate_error;
///
/// let body = br#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#;
/// let error = translate_error(StatusCode::SERVICE_UNAVAILABLE, Outcome::Failure(FailureKind::Overloaded), body);
/// let json: serde_json::Value = serde_json::from_slice(&error.to_json()).unwrap();
/// assert_eq!(json["error"]["message"], "The model is overloaded.");
/// assert_eq!(json["error"]["type"], "overloaded_error");
/// assert_eq!(json["error"]["code"], "overloaded");
/// ```
pub fn translate_error(status: StatusCode, outcome: Outcome, body: &[u8]) -> OpenAiError {
    let message = serde_json::from_slice::<Envelope>(body)
        .ok()
        .and_then(|envelope| envelope.error.message)
        .unwrap_or_else(|| fallback_message(status, body));
    with_outcome_code(
        OpenAiError::new(status, default_error_type(outcome), message),
        outcome,
    )
}
