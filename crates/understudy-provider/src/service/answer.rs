//! An upstream answer turned into the caller's: passed through, read whole
//! and translated, translated as it streams, or shaped as an error; and
//! the allowlist of the answer headers the caller sees.

use std::sync::Arc;

use http::header::{self, HeaderName};
use http::response::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use understudy_core::{BoxError, ClientErrorKind, FailureKind, OpenAiError, Outcome, ResponseBody};

use super::Shared;
use super::embeddings::EmbeddingEncoding;
use super::read::{read_bounded, read_limited};
use crate::dialect::{AnswerContext, Operation, ShapedError};
use crate::error::{ProviderError, body_error};

/// Room for the headers an answer ends up with (its own, then the
/// gateway's: provider, model, attempts, `Server-Timing`, the attempt
/// chain, the request id), made once rather than grown as they are added.
const ANSWER_HEADERS: usize = 16;

/// Headers of an upstream answer passed on to the caller: request ids
/// always, the rate-limit family only when the service is configured to
/// ([`ProviderService::with_rate_limit_headers`](crate::ProviderService::with_rate_limit_headers)).
/// Everything else an upstream sends (`set-cookie`, `server`, its internal
/// headers) stays here.
fn is_forwarded_answer_header(name: &HeaderName, rate_limits: bool) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "x-request-id" | "request-id" | "anthropic-request-id" | "apim-request-id"
    ) || (rate_limits
        && (matches!(name, "retry-after" | "retry-after-ms")
            || name.starts_with("x-ratelimit-")
            || name.starts_with("anthropic-ratelimit-")))
}

/// A 400 for a request that cannot be sent.
pub(super) fn invalid_request(error: &ProviderError) -> Response<ResponseBody> {
    let mut response: Response<ResponseBody> =
        OpenAiError::invalid_request(error.to_string()).to_response();
    response
        .extensions_mut()
        .insert(Outcome::ClientError(ClientErrorKind::Rejected(
            StatusCode::BAD_REQUEST,
        )));
    response
}

impl Shared {
    /// A 2xx answer already in the OpenAI shape: its body as it arrives,
    /// with its content type.
    pub(super) fn pass_through(&self, head: &Parts, incoming: Incoming) -> Response<ResponseBody> {
        let mut response = self.answer(head, ResponseBody::new(incoming.map_err(body_error)));
        if let Some(content_type) = head.headers.get(header::CONTENT_TYPE) {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type.clone());
        }
        response
    }

    /// A 2xx answer read whole (bounded), classified, translated, and for
    /// embeddings encoded as the caller asked (`encoding`).
    pub(super) async fn whole(
        &self,
        operation: Operation,
        encoding: EmbeddingEncoding,
        head: &Parts,
        incoming: Incoming,
    ) -> Result<Response<ResponseBody>, BoxError> {
        let bytes = read_limited(incoming, self.max_response_body).await?;
        let outcome = self.classify(head.status, &head.headers, Some(&bytes));
        // A provider failure dressed as a 2xx is an error; a refusal of the
        // caller's request (a content filter, say) is the answer, with its
        // outcome attached for the fallback policy to read.
        if let Outcome::Failure(_) | Outcome::Unavailable = outcome {
            let error = ProviderError::invalid_response("a 2xx answer carried an error");
            return Err(error.classified(outcome).into());
        }
        let context = AnswerContext::new(operation, Arc::clone(&self.model));
        let translated = self
            .dialect
            .translate_response(bytes, &context)
            .and_then(|translated| encoding.encode(translated))
            .map_err(|e| e.classified(Outcome::Failure(FailureKind::StreamBroken)))?;
        let mut response = self.answer(head, ResponseBody::full(translated));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if !outcome.is_success() {
            response.extensions_mut().insert(outcome);
        }
        Ok(response)
    }

    /// A 2xx stream, translated as it arrives.
    pub(super) fn stream(
        &self,
        operation: Operation,
        include_usage: bool,
        usage_chunk: bool,
        head: &Parts,
        incoming: Incoming,
    ) -> Response<ResponseBody> {
        let context = AnswerContext::new(operation, Arc::clone(&self.model))
            .with_include_usage(include_usage)
            .with_usage_chunk(usage_chunk)
            .with_max_event_bytes(self.max_event_bytes)
            .with_classifier(self.classifier.clone());
        let upstream = ResponseBody::new(incoming.map_err(body_error));
        let body = self.dialect.translate_stream(upstream, &context);
        let mut response = self.answer(head, body);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    /// A non-2xx answer: read its body (bounded), classify it, and answer in
    /// the OpenAI error shape the dialect gives it, with the outcome in the
    /// extensions.
    ///
    /// A 401 or 403 rejected the gateway's own key, not the caller's: the
    /// answer is a 502 in the gateway's words (`upstream_auth_failed`), and
    /// the provider's body, which may quote the key, is dropped; the
    /// dialect never sees it.
    pub(super) async fn error_answer(
        &self,
        head: Parts,
        incoming: Incoming,
    ) -> Response<ResponseBody> {
        let body = read_bounded(incoming, self.max_error_body).await.ok();
        let outcome = self.classify(head.status, &head.headers, body.as_deref());
        let body = body.unwrap_or_default();
        let (status, json) = match outcome {
            Outcome::Failure(FailureKind::Unauthorized(rejected)) => {
                let error = self.credentials_rejected(rejected);
                (error.status(), error.to_json())
            }
            _ => match self
                .dialect
                .shape_error(head.status, &head.headers, outcome, &body)
            {
                ShapedError::Verbatim => (head.status, body),
                ShapedError::Rewritten(error) => (error.status(), error.to_json()),
            },
        };
        let mut response = Response::new(ResponseBody::full(json));
        *response.headers_mut() = HeaderMap::with_capacity(ANSWER_HEADERS);
        *response.status_mut() = status;
        self.copy_answer_headers(&head.headers, response.headers_mut());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.extensions_mut().insert(outcome);
        response
    }

    /// The caller's answer: the upstream status, the allowed headers, `body`.
    fn answer(&self, head: &Parts, body: ResponseBody) -> Response<ResponseBody> {
        let mut response = Response::new(body);
        *response.headers_mut() = HeaderMap::with_capacity(ANSWER_HEADERS);
        *response.status_mut() = head.status;
        self.copy_answer_headers(&head.headers, response.headers_mut());
        response
    }

    /// Passes on the headers of an answer that matter to the caller; see
    /// [`is_forwarded_answer_header`].
    fn copy_answer_headers(&self, from: &HeaderMap, to: &mut HeaderMap) {
        for (name, value) in from {
            if is_forwarded_answer_header(name, self.rate_limit_headers) {
                to.append(name, value.clone());
            }
        }
    }

    /// The answer to a request for an operation this provider does not
    /// serve: not sent, [`Outcome::Unavailable`], so a route moves on to
    /// its next target without counting it against this one.
    pub(super) fn not_served(&self, operation: Operation) -> Response<ResponseBody> {
        let mut response: Response<ResponseBody> = OpenAiError::invalid_request(format!(
            "`{}` targets do not serve {operation} requests",
            self.dialect.name()
        ))
        .with_code("operation_not_supported")
        .to_response();
        response.extensions_mut().insert(Outcome::Unavailable);
        response
    }

    /// The answer to a provider's 401 or 403: a 502 naming the provider by
    /// its host, never quoting what it said.
    fn credentials_rejected(&self, rejected: StatusCode) -> OpenAiError {
        let provider = self.endpoint.host().unwrap_or("the provider");
        OpenAiError::new(
            StatusCode::BAD_GATEWAY,
            "authentication_error",
            format!(
                "the provider `{provider}` rejected the gateway's credentials ({})",
                rejected.as_u16()
            ),
        )
        .with_code("upstream_auth_failed")
    }
}
