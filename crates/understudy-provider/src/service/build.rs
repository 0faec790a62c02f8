//! Building a [`ProviderService`]: its constructors, its settings, and
//! what it was built with.

use std::sync::Arc;

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Uri};
use understudy_core::sse::DEFAULT_MAX_EVENT_BYTES;
use understudy_core::{Classify, SharedClassifier};

use super::{DEFAULT_MAX_ERROR_BODY, DEFAULT_MAX_RESPONSE_BODY, ProviderService, Shared};
use crate::client::HttpClient;
use crate::dialect::{Dialect, DialectOptions, Operation, ProviderKind};
use crate::error::ConfigError;
use crate::key::ApiKey;

impl ProviderService {
    /// A service for an OpenAI-compatible server, sending `model` upstream.
    /// Without a key, no `Authorization` header is sent (local servers).
    pub fn openai(
        client: HttpClient,
        base_url: &str,
        key: Option<ApiKey>,
        model: impl Into<Arc<str>>,
    ) -> Result<Self, ConfigError> {
        let kind = ProviderKind::OpenAi;
        Self::build(
            client,
            Some(kind),
            kind.dialect()?,
            base_url,
            key,
            model.into(),
        )
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
        Self::new(
            client,
            ProviderKind::Anthropic,
            base_url,
            key,
            model,
            max_tokens_default,
        )
    }

    /// A service of a registered kind; `max_tokens_default` only matters
    /// to the dialects that read it (Anthropic's, see [`DialectOptions`]).
    /// A kind that requires more settings (Azure, Bedrock) is built with
    /// [`with_options`](Self::with_options).
    pub fn new(
        client: HttpClient,
        kind: ProviderKind,
        base_url: &str,
        key: Option<ApiKey>,
        model: impl Into<Arc<str>>,
        max_tokens_default: u32,
    ) -> Result<Self, ConfigError> {
        let options = DialectOptions::default().max_tokens_default(max_tokens_default);
        Self::with_options(client, kind, &options, base_url, key, model)
    }

    /// A service of a registered kind, its dialect built with `options`
    /// (an error names a setting the kind requires that is missing).
    ///
    /// ```
    /// use understudy_provider::{
    ///     ApiKey, ClientConfig, DialectOptions, HttpClient, ProviderKind, ProviderService,
    /// };
    ///
    /// let azure = ProviderService::with_options(
    ///     HttpClient::new(ClientConfig::default()).unwrap(),
    ///     ProviderKind::Azure,
    ///     &DialectOptions::default().api_version("2024-10-21"),
    ///     "https://example.openai.azure.com/openai",
    ///     Some(ApiKey::new("az-key")),
    ///     "gpt-4o-eu",
    /// )
    /// .unwrap();
    /// assert_eq!(
    ///     azure.endpoint(),
    ///     "https://example.openai.azure.com/openai/deployments/gpt-4o-eu/chat/completions?api-version=2024-10-21",
    /// );
    /// ```
    pub fn with_options(
        client: HttpClient,
        kind: ProviderKind,
        options: &DialectOptions,
        base_url: &str,
        key: Option<ApiKey>,
        model: impl Into<Arc<str>>,
    ) -> Result<Self, ConfigError> {
        let dialect = kind.dialect_with(options)?;
        Self::build(client, Some(kind), dialect, base_url, key, model.into())
    }

    /// A service speaking any [`Dialect`], sending `model` upstream.
    /// Without a key, no key header is sent.
    ///
    /// See [`Dialect`] for an example.
    pub fn with_dialect(
        client: HttpClient,
        dialect: Arc<dyn Dialect>,
        base_url: &str,
        key: Option<ApiKey>,
        model: impl Into<Arc<str>>,
    ) -> Result<Self, ConfigError> {
        Self::build(client, None, dialect, base_url, key, model.into())
    }

    fn build(
        client: HttpClient,
        kind: Option<ProviderKind>,
        dialect: Arc<dyn Dialect>,
        base_url: &str,
        key: Option<ApiKey>,
        model: Arc<str>,
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
        let join = |path: &str| -> Result<Uri, ConfigError> {
            format!("{base}/{}", path.trim_start_matches('/'))
                .parse()
                .map_err(|_| invalid("not a URL"))
        };
        let chat = Operation::ChatCompletions;
        let endpoint_for =
            |operation: Operation, stream: bool| -> Result<Option<Uri>, ConfigError> {
                dialect
                    .endpoint(operation, &model, stream)
                    .map(|path| join(&path))
                    .transpose()
            };
        let unsupported = || ConfigError::UnsupportedOperation {
            dialect: dialect.name().to_owned(),
            operation: chat,
        };
        let endpoint = endpoint_for(chat, false)?.ok_or_else(unsupported)?;
        let stream_endpoint = endpoint_for(chat, true)?.ok_or_else(unsupported)?;
        let mut other_endpoints = Vec::new();
        for operation in Operation::ALL.into_iter().filter(|op| *op != chat) {
            for stream in [false, true] {
                if let Some(uri) = endpoint_for(operation, stream)? {
                    other_endpoints.push((operation, stream, uri));
                }
            }
        }
        let probe = dialect.probe_path().map(|path| join(&path)).transpose()?;

        let mut auth = match &key {
            Some(key) => dialect.auth_headers(key)?,
            None => HeaderMap::new(),
        };
        for value in auth.values_mut() {
            value.set_sensitive(true);
        }
        let fixed_headers = dialect.fixed_headers();
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                dialect,
                kind,
                base_url: base.to_owned(),
                endpoint,
                stream_endpoint,
                other_endpoints,
                probe,
                key,
                auth,
                model,
                fixed_headers,
                max_error_body: DEFAULT_MAX_ERROR_BODY,
                max_response_body: DEFAULT_MAX_RESPONSE_BODY,
                max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
                rate_limit_headers: false,
                classifier: SharedClassifier::default(),
                stream_usage: false,
            }),
        })
    }

    /// Sends a fixed header with every request (replacing a default of the
    /// same name, such as `anthropic-version`).
    ///
    /// A header that carries or shapes credentials or framing is refused
    /// ([`ConfigError::InvalidHeader`]): `authorization`, the key headers
    /// of every built-in dialect (`api-key`, `x-api-key`,
    /// `x-goog-api-key`), this dialect's own key headers, the AWS signing
    /// headers (`x-amz-*`), `host`, `content-type`, `content-length` and
    /// `transfer-encoding`. An extra header never overrides the key.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, ConfigError> {
        let invalid = || ConfigError::InvalidHeader {
            name: name.to_owned(),
        };
        check_extra_header(name, value).map_err(|_| invalid())?;
        let name = HeaderName::try_from(name).map_err(|_| invalid())?;
        let value = HeaderValue::try_from(value).map_err(|_| invalid())?;
        if self.shared.auth.contains_key(&name) {
            return Err(invalid());
        }
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

    /// Sets the most bytes of a whole answer that are read for translation
    /// (Anthropic's, not streaming; default 64 MiB); a longer answer is a
    /// failure.
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

    /// Classifies error answers with `classifier` instead of
    /// [`LlmClassifier`](understudy_core::LlmClassifier), where the
    /// dialect's [`classify_hint`](crate::dialect::Dialect::classify_hint)
    /// does not decide. The service reads error bodies and attaches what it
    /// concluded to the answer, so the layers above (given the same
    /// classifier) agree with it.
    #[must_use]
    pub fn with_classifier(mut self, classifier: impl Classify) -> Self {
        Arc::make_mut(&mut self.shared).classifier = SharedClassifier::new(classifier);
        self
    }

    /// Passes the provider's rate-limit headers on to the caller:
    /// `retry-after`, `retry-after-ms`, `x-ratelimit-*` and
    /// `anthropic-ratelimit-*`. Off by default: they describe the gateway's
    /// own key and quota, which are not the caller's business. The layers
    /// above never need them, whatever this says: the wait a 429 asked for
    /// travels in the [`Outcome`](understudy_core::Outcome) of its response.
    pub fn with_rate_limit_headers(mut self, pass: bool) -> Self {
        Arc::make_mut(&mut self.shared).rate_limit_headers = pass;
        self
    }

    /// Makes every chat stream report its usage, whether the caller asked
    /// (`"stream_options": {"include_usage": true}`) or not, so the layers
    /// above can count its tokens. Off by default.
    ///
    /// When the caller did not ask, an answer that passes through (an
    /// OpenAI-compatible provider) is asked for it upstream with
    /// `stream_options.include_usage`, and a translated stream (Anthropic,
    /// Gemini, Bedrock) writes the usage chunk it reads from its own wire;
    /// either answer carries [`UnaskedUsage`](understudy_core::UnaskedUsage),
    /// and the commit point (`understudy_fallback::FirstChunkLayer`) removes
    /// the usage chunk and every `"usage": null` before the caller sees the
    /// stream. Turn it on only under that layer, and off for an
    /// OpenAI-compatible server that refuses `stream_options`.
    pub fn with_stream_usage(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.shared).stream_usage = on;
        self
    }

    /// The registered kind this service was built as
    /// ([`openai`](Self::openai), [`anthropic`](Self::anthropic),
    /// [`new`](Self::new)); `None` for one built
    /// [`with_dialect`](Self::with_dialect).
    pub fn kind(&self) -> Option<ProviderKind> {
        self.shared.kind
    }

    /// The dialect this service speaks.
    pub fn dialect(&self) -> &dyn Dialect {
        &*self.shared.dialect
    }

    /// The model asked of the provider.
    pub fn model(&self) -> &str {
        &self.shared.model
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The URL requests are sent to (for a streamed answer, see
    /// [`stream_endpoint`](Self::stream_endpoint)).
    pub fn endpoint(&self) -> &Uri {
        &self.shared.endpoint
    }

    /// The URL requests whose answer is translated as a stream are sent
    /// to; the same as [`endpoint`](Self::endpoint) for APIs that stream
    /// from the same path.
    pub fn stream_endpoint(&self) -> &Uri {
        &self.shared.stream_endpoint
    }

    /// Whether this provider serves `operation`: chat completions always;
    /// Anthropic Messages always (natively where the dialect has a
    /// Messages endpoint, else as a chat completion whose answer the
    /// endpoint translates back); others where the dialect has an endpoint
    /// for them. A request for an operation it does not serve is answered
    /// [`Outcome::Unavailable`](understudy_core::Outcome::Unavailable)
    /// without being sent, so a route moves on to its next target.
    pub fn serves(&self, operation: Operation) -> bool {
        matches!(operation, Operation::ChatCompletions | Operation::Messages)
            || self.shared.endpoint_for(operation, false).is_some()
    }

    /// Whether [`probe`](Self::probe) asks the provider anything: false
    /// when the dialect has no [probe path](Dialect::probe_path).
    pub fn can_probe(&self) -> bool {
        self.shared.probe.is_some()
    }
}

/// Checks an extra header ([`ProviderService::with_header`]): a valid name
/// and value, and not one of the headers that carry or shape credentials,
/// signing or framing, which are the service's own. The problem, in words,
/// never quotes the value.
///
/// ```
/// use understudy_provider::check_extra_header;
///
/// assert!(check_extra_header("OpenAI-Organization", "org-1").is_ok());
/// assert!(check_extra_header("Authorization", "Bearer x").is_err());
/// assert!(check_extra_header("x-amz-date", "now").is_err());
/// assert!(check_extra_header("bad header", "v").is_err());
/// ```
pub fn check_extra_header(name: &str, value: &str) -> Result<(), &'static str> {
    let Ok(name) = HeaderName::try_from(name) else {
        return Err("is not a valid header name");
    };
    if HeaderValue::try_from(value).is_err() {
        return Err("has a value a header cannot carry");
    }
    let reserved = matches!(
        name.as_str(),
        "authorization"
            | "proxy-authorization"
            | "api-key"
            | "x-api-key"
            | "x-goog-api-key"
            | "host"
            | "content-type"
            | "content-length"
            | "transfer-encoding"
            | "connection"
    ) || name.as_str().starts_with("x-amz-");
    if reserved {
        return Err("is set by the provider service itself (credentials, signing or framing)");
    }
    Ok(())
}
