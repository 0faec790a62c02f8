//! The registry of built-in dialects: [`ProviderKind`].
//!
//! Registering a dialect is a variant, its name in
//! [`ProviderKind::as_str`], and one line in
//! [`ProviderKind::dialect_with`]; the dialect itself lives in its own
//! module.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

use super::{Dialect, Operation, anthropic, azure, bedrock, gemini, openai};
use crate::error::ConfigError;
use crate::key::AwsCredentials;

/// The dialects a configuration can name, by name.
///
/// `ProviderKind` is where a built-in dialect is registered: a variant, its
/// name in [`as_str`](Self::as_str), and one line in
/// [`dialect_with`](Self::dialect_with). Names parse with [`FromStr`] and
/// deserialize from a string (`kind = "anthropic"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI's chat-completions API, and every server compatible with it
    /// (vLLM, Ollama, Groq, Together, Mistral, `DeepSeek`, `OpenRouter`, …).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Azure OpenAI: OpenAI's wire format at a deployment's path, with an
    /// `api-version` ([`DialectOptions::api_version`], required).
    Azure,
    /// The Google AI Gemini API (`generateContent`), natively.
    Gemini,
    /// AWS Bedrock Runtime's Converse API, signed with `SigV4`
    /// ([`DialectOptions::region`] and [`DialectOptions::aws_credentials`],
    /// both required).
    Bedrock,
}

impl ProviderKind {
    /// Every kind, in the order their names are listed.
    pub const ALL: &'static [Self] = &[
        Self::OpenAi,
        Self::Anthropic,
        Self::Azure,
        Self::Gemini,
        Self::Bedrock,
    ];

    /// The name used in configuration: `openai`, `anthropic`, `azure`, ….
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Azure => "azure",
            Self::Gemini => "gemini",
            Self::Bedrock => "bedrock",
        }
    }

    /// This kind's dialect, with default options; an error for the kinds
    /// that require a setting (Azure's `api_version`).
    pub fn dialect(self) -> Result<Arc<dyn Dialect>, ConfigError> {
        self.dialect_with(&DialectOptions::default())
    }

    /// This kind's dialect, with `options` (each dialect reads the ones
    /// that concern it); an error names a setting the kind requires that
    /// is missing or invalid.
    pub fn dialect_with(self, options: &DialectOptions) -> Result<Arc<dyn Dialect>, ConfigError> {
        Ok(match self {
            Self::OpenAi => Arc::new(openai::OpenAiDialect::new()),
            Self::Anthropic => {
                Arc::new(anthropic::AnthropicDialect::new(options.max_tokens_default))
            }
            Self::Azure => Arc::new(azure::AzureDialect::new(required(
                options.api_version.as_deref(),
                "api_version",
                self,
            )?)?),
            Self::Gemini => Arc::new(gemini::GeminiDialect::new()),
            Self::Bedrock => Arc::new(bedrock::BedrockDialect::new(
                required(options.region.as_deref(), "region", self)?,
                options
                    .aws_credentials
                    .clone()
                    .ok_or_else(|| missing("aws_credentials", self))?,
            )?),
        })
    }
}

impl ProviderKind {
    /// Whether this kind cannot do without the provider setting `key`
    /// (`api_version`, `region`).
    pub fn requires(self, key: &str) -> bool {
        matches!(
            (self, key),
            (Self::Azure, "api_version") | (Self::Bedrock, "region")
        )
    }

    /// Whether this kind's providers serve `operation`: chat completions
    /// and Anthropic Messages always (Messages natively on Anthropic's
    /// API, converted to a chat completion elsewhere), embeddings on
    /// OpenAI's, Azure's and Gemini's APIs. What
    /// [`ProviderService::serves`](crate::ProviderService::serves) says
    /// of a built service of this kind, known before any is built (for
    /// checking a configuration).
    pub fn serves(self, operation: Operation) -> bool {
        match operation {
            Operation::ChatCompletions | Operation::Messages => true,
            Operation::Embeddings => {
                matches!(self, Self::OpenAi | Self::Azure | Self::Gemini)
            }
            _ => false,
        }
    }

    /// Whether this kind signs its requests with AWS credentials
    /// ([`DialectOptions::aws_credentials`]), which it then requires.
    pub fn uses_aws_credentials(self) -> bool {
        match self {
            Self::Bedrock => true,
            Self::OpenAi | Self::Anthropic | Self::Azure | Self::Gemini => false,
        }
    }

    /// The base URL of this kind's public API, where it follows from the
    /// other settings (Bedrock's, from the region); `None` when a base URL
    /// must be given.
    pub fn default_base_url(self, region: Option<&str>) -> Option<String> {
        match self {
            Self::Gemini => Some(gemini::GEMINI_BASE_URL.to_owned()),
            Self::Bedrock => region.map(bedrock::default_base_url),
            Self::OpenAi | Self::Anthropic | Self::Azure => None,
        }
    }
}

/// A setting `kind` cannot do without.
fn required<'a>(
    value: Option<&'a str>,
    setting: &'static str,
    kind: ProviderKind,
) -> Result<&'a str, ConfigError> {
    value.ok_or_else(|| missing(setting, kind))
}

/// The error for a setting `kind` cannot do without.
fn missing(setting: &'static str, kind: ProviderKind) -> ConfigError {
    ConfigError::InvalidSetting {
        setting,
        reason: format!("is required for kind = \"{kind}\""),
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider kind name that names no [`ProviderKind`].
#[derive(Debug, thiserror::Error)]
#[error("unknown provider kind `{0}`: expected {expected}", expected = expected_kinds())]
pub struct UnknownProviderKind(String);

/// "`openai` or `anthropic`".
fn expected_kinds() -> String {
    let names: Vec<String> = ProviderKind::ALL
        .iter()
        .map(|kind| format!("`{kind}`"))
        .collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

impl FromStr for ProviderKind {
    type Err = UnknownProviderKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownProviderKind(name.to_owned()))
    }
}

impl<'de> Deserialize<'de> for ProviderKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Options of the built-in dialects, for
/// [`ProviderKind::dialect_with`]; each dialect reads the ones that
/// concern it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DialectOptions {
    /// Anthropic (and the dialects that need one): `max_tokens` when the
    /// caller sets none. Default [`anthropic::DEFAULT_MAX_TOKENS`].
    pub max_tokens_default: u32,
    /// Azure: the `api-version` query every request carries (required).
    pub api_version: Option<String>,
    /// Bedrock: the AWS region (required).
    pub region: Option<String>,
    /// Bedrock: the credentials requests are signed with (required).
    pub aws_credentials: Option<AwsCredentials>,
}

impl Default for DialectOptions {
    fn default() -> Self {
        Self {
            max_tokens_default: anthropic::DEFAULT_MAX_TOKENS,
            api_version: None,
            region: None,
            aws_credentials: None,
        }
    }
}

impl DialectOptions {
    /// Sets [`max_tokens_default`](Self::max_tokens_default).
    pub fn max_tokens_default(mut self, tokens: u32) -> Self {
        self.max_tokens_default = tokens;
        self
    }

    /// Sets [`api_version`](Self::api_version).
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    /// Sets [`region`](Self::region).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets [`aws_credentials`](Self::aws_credentials).
    pub fn aws_credentials(mut self, credentials: AwsCredentials) -> Self {
        self.aws_credentials = Some(credentials);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        assert_eq!(
            "openai".parse::<ProviderKind>().ok(),
            Some(ProviderKind::OpenAi)
        );
        assert_eq!(ProviderKind::Anthropic.to_string(), "anthropic");
        let unknown = "azur".parse::<ProviderKind>().err().map(|e| e.to_string());
        assert!(unknown.as_deref().is_some_and(|e| {
            e.starts_with("unknown provider kind `azur`: expected `openai`, `anthropic`")
        }));
        let options = DialectOptions::default()
            .api_version("2024-10-21")
            .region("us-east-1")
            .aws_credentials(AwsCredentials::new("AKID", "secret", None));
        for kind in ProviderKind::ALL {
            assert_eq!(kind.as_str().parse::<ProviderKind>().ok(), Some(*kind));
            let dialect = kind.dialect_with(&options);
            assert_eq!(
                dialect.map(|d| d.name().to_owned()).ok().as_deref(),
                Some(kind.as_str())
            );
        }
    }

    #[test]
    fn kinds_deserialize_from_their_names() {
        let kind: Result<ProviderKind, _> = serde_json::from_str("\"anthropic\"");
        assert_eq!(kind.ok(), Some(ProviderKind::Anthropic));
        let unknown = serde_json::from_str::<ProviderKind>("\"azur\"");
        assert!(unknown.is_err_and(|e| e.to_string().contains("unknown provider kind `azur`")));
    }

    #[test]
    fn gemini_is_registered_with_its_public_base_url() {
        assert_eq!(
            "gemini".parse::<ProviderKind>().ok(),
            Some(ProviderKind::Gemini)
        );
        assert_eq!(ProviderKind::Gemini.to_string(), "gemini");
        assert!(ProviderKind::ALL.contains(&ProviderKind::Gemini));
        assert!(!ProviderKind::Gemini.requires("api_version"));
        assert!(!ProviderKind::Gemini.requires("region"));
        assert_eq!(
            ProviderKind::Gemini.default_base_url(None).as_deref(),
            Some("https://generativelanguage.googleapis.com/v1beta")
        );
        assert_eq!(ProviderKind::OpenAi.default_base_url(None), None);
        let dialect = ProviderKind::Gemini.dialect().ok();
        assert_eq!(dialect.as_ref().map(|d| d.name()), Some("gemini"));
        let unknown = "gemeni"
            .parse::<ProviderKind>()
            .err()
            .map(|e| e.to_string());
        assert!(unknown.is_some_and(|e| e.ends_with("`azure`, `gemini` or `bedrock`")));
    }

    #[test]
    fn what_a_kind_serves_is_what_its_dialect_has_endpoints_for() {
        let options = DialectOptions::default()
            .api_version("2024-10-21")
            .region("us-east-1")
            .aws_credentials(AwsCredentials::new("AKID", "secret", None));
        for kind in ProviderKind::ALL {
            let Ok(dialect) = kind.dialect_with(&options) else {
                panic!("{kind} builds");
            };
            for operation in Operation::ALL {
                let native = dialect.endpoint(operation, "m", false).is_some();
                let converted = operation == Operation::Messages;
                assert_eq!(
                    kind.serves(operation),
                    native || converted,
                    "{kind} {operation}"
                );
            }
        }
    }

    #[test]
    fn a_kind_names_the_setting_it_requires() {
        let error = ProviderKind::Azure.dialect().err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("api_version: is required for kind = \"azure\"")
        );
        let bedrock = |options: &DialectOptions| {
            ProviderKind::Bedrock
                .dialect_with(options)
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            bedrock(&DialectOptions::default()).as_deref(),
            Some("region: is required for kind = \"bedrock\"")
        );
        assert_eq!(
            bedrock(&DialectOptions::default().region("us-east-1")).as_deref(),
            Some("aws_credentials: is required for kind = \"bedrock\"")
        );
        let credentials = AwsCredentials::new("AKID", "secret", None);
        assert!(
            bedrock(
                &DialectOptions::default()
                    .region("us-east-1/../x")
                    .aws_credentials(credentials)
            )
            .is_some_and(|e| e.starts_with("region:"))
        );
        assert!(ProviderKind::Bedrock.requires("region"));
        assert!(!ProviderKind::Bedrock.requires("api_version"));
        assert!(ProviderKind::Bedrock.uses_aws_credentials());
        assert!(!ProviderKind::Gemini.uses_aws_credentials());
    }

    #[test]
    fn bedrock_has_a_base_url_per_region() {
        assert_eq!(ProviderKind::Bedrock.as_str(), "bedrock");
        assert_eq!(
            ProviderKind::Bedrock
                .default_base_url(Some("eu-west-3"))
                .as_deref(),
            Some("https://bedrock-runtime.eu-west-3.amazonaws.com")
        );
        assert_eq!(ProviderKind::Bedrock.default_base_url(None), None);
        assert_eq!(
            ProviderKind::OpenAi.default_base_url(Some("eu-west-3")),
            None
        );
    }
}
