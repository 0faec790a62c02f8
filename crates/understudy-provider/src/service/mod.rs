//! The provider service: one per target, driven by its [`Dialect`].
//!
//! This file holds the service and sends its requests; `build` makes and
//! configures it, `answer` turns the upstream's answer into the caller's,
//! `embeddings` encodes translated embeddings as the caller asked, and
//! `read` reads bodies within their bounds.

mod answer;
mod build;
mod embeddings;
mod read;

pub use self::build::check_extra_header;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use tower_service::Service;
use understudy_core::{
    BoxError, Classify, FailureKind, Outcome, ReplayBody, ResponseBody, SharedClassifier,
    UnaskedUsage,
};

use self::answer::invalid_request;
use self::embeddings::EmbeddingEncoding;
use self::read::read_bounded;
use crate::client::HttpClient;
use crate::dialect::{Dialect, Operation, ProviderKind, Reply, UpstreamRequest};
use crate::error::classify_send_error;
use crate::key::ApiKey;

/// The most bytes of an upstream error body that are read.
const DEFAULT_MAX_ERROR_BODY: usize = 1024 * 1024;
/// The most bytes of a whole answer that are read for translation.
const DEFAULT_MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;
/// The most bytes of a probe's answer that are read.
const MAX_PROBE_BODY: usize = 64 * 1024;

/// The AWS session token header, which a signing dialect may set.
const SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");

/// Caller headers sent upstream with a Messages request a dialect serves
/// natively (Anthropic's): they choose the API version and its betas.
const ANTHROPIC_REQUEST_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
];

/// Caller headers sent upstream; everything else (`Authorization`,
/// `x-api-key`, cookies, `anthropic-version`, `host`, `content-length`,
/// `accept-encoding`, …) is dropped. `accept` is sent too when the answer
/// passes through ([`Reply::PassThrough`]).
static FORWARDED_REQUEST_HEADERS: [HeaderName; 4] = [
    header::USER_AGENT,
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
];

/// The inner service of one target: sends the caller's OpenAI-shaped
/// chat-completions request to one provider and model, and answers in the
/// OpenAI shape.
///
/// What the provider's API looks like is its [`Dialect`]; the service does
/// the rest, the same for every provider.
///
/// - **OpenAI-compatible** ([`ProviderService::openai`]): POSTs to
///   `{base_url}/chat/completions` with `Authorization: Bearer <key>`. The
///   body is the caller's, byte for byte, except the top-level `model`
///   ([`openai::rewrite_model`](crate::openai::rewrite_model)); the answer
///   streams back as it came.
/// - **Anthropic** ([`ProviderService::anthropic`]): POSTs the
///   [translated](crate::anthropic) request to `{base_url}/messages` with
///   `x-api-key` and `anthropic-version`, and translates the answer back,
///   chunk by chunk for streams.
/// - **Any other API** ([`ProviderService::with_dialect`]): what its
///   [`Dialect`] says.
///
/// `base_url` includes the API version path (`https://api.openai.com/v1`,
/// `https://api.anthropic.com/v1`, `http://127.0.0.1:8000/v1`); a trailing
/// slash is allowed.
///
/// # Headers
///
/// The caller's credentials never travel: of the caller's headers only
/// `user-agent`, `x-request-id`, `traceparent` and `tracestate` are sent,
/// plus `content-type: application/json` and, when the answer passes
/// through untranslated (OpenAI-compatible targets), `accept`. The key
/// travels in the dialect's headers, marked sensitive. Extra fixed headers
/// (`OpenAI-Organization`, `anthropic-beta`, …) are set with
/// [`with_header`](Self::with_header). Of an answer's headers only
/// `content-type` and the request ids (`x-request-id`, `request-id`,
/// `anthropic-request-id`, `apim-request-id`) reach the caller, plus, when
/// [`with_rate_limit_headers`](Self::with_rate_limit_headers) says so,
/// `retry-after`, `retry-after-ms` and the `*ratelimit-*` family.
///
/// # Results
///
/// - A 2xx answer is `Ok`, its body streaming as it arrives; a body that
///   breaks yields an error classified
///   [`FailureKind::StreamBroken`](understudy_core::FailureKind::StreamBroken),
///   and an in-stream error event (Anthropic's `error`) an error classified
///   by its type (overloaded, rate limited, …).
/// - A non-2xx answer is `Ok` too, with the upstream status, an
///   [`Outcome`] in its extensions (classified from status, headers and
///   body by the service's classifier
///   ([`LlmClassifier`](understudy_core::LlmClassifier) unless
///   [`with_classifier`](Self::with_classifier) says otherwise), unless the dialect's
///   [`classify_hint`](Dialect::classify_hint) knows better), the headers
///   above, and a body in the OpenAI error shape. A 401 or 403 rejected the
///   gateway's key, not the caller's: it is a 502 with code
///   `upstream_auth_failed` and
///   [`FailureKind::Unauthorized`](understudy_core::FailureKind::Unauthorized),
///   and the provider's body (which may quote the key) is not passed on.
/// - A request that cannot be sent because it is not valid (not a JSON
///   object, a malformed field the translation needs) is `Ok` with a 400
///   and [`ClientErrorKind::Rejected`](understudy_core::ClientErrorKind::Rejected).
/// - A failure to connect is `Err`, a [`ClassifiedError`](understudy_core::ClassifiedError)
///   with [`FailureKind::Connect`](understudy_core::FailureKind::Connect)
///   (or [`FailureKind::Timeout`](understudy_core::FailureKind::Timeout)
///   when the connect timed out); a connection that fails later,
///   [`FailureKind::Transport`](understudy_core::FailureKind::Transport).
///
/// `poll_ready` is always ready: the connection pool absorbs load.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
///
/// use understudy_provider::dialect::anthropic::AnthropicDialect;
/// use understudy_provider::{ApiKey, ClientConfig, HttpClient, ProviderKind, ProviderService};
///
/// let client = HttpClient::new(ClientConfig::default()).unwrap();
/// let openai = ProviderService::openai(
///     client.clone(),
///     "https://api.openai.com/v1",
///     Some(ApiKey::new("sk-test")),
///     "gpt-4o-mini",
/// )
/// .unwrap();
/// assert_eq!(openai.endpoint(), "https://api.openai.com/v1/chat/completions");
/// assert_eq!(openai.kind(), Some(ProviderKind::OpenAi));
///
/// let anthropic = ProviderService::anthropic(
///     client.clone(),
///     "https://api.anthropic.com/v1/",
///     Some(ApiKey::new("sk-ant-test")),
///     "claude-sonnet-4-5",
///     4096,
/// )
/// .unwrap()
/// .with_header("anthropic-beta", "prompt-caching-2024-07-31")
/// .unwrap();
/// assert_eq!(anthropic.endpoint(), "https://api.anthropic.com/v1/messages");
/// // The key never prints.
/// assert!(!format!("{anthropic:?}").contains("sk-ant-test"));
///
/// // The same service, from its dialect.
/// let same = ProviderService::with_dialect(
///     client,
///     Arc::new(AnthropicDialect::new(4096)),
///     "https://api.anthropic.com/v1",
///     Some(ApiKey::new("sk-ant-test")),
///     "claude-sonnet-4-5",
/// )
/// .unwrap();
/// assert_eq!(same.endpoint(), anthropic.endpoint());
/// assert_eq!(same.dialect().name(), "anthropic");
/// ```
#[derive(Clone)]
pub struct ProviderService {
    shared: Arc<Shared>,
}

/// What every request of one service shares.
#[derive(Clone)]
struct Shared {
    client: HttpClient,
    dialect: Arc<dyn Dialect>,
    /// The registered kind the dialect came from, if it did.
    kind: Option<ProviderKind>,
    base_url: String,
    endpoint: Uri,
    /// Where requests answered as a stream go.
    stream_endpoint: Uri,
    /// The endpoints of the other operations the dialect serves natively,
    /// by operation and streaming.
    other_endpoints: Vec<(Operation, bool, Uri)>,
    /// Where probes go; none when the dialect has no probe.
    probe: Option<Uri>,
    key: Option<ApiKey>,
    /// The dialect's headers for the key, marked sensitive.
    auth: HeaderMap,
    model: Arc<str>,
    /// The dialect's fixed headers and the configured extras.
    fixed_headers: HeaderMap,
    max_error_body: usize,
    max_response_body: usize,
    /// The longest SSE line or event read from a translated stream.
    max_event_bytes: usize,
    /// Pass `retry-after`, `retry-after-ms` and `*ratelimit-*` on.
    rate_limit_headers: bool,
    /// Reads error bodies the dialect has no hint for.
    classifier: SharedClassifier,
    /// Chat streams report their usage even when the caller did not ask.
    stream_usage: bool,
}

impl ProviderService {
    /// Asks the provider whether it answers: `GET` the dialect's
    /// [probe path](Dialect::probe_path) (`{base_url}/models` for
    /// OpenAI's) with the key, signed as the dialect signs requests, true
    /// on a 2xx. Fit for `HealthRegistry::spawn_prober` in
    /// understudy-health; put a timeout around it. A service whose dialect
    /// has no probe path ([`can_probe`](Self::can_probe) is false) asks
    /// nothing and answers false: do not spawn a prober for it.
    pub fn probe(&self) -> impl Future<Output = bool> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move {
            let Some(uri) = shared.probe.clone() else {
                return false;
            };
            let mut request = Request::new(ReplayBody::default());
            *request.method_mut() = Method::GET;
            *request.uri_mut() = uri;
            shared.set_headers(request.headers_mut());
            let (mut parts, body) = request.into_parts();
            if shared.sign(&mut parts, &[]).is_err() {
                return false;
            }
            match shared.client.send(Request::from_parts(parts, body)).await {
                Ok(response) => {
                    let healthy = response.status().is_success();
                    // Read the (small) body so the connection is reused.
                    let _ = read_bounded(response.into_body(), MAX_PROBE_BODY).await;
                    healthy
                }
                Err(_) => false,
            }
        }
    }
}

impl fmt::Debug for ProviderService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderService")
            .field("dialect", &self.shared.dialect.name())
            .field("endpoint", &self.shared.endpoint)
            .field("model", &self.shared.model)
            .field("key", &self.shared.key)
            .finish_non_exhaustive()
    }
}

impl Service<Request<ReplayBody>> for ProviderService {
    type Response = Response<ResponseBody>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReplayBody>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        ResponseFuture {
            inner: Box::pin(shared.send(request)),
        }
    }
}

/// The response future of [`ProviderService`].
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, BoxError>> + Send>>,
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

// ===== impl Shared =====

impl Shared {
    /// Translates the request, sends it, and hands the answer to
    /// [`answer`](self::answer).
    async fn send(
        self: Arc<Self>,
        request: Request<ReplayBody>,
    ) -> Result<Response<ResponseBody>, BoxError> {
        let (parts, body) = request.into_parts();
        let asked = Operation::of(&parts.extensions);
        // A Messages request to a dialect without a Messages endpoint is
        // served as a chat completion; the endpoint above translates the
        // answer back (the answer says which shape it has).
        let converted = if asked == Operation::Messages
            && self.endpoint_for(Operation::Messages, false).is_none()
        {
            match crate::messages::to_chat(body.bytes()) {
                Ok(chat) => Some(chat.body),
                Err(error) => return Ok(invalid_request(&error)),
            }
        } else {
            None
        };
        let operation = if converted.is_some() {
            Operation::ChatCompletions
        } else {
            asked
        };
        if operation != Operation::ChatCompletions && self.endpoint_for(operation, false).is_none()
        {
            return Ok(self.not_served(operation));
        }
        let caller_body = converted.as_deref().unwrap_or_else(|| body.bytes());
        let UpstreamRequest { body, reply } =
            match self
                .dialect
                .translate_request(operation, caller_body, &self.model)
            {
                Ok(translated) => translated,
                Err(error) => return Ok(invalid_request(&error)),
            };
        // Streams report their usage whether the caller asked or not; the
        // commit point strips what the caller did not ask for.
        let (body, unasked_usage) = self.stream_usage(operation, body, reply);
        // A translated embeddings answer is encoded as the caller asked.
        let encoding = if reply == Reply::Whole {
            EmbeddingEncoding::asked(operation, caller_body)
        } else {
            EmbeddingEncoding::AsTranslated
        };

        let stream = matches!(reply, Reply::Stream { .. });
        let Some(uri) = self.endpoint_for(operation, stream).cloned() else {
            return Ok(self.not_served(operation));
        };
        let (mut upstream, ()) = Request::new(()).into_parts();
        upstream.method = Method::POST;
        upstream.uri = uri;
        let headers = &mut upstream.headers;
        for name in &FORWARDED_REQUEST_HEADERS {
            if let Some(value) = parts.headers.get(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        if reply == Reply::PassThrough
            && let Some(accept) = parts.headers.get(header::ACCEPT)
        {
            headers.insert(header::ACCEPT, accept.clone());
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.set_headers(headers);
        if operation == Operation::Messages {
            // The caller's API version and betas, for the API it speaks.
            for name in ANTHROPIC_REQUEST_HEADERS {
                if let Some(value) = parts.headers.get(&name) {
                    headers.insert(name, value.clone());
                }
            }
        }
        self.sign(&mut upstream, &body)?;
        let upstream = Request::from_parts(upstream, ReplayBody::new(body));

        let response = self
            .client
            .send(upstream)
            .await
            .map_err(classify_send_error)?;
        let (head, incoming) = response.into_parts();
        if !head.status.is_success() {
            return Ok(self.error_answer(head, incoming).await);
        }
        let mut answer = match reply {
            Reply::PassThrough => self.pass_through(&head, incoming),
            Reply::Whole => self.whole(operation, encoding, &head, incoming).await?,
            Reply::Stream { include_usage } => {
                self.stream(operation, include_usage, unasked_usage, &head, incoming)
            }
        };
        if unasked_usage {
            answer.extensions_mut().insert(UnaskedUsage);
        }
        // The shape the answer's body has.
        answer.extensions_mut().insert(operation);
        Ok(answer)
    }

    /// With [`stream_usage`](ProviderService::with_stream_usage), a chat
    /// stream whose caller did not ask for usage is made to report it: a
    /// pass-through request gets `stream_options.include_usage`, a
    /// translated stream writes the usage chunk. Says whether it did.
    fn stream_usage(
        &self,
        operation: Operation,
        body: bytes::Bytes,
        reply: Reply,
    ) -> (bytes::Bytes, bool) {
        if !self.stream_usage || operation != Operation::ChatCompletions {
            return (body, false);
        }
        match reply {
            Reply::PassThrough => match crate::openai::ask_stream_usage(&body) {
                Some(asked) => (asked, true),
                None => (body, false),
            },
            Reply::Stream {
                include_usage: false,
            } => (body, true),
            _ => (body, false),
        }
    }

    /// The endpoint of `operation`, streamed or not, if the dialect has one.
    fn endpoint_for(&self, operation: Operation, stream: bool) -> Option<&Uri> {
        if operation == Operation::ChatCompletions {
            return Some(if stream {
                &self.stream_endpoint
            } else {
                &self.endpoint
            });
        }
        self.other_endpoints
            .iter()
            .find(|(op, streamed, _)| *op == operation && *streamed == stream)
            .or_else(|| {
                self.other_endpoints
                    .iter()
                    .find(|(op, _, _)| *op == operation)
            })
            .map(|(_, _, uri)| uri)
    }

    /// The key's headers, then the fixed headers, each replacing any of
    /// the same name.
    fn set_headers(&self, headers: &mut HeaderMap) {
        for from in [&self.auth, &self.fixed_headers] {
            for name in from.keys() {
                headers.remove(name);
                for value in from.get_all(name) {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
    }

    /// Has the dialect sign a request whose headers are set; the headers
    /// that carry a signature or a token are marked sensitive. A failure to
    /// sign is the gateway's credentials failing, classified so.
    fn sign(&self, request: &mut http::request::Parts, body: &[u8]) -> Result<(), BoxError> {
        self.dialect
            .sign(&request.method, &request.uri, &mut request.headers, body)
            .map_err(|error| {
                error.classified(Outcome::Failure(FailureKind::Unauthorized(
                    StatusCode::FORBIDDEN,
                )))
            })?;
        for name in [header::AUTHORIZATION, SECURITY_TOKEN] {
            if let Some(value) = request.headers.get_mut(name) {
                value.set_sensitive(true);
            }
        }
        Ok(())
    }

    /// Classifies an upstream answer: the dialect's hint when it has one
    /// (never for a 401 or 403, whose body the dialect must not see), else
    /// the classifier. Every classification of the service goes through
    /// here.
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: Option<&[u8]>) -> Outcome {
        let credentials = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        body.filter(|_| !credentials)
            .and_then(|body| self.dialect.classify_hint(status, headers, body))
            .unwrap_or_else(|| self.classifier.classify_parts(status, headers, body))
    }
}

#[cfg(test)]
mod tests {
    use hyper::body::Incoming;

    use super::*;
    use crate::dialect::anthropic::AnthropicStreamBody;

    fn assert_send_sync<T: Send + Sync + 'static>() {}
    fn assert_send<T: Send + 'static>() {}

    #[test]
    fn traits() {
        assert_send_sync::<ProviderService>();
        assert_send_sync::<Arc<dyn Dialect>>();
        assert_send::<ResponseFuture>();
        assert_send::<AnthropicStreamBody<Incoming>>();
        assert_send::<AnthropicStreamBody<ResponseBody>>();
    }
}
