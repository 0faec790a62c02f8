//! Provider services for Understudy: the inner `Service` of each target.
//!
//! Each target of a fallback route ends in one [`ProviderService`]: the
//! service that takes the caller's request in OpenAI chat-completions form
//! (a `Request<ReplayBody>` of JSON) and sends it to one provider and model.
//! What is particular to a provider's API is its [`Dialect`]; the service
//! does the rest the same way for all of them.
//!
//! - [`HttpClient`]: the one pooled client they share, hyper-util's
//!   keep-alive pool over rustls (webpki roots, ring), HTTP/1.1 and HTTP/2
//!   by ALPN, `TCP_NODELAY`, a connect timeout; plain `http://` for local
//!   servers. Configured by [`ClientConfig`].
//! - [`Dialect`]: where a request goes, which headers carry the key, and
//!   how the request, the answer, the stream and the errors are
//!   translated. Its defaults are the OpenAI-compatible behaviour; the
//!   [`dialect`] module holds the built-in ones and the helpers a new one
//!   uses ([`dialect::error_shape`]).
//! - [`ProviderService::openai`] ([`openai::OpenAiDialect`]): any
//!   OpenAI-compatible server. Only the request's `model` changes
//!   ([`openai::rewrite_model`]); every other field, known or not, passes
//!   through as the caller wrote it.
//! - [`ProviderService::anthropic`] ([`anthropic::AnthropicDialect`]):
//!   Anthropic's Messages API, with the request, the answer, the stream and
//!   the errors translated (the [`anthropic`] module says what maps to
//!   what, and what is dropped).
//! - [`gemini::GeminiDialect`] (`kind = "gemini"`): the Google AI Gemini
//!   API, natively, with the request, the answer, the stream and the errors
//!   translated (the [`gemini`] module says what maps to what, what is
//!   refused and what is dropped).
//! - [`messages`]: Anthropic's Messages API in front of any target, its
//!   requests converted to OpenAI chat completions and the answers back.
//! - [`ProviderService::with_dialect`]: any other API, by its [`Dialect`].
//! - [`ProviderKind`]: the built-in dialects by the names a configuration
//!   uses (`openai`, `anthropic`, `azure`, `gemini`).
//! - [`ProviderConfig`]: a provider described in configuration (kind, base
//!   URL, timeouts), checked by [`ProviderConfig::validate`]; with the
//!   `serde` feature it, [`ClientConfig`] and [`ProviderKind`] deserialise
//!   from a file's keys.
//! - [`ApiKey`]: the provider's key, injected by the service and never
//!   printed. The caller's own `Authorization` never goes upstream.
//!
//! The services speak the contract the layers above rely on: upstream
//! answers, errors included, come back as responses with an
//! [`Outcome`](understudy_core::Outcome) in their extensions when they are
//! not 2xx; connection failures come back as
//! [`ClassifiedError`](understudy_core::ClassifiedError)s; streams are never
//! buffered, and a stream that breaks or carries an error event fails with a
//! classified body error.
//!
//! # Example
//!
//! ```no_run
//! use http::Request;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use understudy_core::ReplayBody;
//! use understudy_provider::{ApiKey, ClientConfig, HttpClient, ProviderService};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let client = HttpClient::new(ClientConfig::default())?;
//! let claude = ProviderService::anthropic(
//!     client,
//!     "https://api.anthropic.com/v1",
//!     Some(ApiKey::new(std::env::var("ANTHROPIC_API_KEY")?)),
//!     "claude-sonnet-4-5",
//!     4096,
//! )?;
//! let request = Request::post("/v1/chat/completions").body(ReplayBody::from(
//!     r#"{"model":"chat","messages":[{"role":"user","content":"Hello"}]}"#,
//! ))?;
//! let response = claude.oneshot(request).await?;
//! let completion = response.into_body().collect().await?.to_bytes();
//! # drop(completion);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod config;
pub mod dialect;
mod error;
mod key;
pub mod messages;
mod service;

pub use rustls::pki_types::CertificateDer;

pub use self::client::{ClientBuildError, ClientConfig, HttpClient, MAX_LANES};
pub use self::config::ProviderConfig;
pub use self::dialect::{
    AnswerContext, Dialect, DialectOptions, Operation, ProviderKind, Reply, ShapedError,
    UnknownProviderKind, UpstreamRequest, anthropic, azure, bedrock, gemini, openai,
};
pub use self::error::{ConfigError, ProviderError};
pub use self::key::{ApiKey, AwsCredentials};
pub use self::service::{ProviderService, ResponseFuture, check_extra_header};
