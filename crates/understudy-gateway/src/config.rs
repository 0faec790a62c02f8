//! The gateway's TOML configuration: schema, defaults and validation.
//!
//! The schema is a contract: unknown keys are errors (a typo must not
//! silently disable a fallback), every duration has a default, a provider a
//! route names must exist, and an `api_key_env` that is unset is an error at
//! start that names the variable, never its value.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// A validated configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[[providers]]`.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// `[[routes]]`.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// `[retry]`, applied to every target.
    #[serde(default)]
    pub retry: RetryConfig,
    /// `[health]`, applied to every provider.
    #[serde(default)]
    pub health: HealthConfig,
    /// `[alerts]`.
    #[serde(default)]
    pub alerts: Option<AlertsConfig>,
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Request bodies above this many bytes get a 413.
    pub max_body_bytes: usize,
    /// Deadline for a whole caller request, all attempts included.
    pub request_timeout_ms: u64,
    /// How long in-flight requests may take to finish at shutdown.
    pub drain_timeout_ms: u64,
    /// A request head must arrive in full within this long of its first
    /// byte; slower connections are closed.
    pub header_read_timeout_ms: u64,
    /// A request body must arrive in full within this long (and within the
    /// request deadline); slower bodies get a 408.
    pub body_read_timeout_ms: u64,
    /// An idle keep-alive connection (no request in flight, no new one
    /// arriving) is closed after this long.
    pub keep_alive_timeout_ms: u64,
    /// Connections served at once; a connection beyond it gets a 503 and is
    /// closed. Keep it below the process's open-file limit.
    pub max_connections: usize,
    /// Requests in flight at once (streams count until they end); more get
    /// a 503 `overloaded` with `Retry-After: 1`.
    pub max_concurrent_requests: usize,
    /// `provider/model` in `model` addresses any model of any provider
    /// directly, without fallback. Off by default: then only the models a
    /// provider lists in `direct_models` can be addressed so.
    pub direct_addressing: bool,
    /// How many directly addressed `provider/model` stacks are kept; the
    /// least recently used one is dropped beyond it.
    pub direct_cache_size: usize,
    /// The longest SSE line, and the most data of one event, read from a
    /// provider's stream; more is a provider failure.
    pub max_event_bytes: usize,
    /// Origins browsers may call the gateway from (`"*"` for any); empty
    /// (the default) sends no CORS headers.
    pub cors_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 10 * 1024 * 1024,
            request_timeout_ms: 120_000,
            drain_timeout_ms: 30_000,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            keep_alive_timeout_ms: 60_000,
            max_connections: 1024,
            max_concurrent_requests: 512,
            direct_addressing: false,
            direct_cache_size: 64,
            max_event_bytes: 1024 * 1024,
            cors_origins: Vec::new(),
        }
    }
}

/// The wire format a provider speaks (`kind = "openai"`, `"anthropic"`):
/// the provider crate's registry of dialects, parsed by its names.
pub use understudy_provider::ProviderKind;

/// One `[[providers]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name, used in logs, metrics and headers.
    pub name: String,
    /// The wire format.
    pub kind: ProviderKind,
    /// Base URL, such as `https://api.openai.com/v1`.
    pub base_url: String,
    /// The environment variable holding the API key; none for keyless local
    /// servers.
    pub api_key_env: Option<String>,
    /// TCP (and TLS) connect timeout.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Per attempt, until the response head.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Per attempt, for streams: until the first content chunk.
    #[serde(default = "defaults::first_chunk_timeout_ms")]
    pub first_chunk_timeout_ms: u64,
    /// Anthropic only: `max_tokens` when the caller gives none.
    #[serde(default = "defaults::max_tokens_default")]
    pub max_tokens_default: u32,
    /// Models callers may address directly as `name/model`, even when
    /// `server.direct_addressing` is off.
    #[serde(default)]
    pub direct_models: Vec<String>,
    /// Pass the provider's rate-limit headers (`x-ratelimit-*`,
    /// `retry-after`) on to callers.
    #[serde(default)]
    pub pass_rate_limit_headers: bool,
}

/// One `[[routes]]` entry: a model name callers use, and its targets in order.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// What callers put in `model`.
    pub model: String,
    /// The targets, primary first.
    pub targets: Vec<TargetConfig>,
    /// Which outcomes move on to the next target.
    #[serde(default = "defaults::fallback_on")]
    pub fallback_on: Vec<FallbackOn>,
}

/// One target of a route.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A provider's `name`.
    pub provider: String,
    /// The model asked of that provider.
    pub model: String,
}

/// An outcome class that may fail over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackOn {
    /// Every provider failure (connect, timeout, 429, 5xx, broken stream).
    ProviderFailure,
    /// Context length exceeded: typically to a larger-context target.
    ContextLength,
    /// Content filtered: typically to another vendor.
    ContentFilter,
}

/// `[retry]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries per target after the first try.
    pub max_retries: u32,
    /// Backoff base.
    pub base_delay_ms: u64,
    /// Backoff cap.
    pub max_delay_ms: u64,
    /// A longer `Retry-After` fails over instead of waiting.
    pub max_retry_after_ms: u64,
    /// Retries may be at most this share of a provider's recent requests
    /// (one budget per provider, whatever routes use it).
    pub budget_ratio: f64,
    /// The budget's floor: retries a second a provider may take whatever
    /// its traffic.
    pub budget_min_per_sec: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 1,
            base_delay_ms: 100,
            max_delay_ms: 2000,
            max_retry_after_ms: 3000,
            budget_ratio: 0.2,
            budget_min_per_sec: 10,
        }
    }
}

/// `[health]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Consecutive provider failures that eject.
    pub consecutive_failures: u32,
    /// Failure ratio over the window that ejects.
    pub failure_ratio: f64,
    /// Requests in the window before the ratio counts.
    pub min_requests: u32,
    /// The sliding window.
    pub window_secs: u64,
    /// First ejection time; grows with repeated ejections.
    pub base_ejection_secs: u64,
    /// Cap on the ejection time.
    pub max_ejection_secs: u64,
    /// Active probe interval while ejected (`GET {base_url}/models`); 0 turns
    /// active probing off.
    pub probe_interval_secs: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            min_requests: 20,
            window_secs: 30,
            base_ejection_secs: 30,
            max_ejection_secs: 300,
            probe_interval_secs: 10,
        }
    }
}

/// `[alerts]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Where to POST alerts (Slack-compatible JSON). May hold a secret token.
    pub webhook_url: Option<String>,
    /// Minimum interval between two alerts of one kind for one provider.
    #[serde(default = "defaults::alert_min_interval_secs")]
    pub min_interval_secs: u64,
}

impl fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The webhook URL often carries a token: never print it.
        f.debug_struct("AlertsConfig")
            .field("webhook_url", &self.webhook_url.as_ref().map(|_| "***"))
            .field("min_interval_secs", &self.min_interval_secs)
            .finish()
    }
}

mod defaults {
    use super::FallbackOn;

    pub(super) const fn connect_timeout_ms() -> u64 {
        2000
    }
    pub(super) const fn timeout_ms() -> u64 {
        30_000
    }
    pub(super) const fn first_chunk_timeout_ms() -> u64 {
        15_000
    }
    pub(super) const fn max_tokens_default() -> u32 {
        4096
    }
    pub(super) fn fallback_on() -> Vec<FallbackOn> {
        vec![FallbackOn::ProviderFailure]
    }
    pub(super) const fn alert_min_interval_secs() -> u64 {
        300
    }
}

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, or a value of the wrong type.
    #[error("{0}")]
    Parse(String),
    /// A value is out of range or inconsistent.
    #[error("`{key}`: {message}")]
    Invalid {
        /// The key, as a path (`providers[1].base_url`).
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The longest duration any setting may take: one day. Longer values are
/// typos, and durations added to the clock must not overflow.
pub const MAX_DURATION_MS: u64 = 24 * 60 * 60 * 1000;

/// The most retries per target.
pub const MAX_RETRIES: u32 = 10;

/// The longest `model` a caller may send, in bytes.
pub const MAX_MODEL_BYTES: usize = 256;

/// Checks a model name a caller may send or a config may list: at most
/// [`MAX_MODEL_BYTES`], printable ASCII without spaces or quotes.
pub fn check_model_name(model: &str) -> Result<(), String> {
    if model.is_empty() {
        return Err("must be non-empty".to_owned());
    }
    if model.len() > MAX_MODEL_BYTES {
        return Err(format!("is longer than {MAX_MODEL_BYTES} bytes"));
    }
    if !model
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'\''))
    {
        return Err("may hold only printable ASCII without spaces or quotes".to_owned());
    }
    Ok(())
}

fn positive_duration_ms(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be greater than 0"));
    }
    at_most(key, value, MAX_DURATION_MS)
}

fn at_most(key: &str, value: u64, max: u64) -> Result<(), ConfigError> {
    if value > max {
        return Err(invalid(
            key,
            format!("({value}) must be at most {max} (one day)"),
        ));
    }
    Ok(())
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// A TOML error as `line L, column C: message`, without the source line
/// the parser's own `Display` quotes: a pasted key must not be echoed.
fn parse_error(text: &str, error: &toml::de::Error) -> String {
    let message = redact_quoted(error.message().trim_end_matches('\n'));
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count().saturating_add(1);
            let column = before
                .rsplit('\n')
                .next()
                .map_or(0, |l| l.chars().count())
                .saturating_add(1);
            format!("TOML error at line {line}, column {column}: {message}")
        }
        None => format!("TOML error: {message}"),
    }
}

/// Replaces every double-quoted string in a parser message (a value the
/// file holds, which may be a pasted secret) with `"…"`; key and variant
/// names, quoted in backticks, stay.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    let mut inside = true;
    for part in parts {
        if inside {
            out.push_str("\"…");
        } else {
            out.push('"');
            out.push_str(part);
        }
        inside = !inside;
    }
    out
}

// ===== impl Config =====

impl Config {
    /// Reads and validates a file. API key variables are checked with
    /// [`Config::api_keys`] at start.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self =
            toml::from_str(text).map_err(|e| ConfigError::Parse(parse_error(text, &e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every rule a TOML parse cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        if server.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes", "must be greater than 0"));
        }
        for (field, value) in [
            ("request_timeout_ms", server.request_timeout_ms),
            ("drain_timeout_ms", server.drain_timeout_ms),
            ("header_read_timeout_ms", server.header_read_timeout_ms),
            ("body_read_timeout_ms", server.body_read_timeout_ms),
            ("keep_alive_timeout_ms", server.keep_alive_timeout_ms),
        ] {
            positive_duration_ms(&format!("server.{field}"), value)?;
        }
        for (field, value) in [
            ("max_connections", server.max_connections),
            ("max_concurrent_requests", server.max_concurrent_requests),
            ("direct_cache_size", server.direct_cache_size),
            ("max_event_bytes", server.max_event_bytes),
        ] {
            if value == 0 {
                return Err(invalid(format!("server.{field}"), "must be greater than 0"));
            }
        }
        for (i, origin) in server.cors_origins.iter().enumerate() {
            let valid = origin == "*"
                || (origin.parse::<http::Uri>().is_ok_and(|uri| {
                    matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.host().is_some()
                        && uri.path() == "/"
                        && !origin.ends_with('/')
                }) && http::HeaderValue::from_str(origin).is_ok());
            if !valid {
                return Err(invalid(
                    format!("server.cors_origins[{i}]"),
                    "must be \"*\" or an origin such as \"https://app.example.com\" (scheme and host, no path)",
                ));
            }
        }
        if self.providers.is_empty() {
            return Err(invalid("providers", "at least one provider is required"));
        }
        let mut names = HashSet::new();
        for (i, provider) in self.providers.iter().enumerate() {
            let key = |field: &str| format!("providers[{i}].{field}");
            if provider.name.is_empty() || provider.name.contains('/') {
                return Err(invalid(key("name"), "must be non-empty and hold no `/`"));
            }
            if !names.insert(provider.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("`{}` is used by another provider", provider.name),
                ));
            }
            match provider.base_url.parse::<http::Uri>() {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.host().is_some() => {}
                _ => {
                    return Err(invalid(
                        key("base_url"),
                        // Never echo the URL: it may carry a credential.
                        "is not an http:// or https:// URL",
                    ));
                }
            }
            if provider.base_url.contains(['?', '#']) {
                return Err(invalid(
                    key("base_url"),
                    "must hold no query or fragment: the endpoint path is appended to it",
                ));
            }
            for (field, value) in [
                ("connect_timeout_ms", provider.connect_timeout_ms),
                ("timeout_ms", provider.timeout_ms),
                ("first_chunk_timeout_ms", provider.first_chunk_timeout_ms),
            ] {
                positive_duration_ms(&key(field), value)?;
            }
            for (j, model) in provider.direct_models.iter().enumerate() {
                if let Err(reason) = check_model_name(model) {
                    return Err(invalid(
                        format!("providers[{i}].direct_models[{j}]"),
                        reason,
                    ));
                }
            }
            if provider.max_tokens_default == 0 {
                return Err(invalid(key("max_tokens_default"), "must be greater than 0"));
            }
        }
        if self.routes.is_empty() {
            return Err(invalid("routes", "at least one route is required"));
        }
        let mut models = HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            if route.model.is_empty() || route.model.contains('/') {
                return Err(invalid(
                    format!("routes[{i}].model"),
                    "must be non-empty and hold no `/` (`provider/model` addresses one provider directly)",
                ));
            }
            if !models.insert(route.model.as_str()) {
                return Err(invalid(
                    format!("routes[{i}].model"),
                    format!("`{}` is used by another route", route.model),
                ));
            }
            if route.targets.is_empty() {
                return Err(invalid(
                    format!("routes[{i}].targets"),
                    "at least one target is required",
                ));
            }
            for (j, target) in route.targets.iter().enumerate() {
                if !names.contains(target.provider.as_str()) {
                    return Err(invalid(
                        format!("routes[{i}].targets[{j}].provider"),
                        format!("no provider is named `{}`", target.provider),
                    ));
                }
                if target.model.is_empty() {
                    return Err(invalid(
                        format!("routes[{i}].targets[{j}].model"),
                        "must be non-empty",
                    ));
                }
            }
        }
        let retry = &self.retry;
        for (field, value) in [
            ("base_delay_ms", retry.base_delay_ms),
            ("max_delay_ms", retry.max_delay_ms),
            ("max_retry_after_ms", retry.max_retry_after_ms),
        ] {
            at_most(&format!("retry.{field}"), value, MAX_DURATION_MS)?;
        }
        if retry.max_retries > MAX_RETRIES {
            return Err(invalid(
                "retry.max_retries",
                format!("({}) must be at most {MAX_RETRIES}", retry.max_retries),
            ));
        }
        if retry.base_delay_ms > retry.max_delay_ms {
            return Err(invalid(
                "retry.base_delay_ms",
                format!(
                    "({}) must not exceed retry.max_delay_ms ({})",
                    retry.base_delay_ms, retry.max_delay_ms
                ),
            ));
        }
        if !(retry.budget_ratio.is_finite() && (0.0..=1.0).contains(&retry.budget_ratio)) {
            return Err(invalid(
                "retry.budget_ratio",
                format!("({}) must be in the range [0.0, 1.0]", retry.budget_ratio),
            ));
        }
        let health = &self.health;
        for (field, value) in [
            ("window_secs", health.window_secs),
            ("base_ejection_secs", health.base_ejection_secs),
            ("max_ejection_secs", health.max_ejection_secs),
            ("probe_interval_secs", health.probe_interval_secs),
        ] {
            at_most(&format!("health.{field}"), value, MAX_DURATION_MS / 1000)?;
        }
        if health.consecutive_failures == 0 {
            return Err(invalid(
                "health.consecutive_failures",
                "must be greater than 0",
            ));
        }
        if !(health.failure_ratio.is_finite()
            && health.failure_ratio > 0.0
            && health.failure_ratio <= 1.0)
        {
            return Err(invalid(
                "health.failure_ratio",
                format!("({}) must be in the range (0.0, 1.0]", health.failure_ratio),
            ));
        }
        if health.window_secs == 0 {
            return Err(invalid("health.window_secs", "must be greater than 0"));
        }
        if health.base_ejection_secs == 0 {
            return Err(invalid(
                "health.base_ejection_secs",
                "must be greater than 0",
            ));
        }
        if health.base_ejection_secs > health.max_ejection_secs {
            return Err(invalid(
                "health.base_ejection_secs",
                format!(
                    "({}) must not exceed health.max_ejection_secs ({})",
                    health.base_ejection_secs, health.max_ejection_secs
                ),
            ));
        }
        if let Some(alerts) = &self.alerts {
            at_most(
                "alerts.min_interval_secs",
                alerts.min_interval_secs,
                MAX_DURATION_MS / 1000,
            )?;
        }
        if let Some(AlertsConfig {
            webhook_url: Some(url),
            ..
        }) = &self.alerts
        {
            match url.parse::<http::Uri>() {
                Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) => {}
                // Never echo the URL: it may hold a token.
                _ => {
                    return Err(invalid(
                        "alerts.webhook_url",
                        "is not an http:// or https:// URL",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads each provider's API key from its `api_key_env` variable, through
    /// `lookup` (`std::env::var` in the binary). An unset or empty variable
    /// is an error naming the variable, never a value.
    pub fn api_keys(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<Option<String>>, ConfigError> {
        self.providers
            .iter()
            .enumerate()
            .map(|(i, provider)| match &provider.api_key_env {
                None => Ok(None),
                Some(var) => match lookup(var) {
                    Some(key) if !key.is_empty() => Ok(Some(key)),
                    _ => Err(invalid(
                        format!("providers[{i}].api_key_env"),
                        format!("the environment variable `{var}` is not set"),
                    )),
                },
            })
            .collect()
    }

    /// The provider with this name.
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8080"
max_body_bytes = 10485760
request_timeout_ms = 120000

[[providers]]
name = "openai"
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
connect_timeout_ms = 2000
timeout_ms = 30000
first_chunk_timeout_ms = 15000

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "https://api.anthropic.com/v1"
api_key_env = "ANTHROPIC_API_KEY"
max_tokens_default = 4096

[[routes]]
model = "chat"
targets = [
  { provider = "openai", model = "gpt-4o-mini" },
  { provider = "anthropic", model = "claude-3-5-haiku-latest" },
]
fallback_on = ["provider_failure"]

[retry]
max_retries = 1
base_delay_ms = 100
max_delay_ms = 2000
max_retry_after_ms = 3000
budget_ratio = 0.2

[health]
consecutive_failures = 5
failure_ratio = 0.5
min_requests = 20
window_secs = 30
base_ejection_secs = 30
max_ejection_secs = 300
probe_interval_secs = 10

[alerts]
webhook_url = "https://hooks.example.com/T000/B000/secret-token"
min_interval_secs = 300
"#;

    fn error_of(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn the_documented_example_parses() {
        let config = Config::from_toml(EXAMPLE).unwrap();
        assert_eq!(config.providers.len(), 2);
        assert_eq!(config.providers[1].kind, ProviderKind::Anthropic);
        assert_eq!(config.providers[1].timeout_ms, 30_000, "default");
        assert_eq!(config.routes[0].targets[1].model, "claude-3-5-haiku-latest");
        assert_eq!(config.routes[0].fallback_on, [FallbackOn::ProviderFailure]);
        assert!(!format!("{config:?}").contains("secret-token"));
    }

    #[test]
    fn a_minimal_file_gets_defaults() {
        let config = Config::from_toml(
            r#"
[[providers]]
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:11434/v1"

[[routes]]
model = "chat"
targets = [{ provider = "local", model = "llama3" }]
"#,
        )
        .unwrap();
        assert_eq!(config.server.request_timeout_ms, 120_000);
        assert_eq!(config.retry.max_retries, 1);
        assert_eq!(config.health.consecutive_failures, 5);
        assert_eq!(config.providers[0].first_chunk_timeout_ms, 15_000);
        assert!(config.alerts.is_none());
        assert_eq!(config.api_keys(|_| None).unwrap(), [None]);
    }

    #[test]
    fn an_unknown_kind_is_an_error_naming_the_known_ones() {
        let message = error_of(&EXAMPLE.replace(r#"kind = "anthropic""#, r#"kind = "azure""#));
        assert!(
            message.contains("unknown provider kind `azure`: expected `openai` or `anthropic`"),
            "{message}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let typo = EXAMPLE.replace("fallback_on =", "fallbak_on =");
        let message = error_of(&typo);
        assert!(message.contains("fallbak_on"), "{message}");

        let typo = EXAMPLE.replace("[health]\n", "[health]\nconsecutive_failure = 3\n");
        assert!(error_of(&typo).contains("consecutive_failure"));

        let unknown_class = EXAMPLE.replace("[\"provider_failure\"]", "[\"timeouts\"]");
        assert!(error_of(&unknown_class).contains("timeouts"));
    }

    #[test]
    fn a_route_must_name_an_existing_provider() {
        let missing = EXAMPLE.replace("{ provider = \"anthropic\"", "{ provider = \"antropic\"");
        assert_eq!(
            error_of(&missing),
            "`routes[0].targets[1].provider`: no provider is named `antropic`"
        );
    }

    #[test]
    fn values_out_of_range_name_the_key_and_value() {
        let cases = [
            (
                "failure_ratio = 0.5",
                "failure_ratio = 1.5",
                "`health.failure_ratio`: (1.5)",
            ),
            (
                "budget_ratio = 0.2",
                "budget_ratio = -1.0",
                "`retry.budget_ratio`: (-1)",
            ),
            (
                "base_url = \"https://api.openai.com/v1\"",
                "base_url = \"api.openai.com\"",
                "`providers[0].base_url`",
            ),
            (
                "timeout_ms = 30000",
                "timeout_ms = 0",
                "`providers[0].timeout_ms`",
            ),
            (
                "name = \"anthropic\"",
                "name = \"openai\"",
                "`providers[1].name`",
            ),
        ];
        for (from, to, want) in cases {
            let message = error_of(&EXAMPLE.replace(from, to));
            assert!(message.starts_with(want), "{to}: {message}");
        }
    }

    #[test]
    fn an_unset_key_variable_is_named_without_any_value() {
        let config = Config::from_toml(EXAMPLE).unwrap();
        let error = config
            .api_keys(|var| (var == "OPENAI_API_KEY").then(|| "sk-live-value".to_owned()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "`providers[1].api_key_env`: the environment variable `ANTHROPIC_API_KEY` is not set"
        );
        let keys = config
            .api_keys(|_| Some("sk-live-value".to_owned()))
            .unwrap();
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn a_bad_webhook_url_is_not_echoed() {
        let bad = EXAMPLE.replace(
            "https://hooks.example.com/T000/B000/secret-token",
            "hooks-secret-token",
        );
        let message = error_of(&bad);
        assert!(message.starts_with("`alerts.webhook_url`"));
        assert!(!message.contains("secret-token"));
    }
}
