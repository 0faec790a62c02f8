//! The OpenAI error shape: every error Understudy answers with, as an HTTP
//! response or a final SSE event.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::{Deserialize, Serialize};

/// An error answer in the OpenAI error shape, with its HTTP status.
///
/// Serialises as `{"error":{"message":…,"type":…,"param":…,"code":…}}`, the
/// shape the OpenAI SDKs parse. Every error Understudy answers with, at the
/// edge or as a final SSE event, is one of these.
///
/// # Example
///
/// ```
/// use http::StatusCode;
/// use understudy_core::OpenAiError;
///
/// let error = OpenAiError::payload_too_large(1024);
/// assert_eq!(error.status(), StatusCode::PAYLOAD_TOO_LARGE);
///
/// let response: http::Response<bytes::Bytes> = error.to_response();
/// assert_eq!(response.headers()["content-type"], "application/json");
/// let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
/// assert_eq!(json["error"]["type"], "invalid_request_error");
/// assert_eq!(json["error"]["code"], "request_too_large");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenAiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<Duration>,
}

/// The JSON body of an [`OpenAiError`]: `{"error": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error object.
    pub error: ErrorObject,
}

/// The `error` object of the OpenAI error shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// A human-readable message. Never holds a secret.
    pub message: String,
    /// The error type: `invalid_request_error`, `rate_limit_error`,
    /// `server_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The request parameter at fault, if any.
    pub param: Option<String>,
    /// A machine-readable code, if any: `model_not_found`,
    /// `request_too_large`, `all_targets_failed`, …
    pub code: Option<String>,
}

// ===== impl OpenAiError =====

impl OpenAiError {
    /// An error with a status, an OpenAI error type and a message.
    pub fn new(status: StatusCode, kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: ErrorObject {
                    message: message.into(),
                    kind: kind.into(),
                    param: None,
                    code: None,
                },
            },
            retry_after: None,
        }
    }

    /// Sets the machine-readable `code`.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.body.error.code = Some(code.into());
        self
    }

    /// Sets the request parameter at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.body.error.param = Some(param.into());
        self
    }

    /// Sets how long the caller should wait, sent as `Retry-After` (whole
    /// seconds, rounded up) and `retry-after-ms`.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// 400: the request is not valid (bad JSON, a missing field).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 404: no route or provider answers to this model.
    pub fn model_not_found(model: &str, known: &[&str]) -> Self {
        let message = if known.is_empty() {
            format!("the model `{model}` does not exist")
        } else {
            format!(
                "the model `{model}` does not exist; known models: {}",
                known.join(", ")
            )
        };
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
            .with_param("model")
            .with_code("model_not_found")
    }

    /// 405: the method is not allowed on this path.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method not allowed",
        )
        .with_code("method_not_allowed")
    }

    /// 413: the request body is larger than `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("request body is larger than the limit of {limit} bytes"),
        )
        .with_code("request_too_large")
    }

    /// 502: the upstream providers failed.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "server_error", message)
    }

    /// 503: no provider could be tried.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
    }

    /// 429: every provider is rate limiting; `retry_after` is passed on.
    pub fn rate_limited(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        let error = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
            .with_code("rate_limit_exceeded");
        match retry_after {
            Some(wait) => error.with_retry_after(wait),
            None => error,
        }
    }

    /// 500: a failure inside Understudy itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// The HTTP status.
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON body.
    pub const fn body(&self) -> &ErrorBody {
        &self.body
    }

    /// How long the caller should wait, if set.
    pub const fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The body serialised as JSON.
    pub fn to_json(&self) -> Bytes {
        // Serialising strings and options into a Vec cannot fail.
        Bytes::from(serde_json::to_vec(&self.body).unwrap_or_default())
    }

    /// The error as a final SSE event, for a stream that breaks after its
    /// first chunk was sent: `data: {"error":{…}}\n\n`.
    ///
    /// ```
    /// use understudy_core::OpenAiError;
    ///
    /// let event = OpenAiError::bad_gateway("upstream stream broke").to_sse_event();
    /// assert!(event.starts_with(b"data: {\"error\":"));
    /// assert!(event.ends_with(b"\n\n"));
    /// ```
    pub fn to_sse_event(&self) -> Bytes {
        let json = self.to_json();
        let mut event = Vec::with_capacity(json.len() + 8);
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(&json);
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }

    /// The error as an HTTP response with a JSON body.
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let mut response = Response::new(B::from(self.to_json()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(wait) = self.retry_after {
            let seconds = wait
                .as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0));
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            let millis = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            headers.insert("retry-after-ms", HeaderValue::from(millis));
        }
        response
    }
}

impl fmt::Display for OpenAiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.body.error.message)
    }
}

impl Error for OpenAiError {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn serialises_the_openai_shape_with_nulls() {
        let json: serde_json::Value =
            serde_json::from_slice(&OpenAiError::bad_gateway("all targets failed").to_json())
                .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {
                "message": "all targets failed",
                "type": "server_error",
                "param": null,
                "code": null,
            }})
        );
    }

    #[test]
    fn rate_limited_passes_the_wait_on_rounded_up() {
        let response: Response<Bytes> = OpenAiError::rate_limited(
            "every provider is rate limiting",
            Some(Duration::from_millis(1200)),
        )
        .to_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()["retry-after-ms"], "1200");

        // The longest wait does not overflow the rounding up.
        let longest: Response<Bytes> =
            OpenAiError::rate_limited("limited", Some(Duration::MAX)).to_response();
        assert_eq!(
            longest.headers()[header::RETRY_AFTER],
            u64::MAX.to_string().as_str()
        );

        let no_wait: Response<Bytes> = OpenAiError::rate_limited("limited", None).to_response();
        assert!(no_wait.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn model_not_found_lists_the_known_models() {
        let error = OpenAiError::model_not_found("gpt-9", &["chat", "fast"]);
        assert_eq!(error.status(), StatusCode::NOT_FOUND);
        assert_eq!(error.body().error.code.as_deref(), Some("model_not_found"));
        assert_eq!(error.body().error.param.as_deref(), Some("model"));
        assert!(error.to_string().contains("known models: chat, fast"));
    }

    #[test]
    fn sse_event_is_one_data_line() {
        let event = OpenAiError::bad_gateway("stream broke").to_sse_event();
        let text = std::str::from_utf8(&event).unwrap();
        assert_eq!(text.matches('\n').count(), 2);
        let json: serde_json::Value =
            serde_json::from_str(text.trim_start_matches("data: ").trim_end()).unwrap();
        assert_eq!(json["error"]["message"], "stream broke");
    }
}
