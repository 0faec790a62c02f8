//! The provider service: one per target.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tower_service::Service;
use understudy_core::sse::DEFAULT_MAX_EVENT_BYTES;
use understudy_core::{
    BoxError, ClientErrorKind, FailureKind, LlmClassifier, OpenAiError, Outcome, ReplayBody,
    ResponseBody,
};

use crate::anthropic::{self, AnthropicStreamBody, AnthropicStreamTranslator};
use crate::client::HttpClient;
use crate::error::{ConfigError, ProviderError, body_error, classify_send_error};
use crate::key::ApiKey;
use crate::openai;

/// The API a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI's chat-completions API, and every server compatible with it
    /// (vLLM, Ollama, Groq, Together, Mistral, `DeepSeek`, `OpenRouter`, …).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

impl ProviderKind {
    /// The name used in configuration: `openai` or `anthropic`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider kind name that is neither `openai` nor `anthropic`.
#[derive(Debug, thiserror::Error)]
#[error("unknown provider kind `{0}`: expected `openai` or `anthropic`")]
pub struct UnknownProviderKind(String);

impl FromStr for ProviderKind {
    type Err = UnknownProviderKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "openai" => Ok(Self::OpenAi),
            "anthropic" => Ok(Self::Anthropic),
            other => Err(UnknownProviderKind(other.to_owned())),
        }
    }
}

/// The most bytes of an upstream error body that are read.
const DEFAULT_MAX_ERROR_BODY: usize = 1024 * 1024;
/// The most bytes of a non-streaming Anthropic answer that are read.
const DEFAULT_MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

/// Caller headers sent upstream; everything else (`Authorization`,
/// `x-api-key`, cookies, `anthropic-version`, `host`, `content-length`,
/// `accept-encoding`, …) is dropped.
const FORWARDED_REQUEST_HEADERS: [&str; 4] =
    ["user-agent", "x-request-id", "traceparent", "tracestate"];

/// Headers of an upstream answer passed on to the caller: request ids
/// always, the rate-limit family only when the service is configured to
/// ([`ProviderService::with_rate_limit_headers`]). Everything else an
/// upstream sends (`set-cookie`, `server`, its internal headers) stays here.
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

/// The inner service of one target: sends the caller's OpenAI-shaped
/// chat-completions request to one provider and model, and answers in the
/// OpenAI shape.
///
/// - **OpenAI-compatible** ([`ProviderService::openai`]): POSTs to
///   `{base_url}/chat/completions` with `Authorization: Bearer <key>`. The
///   body is the caller's, byte for byte, except the top-level `model`
///   ([`openai::rewrite_model`]); the answer streams back as it came.
/// - **Anthropic** ([`ProviderService::anthropic`]): POSTs the
///   [translated](crate::anthropic) request to `{base_url}/messages` with
///   `x-api-key` and `anthropic-version`, and translates the answer back,
///   chunk by chunk for streams.
///
/// `base_url` includes the API version path (`https://api.openai.com/v1`,
/// `https://api.anthropic.com/v1`, `http://127.0.0.1:8000/v1`); a trailing
/// slash is allowed.
///
/// # Headers
///
/// The caller's credentials never travel: of the caller's headers only
/// `user-agent`, `x-request-id`, `traceparent` and `tracestate` are sent,
/// plus `content-type: application/json` and, for OpenAI-compatible
/// targets, `accept`. Extra fixed headers (`OpenAI-Organization`,
/// `anthropic-beta`, …) are set with [`with_header`](Self::with_header).
/// Of an answer's headers only `content-type` and the request ids
/// (`x-request-id`, `request-id`, `anthropic-request-id`,
/// `apim-request-id`) reach the caller, plus, when
/// [`with_rate_limit_headers`](Self::with_rate_limit_headers) says so,
/// `retry-after`, `retry-after-ms` and the `*ratelimit-*` family.
///
/// # Results
///
/// - A 2xx answer is `Ok`, its body streaming as it arrives; a body that
///   breaks yields an error classified [`FailureKind::StreamBroken`], and an
///   Anthropic `error` event an error classified by its type (overloaded,
///   rate limited, …).
/// - A non-2xx answer is `Ok` too, with the upstream status, an
///   [`Outcome`] in its extensions (classified from status, headers and
///   body by [`LlmClassifier::classify_parts`]), the headers above, and a
///   body in the OpenAI error shape. A 401 or 403 rejected the gateway's
///   key, not the caller's: it is a 502 with code `upstream_auth_failed`
///   and [`FailureKind::Unauthorized`], and the provider's body (which may
///   quote the key) is not passed on.
/// - A request that cannot be sent because it is not valid (not a JSON
///   object, a malformed field the Anthropic translation needs) is `Ok`
///   with a 400 and [`ClientErrorKind::Rejected`].
/// - A failure to connect is `Err`, a [`ClassifiedError`](understudy_core::ClassifiedError)
///   with [`FailureKind::Connect`] (or [`FailureKind::Timeout`] when the
///   connect timed out); a connection that fails later,
///   [`FailureKind::Transport`].
///
/// `poll_ready` is always ready: the connection pool absorbs load.
///
/// # Example
///
/// ```
/// use understudy_provider::{ApiKey, ClientConfig, HttpClient, ProviderService};
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
///
/// let anthropic = ProviderService::anthropic(
///     client,
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
/// ```
#[derive(Clone)]
pub struct ProviderService {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    client: HttpClient,
    kind: ProviderKind,
    base_url: String,
    endpoint: Uri,
    models: Uri,
    key: Option<ApiKey>,
    /// The key as its header, marked sensitive.
    auth: Option<(HeaderName, HeaderValue)>,
    model: Arc<str>,
    /// `model` as a JSON string literal.
    model_json: Bytes,
    max_tokens_default: u32,
    /// Fixed headers: `anthropic-version` and the configured extras.
    fixed_headers: HeaderMap,
    max_error_body: usize,
    max_response_body: usize,
    /// The longest SSE line or event read from a translated stream.
    max_event_bytes: usize,
    /// Pass `retry-after`, `retry-after-ms` and `*ratelimit-*` on.
    rate_limit_headers: bool,
}

// ===== impl ProviderService =====

impl ProviderService {
    /// A service for an OpenAI-compatible server, sending `model` upstream.
    /// Without a key, no `Authorization` header is sent (local servers).
    pub fn openai(
        client: HttpClient,
        base_url: &str,
        key: Option<ApiKey>,
        model: impl Into<Arc<str>>,
    ) -> Result<Self, ConfigError> {
        Self::build(client, ProviderKind::OpenAi, base_url, key, model.into(), 0)
    }

    /// A service for Anthropic's Messages API, sending `model` upstream, with
    /// `max_tokens_default` as `max_tokens` when the caller sets none.
    pub fn anthropic(
        client: HttpClient,
        base_url: &str,
        key: Option<ApiKey>,
        model: impl Into<Arc<str>>,
        max_tokens_default: u32,
    ) -> Result<Self, ConfigError> {
        Self::build(
            client,
            ProviderKind::Anthropic,
            base_url,
            key,
            model.into(),
            max_tokens_default,
        )
    }

    /// A service of either kind; `max_tokens_default` only matters for
    /// Anthropic.
    pub fn new(
        client: HttpClient,
        kind: ProviderKind,
        base_url: &str,
        key: Option<ApiKey>,
        model: impl Into<Arc<str>>,
        max_tokens_default: u32,
    ) -> Result<Self, ConfigError> {
        Self::build(
            client,
            kind,
            base_url,
            key,
            model.into(),
            max_tokens_default,
        )
    }

    fn build(
        client: HttpClient,
        kind: ProviderKind,
        base_url: &str,
        key: Option<ApiKey>,
        model: Arc<str>,
        max_tokens_default: u32,
    ) -> Result<Self, ConfigError> {
        let base = base_url.trim_end_matches('/');
        let invalid = |reason: &str| ConfigError::InvalidBaseUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed: Uri = base.parse().map_err(|_| invalid("not a URL"))?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) {
            return Err(invalid("the scheme must be http or https"));
        }
        if parsed.authority().is_none() {
            return Err(invalid("there is no host"));
        }
        if parsed.query().is_some() {
            return Err(invalid("a base URL takes no query"));
        }
        let path = match kind {
            ProviderKind::OpenAi => "chat/completions",
            ProviderKind::Anthropic => "messages",
        };
        let endpoint: Uri = format!("{base}/{path}")
            .parse()
            .map_err(|_| invalid("not a URL"))?;
        let models: Uri = format!("{base}/models")
            .parse()
            .map_err(|_| invalid("not a URL"))?;

        let auth = match &key {
            None => None,
            Some(key) => {
                let (name, value) = match kind {
                    ProviderKind::OpenAi => {
                        (header::AUTHORIZATION, format!("Bearer {}", key.expose()))
                    }
                    ProviderKind::Anthropic => (
                        HeaderName::from_static("x-api-key"),
                        key.expose().to_owned(),
                    ),
                };
                let mut value =
                    HeaderValue::try_from(value).map_err(|_| ConfigError::InvalidApiKey)?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        let mut fixed_headers = HeaderMap::new();
        if kind == ProviderKind::Anthropic {
            fixed_headers.insert(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(anthropic::ANTHROPIC_VERSION),
            );
        }
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                kind,
                base_url: base.to_owned(),
                endpoint,
                models,
                key,
                auth,
                model_json: Bytes::from(openai::json_string(&model)),
                model,
                max_tokens_default,
                fixed_headers,
                max_error_body: DEFAULT_MAX_ERROR_BODY,
                max_response_body: DEFAULT_MAX_RESPONSE_BODY,
                max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
                rate_limit_headers: false,
            }),
        })
    }

    /// Sends a fixed header with every request (replacing a default of the
    /// same name, such as `anthropic-version`).
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, ConfigError> {
        let invalid = || ConfigError::InvalidHeader {
            name: name.to_owned(),
        };
        let name = HeaderName::try_from(name).map_err(|_| invalid())?;
        let value = HeaderValue::try_from(value).map_err(|_| invalid())?;
        Arc::make_mut(&mut self.shared)
            .fixed_headers
            .insert(name, value);
        Ok(self)
    }

    /// Sets the most bytes of an upstream error body that are read
    /// (default 1 MiB); the rest is ignored.
    pub fn with_max_error_body(mut self, limit: usize) -> Self {
        Arc::make_mut(&mut self.shared).max_error_body = limit;
        self
    }

    /// Sets the most bytes of a non-streaming Anthropic answer that are
    /// read for translation (default 64 MiB); a longer answer is a failure.
    pub fn with_max_response_body(mut self, limit: usize) -> Self {
        Arc::make_mut(&mut self.shared).max_response_body = limit;
        self
    }

    /// Sets the longest SSE line, and the most data of one event, read from
    /// a stream this service translates (default 1 MiB); more is a
    /// provider failure (`stream_broken`).
    pub fn with_max_event_bytes(mut self, limit: usize) -> Self {
        Arc::make_mut(&mut self.shared).max_event_bytes = limit;
        self
    }

    /// Passes the provider's rate-limit headers on to the caller:
    /// `retry-after`, `retry-after-ms`, `x-ratelimit-*` and
    /// `anthropic-ratelimit-*`. Off by default: they describe the gateway's
    /// own key and quota, which are not the caller's business. The layers
    /// above never need them, whatever this says: the wait a 429 asked for
    /// travels in the [`Outcome`] of its response.
    pub fn with_rate_limit_headers(mut self, pass: bool) -> Self {
        Arc::make_mut(&mut self.shared).rate_limit_headers = pass;
        self
    }

    /// The API this service speaks.
    pub fn kind(&self) -> ProviderKind {
        self.shared.kind
    }

    /// The model asked of the provider.
    pub fn model(&self) -> &str {
        &self.shared.model
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The URL requests are sent to.
    pub fn endpoint(&self) -> &Uri {
        &self.shared.endpoint
    }

    /// Asks the provider whether it answers: `GET {base_url}/models` with
    /// the key, true on a 2xx. Fit for
    /// `HealthRegistry::spawn_prober` in understudy-health; put a timeout
    /// around it.
    pub fn probe(&self) -> impl Future<Output = bool> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move {
            let mut request = Request::new(ReplayBody::default());
            *request.method_mut() = Method::GET;
            *request.uri_mut() = shared.models.clone();
            shared.set_headers(request.headers_mut());
            match shared.client.send(request).await {
                Ok(response) => {
                    let healthy = response.status().is_success();
                    // Read the (small) body so the connection is reused.
                    let _ = read_bounded(response.into_body(), 64 * 1024).await;
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
            .field("kind", &self.shared.kind)
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

/// How the answer to a 2xx is handled.
enum Answer {
    /// OpenAI-compatible: pass the body through.
    PassThrough,
    /// Anthropic, not streaming: read and translate the JSON.
    AnthropicJson,
    /// Anthropic, streaming: translate events as they arrive.
    AnthropicStream { include_usage: bool },
}

// ===== impl Shared =====

impl Shared {
    async fn send(
        self: Arc<Self>,
        request: Request<ReplayBody>,
    ) -> Result<Response<ResponseBody>, BoxError> {
        let (parts, body) = request.into_parts();
        let prepared = match self.kind {
            ProviderKind::OpenAi => openai::rewrite_model_json(body.bytes(), &self.model_json)
                .map(|body| (body, Answer::PassThrough)),
            ProviderKind::Anthropic => {
                anthropic::translate_request(body.bytes(), &self.model, self.max_tokens_default)
                    .map(|translated| {
                        let answer = if translated.stream {
                            Answer::AnthropicStream {
                                include_usage: translated.include_usage,
                            }
                        } else {
                            Answer::AnthropicJson
                        };
                        (translated.body, answer)
                    })
            }
        };
        let (upstream_body, answer) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return Ok(invalid_request(&error)),
        };

        let mut upstream = Request::new(ReplayBody::new(upstream_body));
        *upstream.method_mut() = Method::POST;
        *upstream.uri_mut() = self.endpoint.clone();
        let headers = upstream.headers_mut();
        for name in FORWARDED_REQUEST_HEADERS {
            if let Some(value) = parts.headers.get(name) {
                headers.insert(HeaderName::from_static(name), value.clone());
            }
        }
        if self.kind == ProviderKind::OpenAi
            && let Some(accept) = parts.headers.get(header::ACCEPT)
        {
            headers.insert(header::ACCEPT, accept.clone());
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.set_headers(headers);

        let response = self
            .client
            .send(upstream)
            .await
            .map_err(classify_send_error)?;
        let (head, incoming) = response.into_parts();
        if !head.status.is_success() {
            return Ok(self.error_answer(head, incoming).await);
        }
        match answer {
            Answer::PassThrough => {
                let mut response = Response::new(ResponseBody::new(incoming.map_err(body_error)));
                *response.status_mut() = head.status;
                if let Some(content_type) = head.headers.get(header::CONTENT_TYPE) {
                    response
                        .headers_mut()
                        .insert(header::CONTENT_TYPE, content_type.clone());
                }
                self.copy_answer_headers(&head.headers, response.headers_mut());
                Ok(response)
            }
            Answer::AnthropicJson => {
                let bytes = read_limited(incoming, self.max_response_body).await?;
                let outcome =
                    LlmClassifier::new().classify_parts(head.status, &head.headers, Some(&bytes));
                if !outcome.is_success() {
                    let error = ProviderError::invalid_response("a 2xx answer carried an error");
                    return Err(error.classified(outcome).into());
                }
                let translated = anthropic::translate_response(&bytes, unix_now())
                    .map_err(|e| e.classified(Outcome::Failure(FailureKind::StreamBroken)))?;
                let mut response = Response::new(ResponseBody::full(translated));
                *response.status_mut() = head.status;
                self.copy_answer_headers(&head.headers, response.headers_mut());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(response)
            }
            Answer::AnthropicStream { include_usage } => {
                let translator = AnthropicStreamTranslator::new(include_usage);
                let body = AnthropicStreamBody::new(incoming.map_err(body_error), translator)
                    .max_event_bytes(self.max_event_bytes);
                let mut response = Response::new(ResponseBody::new(body));
                *response.status_mut() = head.status;
                self.copy_answer_headers(&head.headers, response.headers_mut());
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                );
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                Ok(response)
            }
        }
    }

    /// The key and the fixed headers.
    fn set_headers(&self, headers: &mut HeaderMap) {
        if let Some((name, value)) = &self.auth {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.fixed_headers {
            headers.insert(name.clone(), value.clone());
        }
    }

    /// A non-2xx answer: read its body (bounded), classify it, and answer in
    /// the OpenAI error shape with the outcome in the extensions.
    ///
    /// A 401 or 403 rejected the gateway's own key, not the caller's: the
    /// answer is a 502 in the gateway's words (`upstream_auth_failed`), and
    /// the provider's body, which may quote the key, is dropped.
    async fn error_answer(
        &self,
        head: http::response::Parts,
        incoming: Incoming,
    ) -> Response<ResponseBody> {
        let body = read_bounded(incoming, self.max_error_body).await.ok();
        let classifier = LlmClassifier::new();
        let outcome = classifier.classify_parts(head.status, &head.headers, body.as_deref());
        let body = body.unwrap_or_default();
        let mut status = head.status;
        let json = match (self.kind, outcome) {
            (_, Outcome::Failure(FailureKind::Unauthorized(rejected))) => {
                let error = self.credentials_rejected(rejected);
                status = error.status();
                error.to_json()
            }
            (ProviderKind::OpenAi, _) if is_openai_error(&body) => body,
            (ProviderKind::OpenAi, _) => openai_error(head.status, outcome, &body).to_json(),
            (ProviderKind::Anthropic, _) => {
                anthropic::translate_error(head.status, outcome, &body).to_json()
            }
        };
        let mut response = Response::new(ResponseBody::full(json));
        *response.status_mut() = status;
        self.copy_answer_headers(&head.headers, response.headers_mut());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.extensions_mut().insert(outcome);
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

/// Is this body already an OpenAI error envelope?
fn is_openai_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|json| {
        json.get("error")
            .and_then(|error| error.get("message"))
            .is_some_and(serde_json::Value::is_string)
    })
}

/// An OpenAI-shaped error for an OpenAI-compatible server's error body that
/// is not one (vLLM's bare object, plain text, an HTML page).
fn openai_error(status: StatusCode, outcome: Outcome, body: &[u8]) -> OpenAiError {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|json| json.get("message"))
        .and_then(serde_json::Value::as_str)
        .map_or_else(|| anthropic::fallback_message(status, body), str::to_owned);
    let kind = anthropic::default_error_type(outcome);
    anthropic::with_outcome_code(OpenAiError::new(status, kind, message), outcome)
}

/// A 400 for a request that cannot be sent.
fn invalid_request(error: &ProviderError) -> Response<ResponseBody> {
    let mut response: Response<ResponseBody> =
        OpenAiError::invalid_request(error.to_string()).to_response();
    response
        .extensions_mut()
        .insert(Outcome::ClientError(ClientErrorKind::Rejected(
            StatusCode::BAD_REQUEST,
        )));
    response
}

/// Reads at most `limit` bytes of a body; the rest is not read.
async fn read_bounded<B>(mut body: B, limit: usize) -> Result<Bytes, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut buffer = BytesMut::new();
    while buffer.len() < limit {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            let room = limit - buffer.len();
            buffer.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(buffer.freeze())
}

/// Reads a whole 2xx body of at most `limit` bytes.
async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, BoxError> {
    let stream_broken = Outcome::Failure(FailureKind::StreamBroken);
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => match error.downcast::<hyper::Error>() {
            Ok(error) => Err(ProviderError::Body(*error).classified(stream_broken).into()),
            Err(_) => Err(ProviderError::invalid_response(format!(
                "the answer is larger than {limit} bytes"
            ))
            .classified(stream_broken)
            .into()),
        },
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}
    fn assert_send<T: Send + 'static>() {}

    #[test]
    fn traits() {
        assert_send_sync::<ProviderService>();
        assert_send::<ResponseFuture>();
        assert_send::<AnthropicStreamBody<Incoming>>();
    }

    #[test]
    fn kinds_parse_and_print() {
        assert_eq!(
            "openai".parse::<ProviderKind>().ok(),
            Some(ProviderKind::OpenAi)
        );
        assert_eq!(ProviderKind::Anthropic.to_string(), "anthropic");
        assert!("azure".parse::<ProviderKind>().is_err());
    }
}
