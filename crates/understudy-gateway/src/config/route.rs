//! `[[routes]]`: the model names callers use, each with its targets in
//! order and the outcomes that fail over; and the rules for model names.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use understudy_fallback::FallbackRules;
use understudy_provider::ProviderConfig;
use understudy_retry::{RetryConfig, RetryOverrides};

use super::error::{ConfigError, invalid, setting};
use super::positive_duration_ms;
use super::provider::ProviderEntry;

/// One `[[routes]]` entry: a model name callers use, and its targets in order.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// What callers put in `model`.
    pub model: String,
    /// The targets, primary first.
    pub targets: Vec<TargetConfig>,
    /// Which outcomes move on to the next target: `fallback_on`, a list of
    /// [`FallbackOn`](understudy_fallback::FallbackOn) kinds
    /// (`provider_failure`, `context_length`, `content_filter`); by default
    /// every provider failure.
    #[serde(default)]
    pub fallback_on: FallbackRules,
    /// `timeout_ms`: each attempt's timeout (until the response head) on
    /// this route, in place of each target's provider's.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// `first_chunk_timeout_ms`: how long a streamed attempt on this route
    /// may take to its first content, in place of each provider's.
    #[serde(default)]
    pub first_chunk_timeout_ms: Option<u64>,
    /// `[routes.retry]`: retry settings replacing the global `[retry]`'s
    /// for this route's targets (the retry budget stays per provider).
    #[serde(default)]
    pub retry: RetryOverrides,
}

impl RouteConfig {
    /// The retry settings of this route's targets: its own over `global`.
    /// A configuration that validated has no out-of-range combination;
    /// should one appear, `global` is kept.
    pub fn effective_retry(&self, global: RetryConfig) -> RetryConfig {
        self.retry.apply(global).unwrap_or(global)
    }

    /// Each attempt's timeout at `provider` on this route.
    pub fn attempt_timeout(&self, provider: &ProviderConfig) -> Duration {
        self.timeout_ms
            .map_or(provider.timeout, Duration::from_millis)
    }

    /// The first-chunk timeout at `provider` on this route.
    pub fn first_chunk_timeout(&self, provider: &ProviderConfig) -> Duration {
        self.first_chunk_timeout_ms
            .map_or(provider.first_chunk_timeout, Duration::from_millis)
    }
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

/// Checks the routes: at least one, unique model names without `/`,
/// targets that name existing providers, and settings in range (a route's
/// retry settings over the global `retry`).
pub(super) fn check(
    routes: &[RouteConfig],
    providers: &[ProviderEntry],
    retry: RetryConfig,
) -> Result<(), ConfigError> {
    if routes.is_empty() {
        return Err(invalid("routes", "at least one route is required"));
    }
    let names: HashSet<&str> = providers.iter().map(|p| p.provider.name.as_str()).collect();
    let mut models = HashSet::new();
    for (i, route) in routes.iter().enumerate() {
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
        for (key, value) in [
            ("timeout_ms", route.timeout_ms),
            ("first_chunk_timeout_ms", route.first_chunk_timeout_ms),
        ] {
            if let Some(value) = value {
                positive_duration_ms(&format!("routes[{i}].{key}"), value)?;
            }
        }
        route
            .retry
            .apply(retry)
            .map_err(|error| setting(&format!("routes[{i}].retry"), &error))?;
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
    Ok(())
}
