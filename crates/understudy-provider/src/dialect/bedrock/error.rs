//! Bedrock's errors: named by `x-amzn-ErrorType` or `__type`, classified by
//! name, and rewritten in the OpenAI error shape.

use std::time::SystemTime;

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use understudy_core::classify::retry_after;
use understudy_core::{ClientErrorKind, FailureKind, OpenAiError, Outcome};

use crate::dialect::error_shape::{default_error_type, fallback_message, with_outcome_code};

/// The header that names a Bedrock error.
const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// A Bedrock error body: `{"message": "…"}`, sometimes with `__type`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default, alias = "Message")]
    message: Option<String>,
    #[serde(default, rename = "__type")]
    kind: Option<String>,
}

fn error_body(body: &[u8]) -> Option<ErrorBody> {
    serde_json::from_slice(body).ok()
}

/// The name of a Bedrock error: `x-amzn-ErrorType` up to its first `:`, or
/// the body's `__type` after any `#` (`com.amazon.coral…#ThrottlingException`).
///
/// ```
/// use http::HeaderMap;
/// use understudy_provider::bedrock::error_type;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/".parse().unwrap());
/// assert_eq!(error_type(&headers, b"{}").as_deref(), Some("ThrottlingException"));
/// let body = br#"{"__type":"com.amazon.bedrock#ValidationException","message":"bad"}"#;
/// assert_eq!(error_type(&HeaderMap::new(), body).as_deref(), Some("ValidationException"));
/// ```
pub fn error_type(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let from_header = headers
        .get(ERROR_TYPE_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(':').next())
        .map(str::trim)
        .filter(|name| !name.is_empty());
    if let Some(name) = from_header {
        return Some(name.to_owned());
    }
    let kind = error_body(body)?.kind?;
    let name = kind.rsplit('#').next().unwrap_or(&kind);
    let name = name.split(':').next().unwrap_or(name).trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Does a validation message say the prompt is longer than the model
/// takes?
fn is_context_length(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "too many input tokens",
        "input is too long",
        "prompt is too long",
        "too many tokens",
        "maximum context length",
        "context window",
    ]
    .iter()
    .any(|pattern| message.contains(pattern))
}

/// What a Bedrock error named `name` (in either case: `ThrottlingException`
/// in a header, `throttlingException` in a stream) with `message` means;
/// `None` for a name this dialect does not know. `status` is the answer's,
/// for the outcomes that carry one.
pub(super) fn outcome_of(
    name: &str,
    message: &str,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Outcome> {
    let outcome = match name.to_ascii_lowercase().as_str() {
        "throttlingexception" => Outcome::Failure(FailureKind::RateLimited {
            retry_after: retry_after(headers, SystemTime::now()),
        }),
        "serviceunavailableexception" | "modelnotreadyexception" => {
            Outcome::Failure(FailureKind::Overloaded)
        }
        "validationexception" => {
            if is_context_length(message) {
                Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)
            } else if status.is_client_error() {
                Outcome::ClientError(ClientErrorKind::Rejected(status))
            } else {
                Outcome::ClientError(ClientErrorKind::Rejected(StatusCode::BAD_REQUEST))
            }
        }
        "modeltimeoutexception" => Outcome::Failure(FailureKind::Timeout),
        "internalserverexception" | "modelerrorexception" => {
            if status.is_success() {
                Outcome::Failure(FailureKind::Server(StatusCode::INTERNAL_SERVER_ERROR))
            } else {
                Outcome::Failure(FailureKind::Server(status))
            }
        }
        "modelstreamerrorexception" => Outcome::Failure(FailureKind::StreamBroken),
        _ => return None,
    };
    Some(outcome)
}

/// Classifies a Bedrock error answer by its error name and message; `None`
/// when the name is missing or unknown, for the service's classifier to
/// read by status. See the [module documentation](super) for the table.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use understudy_core::{FailureKind, Outcome};
/// use understudy_provider::bedrock::classify_error;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-amzn-errortype", "ModelNotReadyException:http://internal.amazon.com/".parse().unwrap());
/// let outcome = classify_error(StatusCode::TOO_MANY_REQUESTS, &headers, br#"{"message":"Model is not ready"}"#);
/// assert_eq!(outcome, Some(Outcome::Failure(FailureKind::Overloaded)));
/// ```
pub fn classify_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Outcome> {
    let name = error_type(headers, body)?;
    let message = error_body(body)
        .and_then(|body| body.message)
        .unwrap_or_default();
    outcome_of(&name, &message, status, headers)
}

/// Rewrites a Bedrock error answer in the OpenAI error shape: Bedrock's
/// `message` (or a short one of the gateway's when there is none), the
/// OpenAI `type` and `code` the outcome implies.
///
/// ```
/// use http::StatusCode;
/// use understudy_core::{ClientErrorKind, Outcome};
/// use understudy_provider::bedrock::translate_error;
///
/// let body = br#"{"message":"Input is too long for requested model."}"#;
/// let outcome = Outcome::ClientError(ClientErrorKind::ContextLengthExceeded);
/// let error = translate_error(StatusCode::BAD_REQUEST, outcome, body);
/// let json: serde_json::Value = serde_json::from_slice(&error.to_json()).unwrap();
/// assert_eq!(json["error"]["message"], "Input is too long for requested model.");
/// assert_eq!(json["error"]["type"], "invalid_request_error");
/// assert_eq!(json["error"]["code"], "context_length_exceeded");
/// ```
pub fn translate_error(status: StatusCode, outcome: Outcome, body: &[u8]) -> OpenAiError {
    let message = error_body(body)
        .and_then(|body| body.message)
        .filter(|message| !message.is_empty())
        .unwrap_or_else(|| fallback_message(status, body));
    with_outcome_code(
        OpenAiError::new(status, default_error_type(outcome), message),
        outcome,
    )
}
