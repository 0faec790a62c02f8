//! `[[routes]]`: the model names callers use, each with its targets in
//! order (single targets or balanced tiers) and the outcomes that fail
//! over; and the rules for model names.

use std::collections::HashSet;
use std::fmt;
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
    /// The targets, primary first: each a single target or a balanced tier.
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
    /// `resume`: continue a stream that breaks after its commit on the
    /// next available target (see `docs/fallback.md`); off by default.
    #[serde(default)]
    pub resume: bool,
    /// `max_resume_bytes`: no resume once more content than this was sent;
    /// 1 MiB by default.
    #[serde(default)]
    pub max_resume_bytes: Option<usize>,
    /// `hedge_after_ms`: start the next target beside an attempt that has
    /// not committed within this long; off by default.
    #[serde(default)]
    pub hedge_after_ms: Option<u64>,
    /// `max_hedges`: hedges per request, 1 by default (at most 4).
    #[serde(default)]
    pub max_hedges: Option<usize>,
    /// `hedge_budget_ratio`: hedges per request over time, 0 to 1; 0.1 by
    /// default.
    #[serde(default)]
    pub hedge_budget_ratio: Option<f64>,
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

    /// The hedging of this route, if it hedges: the delay, hedges per
    /// request and the budget ratio.
    pub fn effective_hedge(&self) -> Option<(Duration, usize, f64)> {
        self.hedge_after_ms.map(|ms| {
            (
                Duration::from_millis(ms),
                self.max_hedges.unwrap_or(1),
                self.hedge_budget_ratio.unwrap_or(0.1),
            )
        })
    }

    /// The most content a stream may have sent and be resumed.
    pub fn effective_max_resume_bytes(&self) -> usize {
        self.max_resume_bytes
            .unwrap_or(understudy_fallback::resume::DEFAULT_MAX_RESUME_BYTES)
    }

    /// The first-chunk timeout at `provider` on this route.
    pub fn first_chunk_timeout(&self, provider: &ProviderConfig) -> Duration {
        self.first_chunk_timeout_ms
            .map_or(provider.first_chunk_timeout, Duration::from_millis)
    }
}

/// The largest `max_resume_bytes`: 64 MiB.
pub(crate) const MAX_RESUME_BYTES: usize = 64 * 1024 * 1024;

/// One entry of a route's `targets`: a single target (`provider` and
/// `model`) or a balanced tier of deployments of the same model
/// (`balance`), never both; checked when the file is read.
///
/// ```toml
/// targets = [
///   { balance = [{ provider = "east", model = "gpt-4o", weight = 2 }, { provider = "west", model = "gpt-4o" }] },
///   { provider = "anthropic", model = "claude-sonnet-4" },
/// ]
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A provider's `name`, for a single target.
    #[serde(default)]
    pub provider: Option<String>,
    /// The model asked of that provider, for a single target.
    #[serde(default)]
    pub model: Option<String>,
    /// The deployments of a balanced tier, which share the traffic
    /// reaching it; the next target is tried only once all have failed or
    /// are ejected.
    #[serde(default)]
    pub balance: Option<Vec<DeploymentConfig>>,
}

/// One deployment of a balanced tier.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// A provider's `name`; at most once per tier.
    pub provider: String,
    /// The model asked of that provider.
    pub model: String,
    /// Its share of the tier's traffic, relative to the others' (1 to
    /// [`MAX_WEIGHT`]; 1 by default).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// The largest weight of a deployment.
pub const MAX_WEIGHT: u32 = 1000;

const fn default_weight() -> u32 {
    1
}

impl TargetConfig {
    /// Is this a balanced tier?
    pub const fn is_balanced(&self) -> bool {
        self.balance.is_some()
    }

    /// Its deployments as `(provider, model, weight)`: the single target
    /// (weight 1), or the tier's deployments in order.
    pub fn deployments(&self) -> impl Iterator<Item = (&str, &str, u32)> + Clone {
        let single = match (&self.provider, &self.model, &self.balance) {
            (Some(provider), Some(model), None) => Some((provider.as_str(), model.as_str(), 1)),
            _ => None,
        };
        single.into_iter().chain(
            self.balance
                .iter()
                .flatten()
                .map(|d| (d.provider.as_str(), d.model.as_str(), d.weight)),
        )
    }
}

/// `provider/model`, or `balance(east/gpt-4o×2, west/gpt-4o×1)`.
impl fmt::Display for TargetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_balanced()
            && let Some((provider, model, _)) = self.deployments().next()
        {
            return write!(f, "{provider}/{model}");
        }
        f.write_str("balance(")?;
        for (i, (provider, model, weight)) in self.deployments().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{provider}/{model}×{weight}")?;
        }
        f.write_str(")")
    }
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
        if let Some(ms) = route.hedge_after_ms {
            positive_duration_ms(&format!("routes[{i}].hedge_after_ms"), ms)?;
        }
        if route.max_hedges.is_some_and(|n| n == 0 || n > 4) {
            return Err(invalid(
                format!("routes[{i}].max_hedges"),
                "must be between 1 and 4",
            ));
        }
        if route
            .hedge_budget_ratio
            .is_some_and(|ratio| !(0.0..=1.0).contains(&ratio))
        {
            return Err(invalid(
                format!("routes[{i}].hedge_budget_ratio"),
                "must be between 0 and 1",
            ));
        }
        if route
            .max_resume_bytes
            .is_some_and(|bytes| bytes > MAX_RESUME_BYTES)
        {
            return Err(invalid(
                format!("routes[{i}].max_resume_bytes"),
                format!("must be at most {MAX_RESUME_BYTES}"),
            ));
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
            check_target(&format!("routes[{i}].targets[{j}]"), target, &names)?;
        }
    }
    Ok(())
}

/// Checks one entry of a route's `targets`, at `key`: a single target or a
/// balanced tier, with existing providers, non-empty models, weights in
/// range and no provider twice in a tier.
fn check_target(
    key: &str,
    target: &TargetConfig,
    names: &HashSet<&str>,
) -> Result<(), ConfigError> {
    let Some(balance) = &target.balance else {
        let Some(provider) = &target.provider else {
            return Err(invalid(
                format!("{key}.provider"),
                "is required (or `balance`, for a balanced tier)",
            ));
        };
        let Some(model) = &target.model else {
            return Err(invalid(format!("{key}.model"), "is required"));
        };
        return check_deployment(key, provider, model, names);
    };
    if target.provider.is_some() || target.model.is_some() {
        return Err(invalid(
            key,
            "holds either `provider` and `model` (one target) or `balance` (a tier), not both",
        ));
    }
    if balance.is_empty() {
        return Err(invalid(
            format!("{key}.balance"),
            "at least one deployment is required",
        ));
    }
    let mut seen = HashSet::new();
    for (k, deployment) in balance.iter().enumerate() {
        let key = format!("{key}.balance[{k}]");
        check_deployment(&key, &deployment.provider, &deployment.model, names)?;
        if !(1..=MAX_WEIGHT).contains(&deployment.weight) {
            return Err(invalid(
                format!("{key}.weight"),
                format!("({}) must be between 1 and {MAX_WEIGHT}", deployment.weight),
            ));
        }
        if !seen.insert(deployment.provider.as_str()) {
            return Err(invalid(
                format!("{key}.provider"),
                format!(
                    "`{}` is already a deployment of this tier",
                    deployment.provider
                ),
            ));
        }
    }
    Ok(())
}

fn check_deployment(
    key: &str,
    provider: &str,
    model: &str,
    names: &HashSet<&str>,
) -> Result<(), ConfigError> {
    if !names.contains(provider) {
        return Err(invalid(
            format!("{key}.provider"),
            format!("no provider is named `{provider}`"),
        ));
    }
    if model.is_empty() {
        return Err(invalid(format!("{key}.model"), "must be non-empty"));
    }
    Ok(())
}
