//! The Azure OpenAI dialect: OpenAI's wire format at a deployment's path.
//!
//! [`AzureDialect`] speaks Azure OpenAI's chat-completions API. The body,
//! the answer, the stream and the error envelope are OpenAI's; what
//! differs is where requests go and how the key travels:
//!
//! - a target's model is the *deployment* name: requests go to
//!   `{base_url}/deployments/{deployment}/chat/completions?api-version={api_version}`,
//!   with `base_url` such as `https://RESOURCE.openai.azure.com/openai`;
//! - the key is sent as `api-key`, never as `Authorization`;
//! - probes list the resource's models:
//!   `GET {base_url}/models?api-version={api_version}`.
//!
//! Azure's content filter answers in two ways, both a
//! [`ContentFiltered`](understudy_core::ClientErrorKind::ContentFiltered)
//! outcome (which fails over only where the route opts in): a 400 whose
//! error code is `content_filter` (read by
//! [`LlmClassifier`](understudy_core::LlmClassifier)), and a 200 whose
//! every choice finished with `content_filter` and holds no content, which
//! this dialect recognises. Such a 200 still reaches the caller as Azure
//! sent it when the route does not fail over. A streamed answer is passed
//! through as it arrives (Azure's extra `prompt_filter_results` chunk
//! included, which OpenAI's SDKs accept), so a stream the filter stops
//! after its commit point ends with `finish_reason: "content_filter"`.
//!
//! Rate limits (`retry-after-ms`, `x-ratelimit-reset-*` on a 429) classify
//! as for OpenAI.

use std::borrow::Cow;

use http::header::HeaderName;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use understudy_core::{ClientErrorKind, Outcome};

use super::{Dialect, Operation, UpstreamRequest, key_header, openai};
use crate::error::{ConfigError, ProviderError};
use crate::key::ApiKey;

/// The dialect of Azure OpenAI, for one `api-version`.
///
/// ```
/// use understudy_provider::dialect::azure::AzureDialect;
/// use understudy_provider::dialect::{Dialect, Operation};
///
/// let azure = AzureDialect::new("2024-10-21").unwrap();
/// assert_eq!(
///     azure.endpoint(Operation::ChatCompletions, "gpt-4o-eu", true).as_deref(),
///     Some("deployments/gpt-4o-eu/chat/completions?api-version=2024-10-21"),
/// );
/// assert_eq!(azure.probe_path().as_deref(), Some("models?api-version=2024-10-21"));
/// assert!(AzureDialect::new("2024-10-21&x=1").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct AzureDialect {
    api_version: String,
}

impl AzureDialect {
    /// The dialect for `api_version` (`2024-10-21`, `2025-01-01-preview`):
    /// letters, digits, `-`, `.` and `_` only, since it is sent in the
    /// query.
    pub fn new(api_version: impl Into<String>) -> Result<Self, ConfigError> {
        let api_version = api_version.into();
        if api_version.is_empty()
            || !api_version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(ConfigError::InvalidSetting {
                setting: "api_version",
                reason: "must be an Azure OpenAI API version such as `2024-10-21`".to_owned(),
            });
        }
        Ok(Self { api_version })
    }

    /// The `api-version` requests are sent with.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }
}

/// The one field of the caller's request this dialect reads.
#[derive(Deserialize)]
struct Flags {
    #[serde(default)]
    stream: Option<bool>,
}

impl Dialect for AzureDialect {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn endpoint(&self, operation: Operation, model: &str, _stream: bool) -> Option<Cow<'_, str>> {
        match operation {
            Operation::ChatCompletions => Some(Cow::Owned(format!(
                "deployments/{model}/chat/completions?api-version={}",
                self.api_version
            ))),
            Operation::Embeddings => Some(Cow::Owned(format!(
                "deployments/{model}/embeddings?api-version={}",
                self.api_version
            ))),
            _ => None,
        }
    }

    fn probe_path(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(format!(
            "models?api-version={}",
            self.api_version
        )))
    }

    fn auth_headers(&self, key: &ApiKey) -> Result<HeaderMap, ConfigError> {
        key_header(HeaderName::from_static("api-key"), key.expose())
    }

    /// The caller's bytes with `model` set to the deployment (Azure
    /// ignores it; logs read it). A streamed answer passes through; a
    /// whole one is read, so a content-filtered 200 is recognised.
    fn translate_request(
        &self,
        operation: Operation,
        body: &[u8],
        model: &str,
    ) -> Result<UpstreamRequest, ProviderError> {
        if operation != Operation::ChatCompletions {
            return openai::rewrite_model(body, model).map(UpstreamRequest::pass_through);
        }
        let stream = serde_json::from_slice::<Flags>(body)
            .ok()
            .and_then(|flags| flags.stream)
            .unwrap_or(false);
        let body = openai::rewrite_model(body, model)?;
        Ok(if stream {
            UpstreamRequest::pass_through(body)
        } else {
            UpstreamRequest::whole(body)
        })
    }

    fn classify_hint(
        &self,
        status: StatusCode,
        _headers: &HeaderMap,
        body: &[u8],
    ) -> Option<Outcome> {
        (status.is_success() && is_filtered_completion(body))
            .then_some(Outcome::ClientError(ClientErrorKind::ContentFiltered))
    }
}

/// A completion the content filter stopped before it said anything: every
/// choice finished with `content_filter` and holds no text or tool call.
fn is_filtered_completion(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Completion {
        #[serde(default)]
        choices: Vec<Choice>,
    }
    #[derive(Deserialize)]
    struct Choice {
        finish_reason: Option<String>,
        #[serde(default)]
        message: Option<Message>,
    }
    #[derive(Deserialize)]
    struct Message {
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        tool_calls: Option<Vec<serde::de::IgnoredAny>>,
    }
    let Ok(completion) = serde_json::from_slice::<Completion>(body) else {
        return false;
    };
    !completion.choices.is_empty()
        && completion.choices.iter().all(|choice| {
            choice.finish_reason.as_deref() == Some("content_filter")
                && choice.message.as_ref().is_none_or(|message| {
                    message.content.as_deref().is_none_or(str::is_empty)
                        && message.tool_calls.as_ref().is_none_or(Vec::is_empty)
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::Reply;

    fn dialect() -> AzureDialect {
        AzureDialect::new("2024-10-21").unwrap()
    }

    #[test]
    fn the_key_travels_as_api_key_only() {
        let headers = dialect().auth_headers(&ApiKey::new("az-secret")).unwrap();
        assert_eq!(headers.len(), 1);
        let value = headers.get("api-key").unwrap();
        assert_eq!(value, "az-secret");
        assert!(value.is_sensitive());
        assert!(headers.get(http::header::AUTHORIZATION).is_none());
    }

    #[test]
    fn whole_answers_are_read_and_streams_pass_through() {
        let azure = dialect();
        let whole = azure
            .translate_request(
                Operation::ChatCompletions,
                br#"{"model":"chat","messages":[]}"#,
                "eu-gpt-4o",
            )
            .unwrap();
        assert_eq!(whole.reply, Reply::Whole);
        assert_eq!(whole.body, r#"{"model":"eu-gpt-4o","messages":[]}"#);
        let stream = azure
            .translate_request(
                Operation::ChatCompletions,
                br#"{"model":"chat","stream":true,"messages":[]}"#,
                "eu-gpt-4o",
            )
            .unwrap();
        assert_eq!(stream.reply, Reply::PassThrough);
        assert!(
            azure
                .translate_request(Operation::ChatCompletions, b"[]", "m")
                .is_err()
        );
    }

    #[test]
    fn a_filtered_completion_is_content_filtered() {
        let azure = dialect();
        let filtered = br#"{"choices":[{"index":0,"finish_reason":"content_filter","message":{"role":"assistant","content":null},"content_filter_results":{"hate":{"filtered":true,"severity":"high"}}}]}"#;
        assert_eq!(
            azure.classify_hint(StatusCode::OK, &HeaderMap::new(), filtered),
            Some(Outcome::ClientError(ClientErrorKind::ContentFiltered))
        );
        // Content the filter let through before it stopped is an answer.
        let partial = br#"{"choices":[{"index":0,"finish_reason":"content_filter","message":{"role":"assistant","content":"Once upon"}}]}"#;
        assert_eq!(
            azure.classify_hint(StatusCode::OK, &HeaderMap::new(), partial),
            None
        );
        let fine = br#"{"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"hi"}}]}"#;
        assert_eq!(
            azure.classify_hint(StatusCode::OK, &HeaderMap::new(), fine),
            None
        );
        // Errors are the classifier's.
        assert_eq!(
            azure.classify_hint(StatusCode::BAD_REQUEST, &HeaderMap::new(), filtered),
            None
        );
    }
}
