//! Dialects: everything that makes one provider's API differ from another's.
//!
//! A [`ProviderService`](crate::ProviderService) does the same things for
//! every provider: it sends the caller's OpenAI chat-completions request
//! over the shared client, reads or streams the answer within its bounds,
//! classifies failures into [`Outcome`]s and keeps credentials and upstream
//! headers to itself. What differs between providers is its [`Dialect`]:
//! where an [`Operation`] is sent, which headers carry the key, how the
//! request, the answer, the stream and the errors are translated.
//!
//! - [`openai::OpenAiDialect`]: OpenAI and every server compatible with it;
//!   only the request's `model` changes.
//! - [`anthropic::AnthropicDialect`]: Anthropic's Messages API, translated
//!   both ways.
//! - [`gemini::GeminiDialect`]: the Google AI Gemini API, translated both
//!   ways.
//! - [`bedrock::BedrockDialect`]: AWS Bedrock Runtime's Converse API,
//!   translated both ways, each request signed with `SigV4`.
//! - Your own: implement [`Dialect`] (only [`name`](Dialect::name) is
//!   required; every other method defaults to the OpenAI-compatible
//!   behaviour) and build the service with
//!   [`ProviderService::with_dialect`](crate::ProviderService::with_dialect).
//!
//! [`ProviderKind`] is the registry of the dialects a configuration names
//! (`openai`, `anthropic`): one variant, one name, one line in
//! [`ProviderKind::dialect_with`] per dialect.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
mod chunk;
mod completion;
pub mod error_shape;
pub mod gemini;
mod kind;
pub mod openai;
mod openai_request;
pub(crate) mod sse_translate;
pub(crate) mod stream_body;
pub mod structured;
pub(crate) mod unsupported;

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
pub use understudy_core::Operation;
use understudy_core::sse::DEFAULT_MAX_EVENT_BYTES;
use understudy_core::{Classify, OpenAiError, Outcome, ResponseBody, SharedClassifier};

use crate::error::{ConfigError, ProviderError};
use crate::key::ApiKey;

pub use self::kind::{DialectOptions, ProviderKind, UnknownProviderKind};

/// What a provider's API speaks, and how to translate to and from it.
///
/// The caller's side is always OpenAI's: requests arrive as OpenAI
/// chat-completions JSON, answers leave as OpenAI chat completions, SSE
/// chunks and error envelopes. A dialect maps that to one provider's API.
/// Every method but [`name`](Self::name) has a default that does what an
/// OpenAI-compatible server needs, so a dialect overrides only where its
/// provider differs.
///
/// Which methods run when:
///
/// 1. When the service is built: [`endpoint`](Self::endpoint),
///    [`probe_path`](Self::probe_path), [`auth_headers`](Self::auth_headers)
///    (when there is a key) and [`fixed_headers`](Self::fixed_headers).
/// 2. Per request: [`translate_request`](Self::translate_request), then
///    [`sign`](Self::sign) once the headers are set; the request's
///    [`Reply`] decides what happens to a 2xx answer: passed on as it is,
///    read whole and given to [`translate_response`](Self::translate_response),
///    or given as it streams to [`translate_stream`](Self::translate_stream).
/// 3. A non-2xx answer: its body is read (bounded), classified (with
///    [`classify_hint`](Self::classify_hint) first), and shaped by
///    [`shape_error`](Self::shape_error). A 401 or 403 never reaches the
///    dialect: the service answers it itself without quoting the provider.
///
/// A dialect is shared by every request of its services
/// (`Arc<dyn Dialect>`), so it holds configuration only, never
/// per-request state.
///
/// # Example
///
/// A self-hosted server that speaks OpenAI's wire format, but serves each
/// model at its own path and takes its key in `x-key`:
///
/// ```
/// use std::borrow::Cow;
/// use std::sync::Arc;
///
/// use http::{HeaderMap, HeaderValue};
/// use understudy_provider::dialect::{Dialect, Operation};
/// use understudy_provider::{ApiKey, ClientConfig, ConfigError, HttpClient, ProviderService};
///
/// struct PerModel;
///
/// impl Dialect for PerModel {
///     fn name(&self) -> &str {
///         "per-model"
///     }
///
///     fn endpoint(&self, operation: Operation, model: &str, _stream: bool) -> Option<Cow<'_, str>> {
///         match operation {
///             Operation::ChatCompletions => Some(Cow::Owned(format!("models/{model}/chat"))),
///             _ => None,
///         }
///     }
///
///     fn auth_headers(&self, key: &ApiKey) -> Result<HeaderMap, ConfigError> {
///         let value = HeaderValue::try_from(key.expose()).map_err(|_| ConfigError::InvalidApiKey)?;
///         let mut headers = HeaderMap::new();
///         headers.insert("x-key", value);
///         Ok(headers)
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let service = ProviderService::with_dialect(
///     HttpClient::new(ClientConfig::default())?,
///     Arc::new(PerModel),
///     "https://llm.internal.example/api",
///     Some(ApiKey::new("internal-key")),
///     "llama-3-70b",
/// )?;
/// assert_eq!(
///     service.endpoint(),
///     "https://llm.internal.example/api/models/llama-3-70b/chat",
/// );
/// assert_eq!(service.dialect().name(), "per-model");
/// assert_eq!(service.kind(), None);
/// # Ok(())
/// # }
/// ```
pub trait Dialect: Send + Sync + 'static {
    /// A short name for logs and `Debug` output: `openai`, `anthropic`.
    fn name(&self) -> &str;

    /// Where `operation` is sent for `model`: a path relative to the base
    /// URL (a leading `/` is ignored), with a query if the API wants one;
    /// `None` when this dialect cannot do the operation. `stream` says
    /// whether the path is for a streamed answer (a request whose
    /// [`Reply`] is [`Reply::Stream`]); APIs that stream from the same
    /// path ignore it.
    ///
    /// The service asks once per operation, model and `stream` when it is
    /// built, never per request.
    ///
    /// An operation a dialect has no endpoint for is either converted by
    /// the service ([`Operation::Messages`] is served as a chat completion,
    /// its answer translated back by the endpoint above) or not served by
    /// this provider ([`Operation::Embeddings`]: the target is skipped,
    /// without counting against its health).
    ///
    /// Default: `chat/completions` and `embeddings`, OpenAI's paths.
    fn endpoint(&self, operation: Operation, model: &str, stream: bool) -> Option<Cow<'_, str>> {
        let _ = (model, stream);
        match operation {
            Operation::ChatCompletions => Some(Cow::Borrowed("chat/completions")),
            Operation::Embeddings => Some(Cow::Borrowed("embeddings")),
            _ => None,
        }
    }

    /// The path, relative to the base URL, that
    /// [`probe`](crate::ProviderService::probe) sends a `GET` to (signed
    /// like a request, see [`sign`](Self::sign)); a 2xx answer means the
    /// provider is up. `None` when the API has no request cheap and safe
    /// enough to probe with: the service then has no probe
    /// ([`ProviderService::can_probe`](crate::ProviderService::can_probe)),
    /// and an ejected provider comes back through trial requests only.
    ///
    /// Default: `models`.
    fn probe_path(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed("models"))
    }

    /// The headers that carry the key. The service marks every value
    /// sensitive, so none is ever logged.
    ///
    /// Default: `Authorization: Bearer <key>` ([`bearer_auth`]).
    fn auth_headers(&self, key: &ApiKey) -> Result<HeaderMap, ConfigError> {
        bearer_auth(key)
    }

    /// Headers sent with every request, key or none (a version header, for
    /// instance). Headers set with
    /// [`with_header`](crate::ProviderService::with_header) replace these.
    ///
    /// Default: none.
    fn fixed_headers(&self) -> HeaderMap {
        HeaderMap::new()
    }

    /// Signs a request just before it is sent: every request and every
    /// probe, with its method, URI, final headers and body. A dialect whose
    /// API authenticates each request with a signature (AWS `SigV4`) adds its
    /// headers here; any header it sets is marked sensitive.
    ///
    /// An error fails the attempt as the provider refusing the gateway's
    /// credentials ([`FailureKind::Unauthorized`](understudy_core::FailureKind::Unauthorized)),
    /// without sending anything.
    ///
    /// Default: nothing to sign.
    fn sign(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), ProviderError> {
        let _ = (method, uri, headers, body);
        Ok(())
    }

    /// Translates the caller's request, an OpenAI chat-completions JSON
    /// body, into the upstream's body for `model`, and says how its answer
    /// is read ([`Reply`]).
    ///
    /// A request that cannot be translated is an error naming what is
    /// wrong ([`ProviderError::invalid_request`]): the caller gets a 400
    /// with that message, and nothing is sent.
    ///
    /// Default: the caller's bytes with the top-level `model` replaced
    /// ([`openai::rewrite_model`]), the answer passed through.
    fn translate_request(
        &self,
        operation: Operation,
        body: &[u8],
        model: &str,
    ) -> Result<UpstreamRequest, ProviderError> {
        let _ = operation;
        openai::rewrite_model(body, model).map(UpstreamRequest::pass_through)
    }

    /// Translates a whole 2xx answer (for [`Reply::Whole`]) into an OpenAI
    /// chat completion. It is only called once the body has been read
    /// within the service's bound and classified a success.
    ///
    /// An error here is the provider's fault: it fails the attempt as a
    /// broken answer ([`FailureKind::StreamBroken`](understudy_core::FailureKind::StreamBroken)).
    ///
    /// Default: the body as it is.
    fn translate_response(
        &self,
        body: Bytes,
        context: &AnswerContext,
    ) -> Result<Bytes, ProviderError> {
        let _ = context;
        Ok(body)
    }

    /// Translates a streaming 2xx answer (for [`Reply::Stream`]) into an
    /// OpenAI SSE body: `data: {chunk}` events ending with `data: [DONE]`.
    ///
    /// `body` yields the upstream bytes as they arrive; its errors are
    /// already classified (a broken connection is
    /// [`FailureKind::StreamBroken`](understudy_core::FailureKind::StreamBroken)).
    /// Errors the returned body yields should be
    /// [`ClassifiedError`](understudy_core::ClassifiedError)s too (an
    /// in-stream error event classified by what it says); any other error
    /// counts as a transport failure. The body must not buffer more than
    /// [`AnswerContext::max_event_bytes`] of one event.
    ///
    /// Default: the body as it is.
    fn translate_stream(&self, body: ResponseBody, context: &AnswerContext) -> ResponseBody {
        let _ = context;
        body
    }

    /// Shapes a non-2xx answer (other than 401 and 403) as the error the
    /// caller sees, given the upstream status, headers, what it was
    /// classified as, and its body (read up to the service's bound; empty
    /// if it could not be read).
    ///
    /// The caller's answer keeps the upstream status unless the shaped
    /// error carries another, and the outcome travels in its extensions
    /// whatever the body says.
    ///
    /// Default: a body already in the OpenAI error shape passes on as it
    /// came ([`ShapedError::Verbatim`]); any other is rewritten by
    /// [`error_shape::openai_error`].
    fn shape_error(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        outcome: Outcome,
        body: &[u8],
    ) -> ShapedError {
        let _ = headers;
        if error_shape::is_openai_error(body) {
            ShapedError::Verbatim
        } else {
            ShapedError::Rewritten(error_shape::openai_error(status, outcome, body))
        }
    }

    /// Classifies an upstream answer whose body was read (an error answer,
    /// or a whole 2xx answer) when this dialect knows better than
    /// [`LlmClassifier`](understudy_core::LlmClassifier), which knows the
    /// status codes, rate-limit headers and the OpenAI, Anthropic and vLLM
    /// error bodies. `None` leaves it to the classifier. It is not asked
    /// about a 401 or 403: those always mean the provider refused the
    /// gateway's key.
    ///
    /// Default: `None`.
    fn classify_hint(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<Outcome> {
        let _ = (status, headers, body);
        None
    }
}

/// A request translated for the upstream, from
/// [`Dialect::translate_request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// The body sent upstream (JSON; sent with
    /// `content-type: application/json`).
    pub body: Bytes,
    /// What to do with a 2xx answer.
    pub reply: Reply,
}

impl UpstreamRequest {
    /// A request whose answer is already in OpenAI's shape.
    pub fn pass_through(body: Bytes) -> Self {
        Self {
            body,
            reply: Reply::PassThrough,
        }
    }

    /// A request whose answer is read whole and translated.
    pub fn whole(body: Bytes) -> Self {
        Self {
            body,
            reply: Reply::Whole,
        }
    }

    /// A request whose answer is a stream, translated as it arrives;
    /// `include_usage` says whether the caller asked for the usage chunk.
    pub fn stream(body: Bytes, include_usage: bool) -> Self {
        Self {
            body,
            reply: Reply::Stream { include_usage },
        }
    }

    /// A request translated for a provider: streamed when the caller asked
    /// for a stream (`stream`), else read whole.
    pub(crate) fn translated(body: Bytes, stream: bool, include_usage: bool) -> Self {
        if stream {
            Self::stream(body, include_usage)
        } else {
            Self::whole(body)
        }
    }
}

/// How a 2xx answer becomes the caller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// Passed on as it arrives, with its `content-type`: the upstream
    /// already speaks OpenAI. The caller's `accept` header is sent
    /// upstream.
    PassThrough,
    /// Read whole (bounded by
    /// [`with_max_response_body`](crate::ProviderService::with_max_response_body)),
    /// classified, then [`Dialect::translate_response`]; the caller gets
    /// `application/json`.
    Whole,
    /// Given to [`Dialect::translate_stream`] as it arrives; the caller
    /// gets `text/event-stream`.
    Stream {
        /// The caller asked for usage in the stream
        /// (`"stream_options": {"include_usage": true}`).
        include_usage: bool,
    },
}

/// What [`Dialect::translate_response`] and [`Dialect::translate_stream`]
/// know about the request an answer is for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AnswerContext {
    /// The operation answered.
    pub operation: Operation,
    /// The model asked of the provider, for an answer that does not name
    /// it.
    pub model: Arc<str>,
    /// Streams: the caller asked for usage in the stream, a last chunk
    /// whose `usage` is set and whose `choices` are empty
    /// (`"stream_options": {"include_usage": true}`).
    pub include_usage: bool,
    /// Streams: write the usage chunk even when the caller did not ask,
    /// without `"usage": null` on the other chunks, for the layers above to
    /// count it and take it out
    /// ([`with_stream_usage`](crate::ProviderService::with_stream_usage)).
    /// The built-in translators honour it; a dialect that does not only
    /// goes uncounted when the caller did not ask.
    pub usage_chunk: bool,
    /// Streams: the longest line, and the most data of one event, to
    /// buffer; more is a broken stream.
    pub max_event_bytes: usize,
    /// Streams: what an in-stream error event means, read by the service's
    /// classifier ([`LlmClassifier`](understudy_core::LlmClassifier) unless
    /// [`with_classifier`](crate::ProviderService::with_classifier) says
    /// otherwise).
    pub classifier: SharedClassifier,
}

impl AnswerContext {
    /// A context for an answer to `operation` asked of `model`, without
    /// the usage chunk, with the default bound
    /// ([`DEFAULT_MAX_EVENT_BYTES`]).
    pub fn new(operation: Operation, model: impl Into<Arc<str>>) -> Self {
        Self {
            operation,
            model: model.into(),
            include_usage: false,
            usage_chunk: false,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            classifier: SharedClassifier::default(),
        }
    }

    /// Sets [`include_usage`](Self::include_usage).
    pub fn with_include_usage(mut self, include_usage: bool) -> Self {
        self.include_usage = include_usage;
        self
    }

    /// Sets [`usage_chunk`](Self::usage_chunk).
    #[must_use]
    pub fn with_usage_chunk(mut self, on: bool) -> Self {
        self.usage_chunk = on;
        self
    }

    /// Sets [`max_event_bytes`](Self::max_event_bytes).
    pub fn with_max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// Sets [`classifier`](Self::classifier).
    #[must_use]
    pub fn with_classifier(mut self, classifier: impl Classify) -> Self {
        self.classifier = SharedClassifier::new(classifier);
        self
    }
}

/// The error a caller sees for an upstream error answer, from
/// [`Dialect::shape_error`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShapedError {
    /// The body is already in the OpenAI error shape: pass it on byte for
    /// byte, with the upstream status.
    Verbatim,
    /// Answer this error instead (its status and its JSON body).
    Rewritten(OpenAiError),
}

/// The error of a dialect asked to translate an operation it has no
/// endpoint for (the service never asks).
pub(crate) fn unsupported_operation(dialect: &str, operation: Operation) -> ProviderError {
    ProviderError::invalid_request(format!(
        "`{dialect}` targets do not serve {operation} requests"
    ))
}

/// `Authorization: Bearer <key>`, what OpenAI-compatible servers take.
pub fn bearer_auth(key: &ApiKey) -> Result<HeaderMap, ConfigError> {
    key_header(header::AUTHORIZATION, &format!("Bearer {}", key.expose()))
}

/// One header carrying (a form of) the key.
pub(crate) fn key_header(name: HeaderName, value: &str) -> Result<HeaderMap, ConfigError> {
    let mut value = HeaderValue::try_from(value).map_err(|_| ConfigError::InvalidApiKey)?;
    value.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(name, value);
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_auth_is_a_sensitive_bearer() {
        let headers = bearer_auth(&ApiKey::new("sk-1")).ok();
        let auth = headers.as_ref().and_then(|h| h.get(header::AUTHORIZATION));
        assert_eq!(auth.and_then(|v| v.to_str().ok()), Some("Bearer sk-1"));
        assert!(auth.is_some_and(HeaderValue::is_sensitive));
        assert!(bearer_auth(&ApiKey::new("bad\nkey")).is_err());
    }
}
