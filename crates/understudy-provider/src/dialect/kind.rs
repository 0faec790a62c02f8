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

use super::{Dialect, anthropic, openai};

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
}

impl ProviderKind {
    /// Every kind, in the order their names are listed.
    pub const ALL: &'static [Self] = &[Self::OpenAi, Self::Anthropic];

    /// The name used in configuration: `openai` or `anthropic`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    /// This kind's dialect, with default options.
    pub fn dialect(self) -> Arc<dyn Dialect> {
        self.dialect_with(&DialectOptions::default())
    }

    /// This kind's dialect, with `options` (each dialect reads the ones
    /// that concern it).
    pub fn dialect_with(self, options: &DialectOptions) -> Arc<dyn Dialect> {
        match self {
            Self::OpenAi => Arc::new(openai::OpenAiDialect::new()),
            Self::Anthropic => {
                Arc::new(anthropic::AnthropicDialect::new(options.max_tokens_default))
            }
        }
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
    /// Anthropic: `max_tokens` when the caller sets none (Anthropic
    /// requires one). Default [`anthropic::DEFAULT_MAX_TOKENS`].
    pub max_tokens_default: u32,
}

impl Default for DialectOptions {
    fn default() -> Self {
        Self {
            max_tokens_default: anthropic::DEFAULT_MAX_TOKENS,
        }
    }
}

impl DialectOptions {
    /// Sets [`max_tokens_default`](Self::max_tokens_default).
    pub fn max_tokens_default(mut self, tokens: u32) -> Self {
        self.max_tokens_default = tokens;
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
        let unknown = "azure".parse::<ProviderKind>().err().map(|e| e.to_string());
        assert_eq!(
            unknown.as_deref(),
            Some("unknown provider kind `azure`: expected `openai` or `anthropic`")
        );
        for kind in ProviderKind::ALL {
            assert_eq!(kind.as_str().parse::<ProviderKind>().ok(), Some(*kind));
            assert_eq!(kind.dialect().name(), kind.as_str());
        }
    }

    #[test]
    fn kinds_deserialize_from_their_names() {
        let kind: Result<ProviderKind, _> = serde_json::from_str("\"anthropic\"");
        assert_eq!(kind.ok(), Some(ProviderKind::Anthropic));
        let unknown = serde_json::from_str::<ProviderKind>("\"azure\"");
        assert!(unknown.is_err_and(|e| e.to_string().contains("unknown provider kind `azure`")));
    }
}
