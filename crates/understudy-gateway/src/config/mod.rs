//! The gateway's TOML configuration: schema, defaults and validation.
//!
//! The schema is a contract: unknown keys are errors (a typo must not
//! silently disable a fallback), every duration has a default, a provider a
//! route names must exist, and an `api_key_env` that is unset is an error at
//! start that names the variable, never its value.
//!
//! The sections the library crates configure are their types, read and
//! checked by them: `[retry]` is [`RetryConfig`], `[health]` is
//! [`HealthConfig`], a route's `fallback_on` is a [`FallbackRules`], and
//! each `[[providers]]` entry holds an [`understudy_provider::ProviderConfig`]
//! beside the gateway's own keys ([`ProviderEntry`]). Their values out of
//! range are reported as the gateway reports its own, under the key's path
//! (`retry.max_retries`, `providers[1].timeout_ms`), once the file has
//! parsed. The gateway checks what only it knows: `[server]`, `[alerts]`,
//! `[auth]`, `[telemetry]`, provider names, routes and the models callers may name.
//!
//! [`FallbackRules`]: understudy_fallback::FallbackRules

mod alerts;
mod auth;
mod error;
mod explain;
mod health;
mod provider;
mod route;
mod secrets;
mod server;
mod split;
mod telemetry;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde::Deserialize;
use understudy_core::Operation;
use understudy_core::config::{InvalidSetting, MAX_CONFIG_DURATION};
use understudy_health::HealthConfig;
use understudy_retry::RetryConfig;

pub use self::alerts::AlertsConfig;
pub use self::auth::{
    AuthConfig, AuthSecrets, CallerKeyConfig, MAX_KEY_NAME_BYTES, check_key_name,
};
pub use self::error::ConfigError;
pub use self::health::SharedHealthSettings;
pub use self::provider::ProviderEntry;
pub use self::route::{
    DeploymentConfig, MAX_MODEL_BYTES, MAX_WEIGHT, RouteConfig, TargetConfig, check_model_name,
};
pub use self::secrets::{
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, ProviderSecrets,
};
pub use self::server::ServerConfig;
pub use self::telemetry::TelemetryConfig;
#[doc(no_inline)]
pub use understudy_retry::MAX_RETRIES;

use self::error::{invalid, parse_error, setting};

/// A validated configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "ConfigFile")]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[[providers]]`.
    pub providers: Vec<ProviderEntry>,
    /// `[[routes]]`.
    pub routes: Vec<RouteConfig>,
    /// `[retry]`, applied to every target unless its route has its own.
    pub retry: RetryConfig,
    /// `[health]`, applied to every provider.
    pub health: HealthConfig,
    /// `[health] shared`: where replicas share health decisions; none
    /// keeps health to this process.
    pub shared_health: Option<SharedHealthSettings>,
    /// `[alerts]`.
    pub alerts: Option<AlertsConfig>,
    /// `[auth]`: the keys callers present; none serves anyone.
    pub auth: Option<AuthConfig>,
    /// `[telemetry]`: the trace export (read at start only).
    pub telemetry: TelemetryConfig,
}

/// The file as read: the library sections' checks are kept as results, so
/// they are reported in the file's order with the gateway's own, under the
/// key's path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    providers: Vec<provider::ProviderFile>,
    #[serde(default)]
    routes: Vec<RouteConfig>,
    #[serde(
        default = "checked_default",
        deserialize_with = "RetryConfig::deserialize_checked"
    )]
    retry: Result<RetryConfig, InvalidSetting>,
    #[serde(default)]
    health: health::HealthFile,
    #[serde(default)]
    alerts: Option<AlertsConfig>,
    #[serde(default)]
    auth: Option<AuthConfig>,
    #[serde(default)]
    telemetry: TelemetryConfig,
}

/// An absent section: the library's default, which passes its checks.
#[allow(clippy::unnecessary_wraps)] // the field's type is a `Result`
fn checked_default<T: Default>() -> Result<T, InvalidSetting> {
    Ok(T::default())
}

impl TryFrom<ConfigFile> for Config {
    type Error = ConfigError;

    fn try_from(file: ConfigFile) -> Result<Self, ConfigError> {
        file.server.validate()?;
        let providers = provider::resolve(file.providers)?;
        let retry = file.retry.map_err(|error| setting("retry", &error))?;
        route::check(&file.routes, &providers, retry)?;
        let shared_health = file.health.shared()?;
        let health = file
            .health
            .config
            .map_err(|error| setting("health", &error))?;
        if let Some(alerts) = &file.alerts {
            alerts.validate()?;
        }
        if let Some(section) = &file.auth {
            auth::check(section, &file.routes, &providers, &file.server)?;
        }
        file.telemetry.validate()?;
        Ok(Self {
            server: file.server,
            providers,
            routes: file.routes,
            retry,
            health,
            shared_health,
            alerts: file.alerts,
            auth: file.auth,
            telemetry: file.telemetry,
        })
    }
}

/// The longest duration any setting may take, in milliseconds: one day
/// ([`MAX_CONFIG_DURATION`]). Longer values are typos, and durations added
/// to the clock must not overflow.
pub const MAX_DURATION_MS: u64 = MAX_CONFIG_DURATION.as_secs() * 1000;

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

/// A route some of whose targets do not serve an operation
/// ([`Config::operation_gaps`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationGap {
    /// The route.
    pub route: String,
    /// The operation.
    pub operation: Operation,
    /// The targets that do not serve it, as `provider/model`.
    pub skipped: Vec<String>,
    /// No target of the route serves it.
    pub none_serves: bool,
}

impl std::fmt::Display for OperationGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.none_serves {
            write!(
                f,
                "route `{}` cannot serve {}: none of its targets does",
                self.route, self.operation
            )
        } else {
            write!(
                f,
                "route `{}` skips {} for {}",
                self.route,
                self.skipped.join(", "),
                self.operation
            )
        }
    }
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
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| ConfigError::Parse(parse_error(text, &e)))?;
        Self::try_from(file)
    }

    /// Checks every rule a TOML parse cannot, again: a configuration read by
    /// [`Config::from_toml`] passes; one changed since may not. The library
    /// sections are checked by their own `validate`, naming their fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        provider::check(&self.providers)?;
        self.retry
            .validate()
            .map_err(|error| setting("retry", &error))?;
        route::check(&self.routes, &self.providers, self.retry)?;
        if let Some(shared) = &self.shared_health {
            health::check(shared)?;
        }
        if let Some(alerts) = &self.alerts {
            alerts.validate()?;
        }
        if let Some(section) = &self.auth {
            auth::check(section, &self.routes, &self.providers, &self.server)?;
        }
        self.telemetry.validate()?;
        Ok(())
    }

    /// Reads each provider's secrets from the environment through `lookup`
    /// (`std::env::var` in the binary), in provider order: its API key
    /// (`api_key_env`), its `headers_env` values, and AWS credentials for
    /// the kinds that sign with them. An unset or empty variable is an
    /// error naming the variable, never a value.
    pub fn provider_secrets(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<ProviderSecrets>, ConfigError> {
        self.providers
            .iter()
            .enumerate()
            .map(|(i, entry)| secrets::read(i, entry, &lookup))
            .collect()
    }

    /// The targets that do not serve an operation, by route: for each
    /// route, the operations some of its targets skip, with those targets
    /// (`provider/model`). A route none of whose targets serves an
    /// operation answers it with an error; one whose first targets do not
    /// skips them for it (without counting against their health).
    pub fn operation_gaps(&self) -> Vec<OperationGap> {
        let mut gaps = Vec::new();
        for route in &self.routes {
            for operation in Operation::ALL {
                let deployments = route.targets.iter().flat_map(TargetConfig::deployments);
                let skipped: Vec<String> = deployments
                    .clone()
                    .filter(|(provider, _, _)| {
                        self.provider(provider)
                            .is_some_and(|entry| !entry.provider.kind.serves(operation))
                    })
                    .map(|(provider, model, _)| format!("{provider}/{model}"))
                    .collect();
                if !skipped.is_empty() {
                    gaps.push(OperationGap {
                        route: route.model.clone(),
                        operation,
                        none_serves: skipped.len() == deployments.count(),
                        skipped,
                    });
                }
            }
        }
        gaps
    }

    /// Every environment variable a start reads (API keys, header values,
    /// AWS credentials, the shared store's password, caller keys), for
    /// `--check` to name the ones missing here.
    pub fn secret_variables(&self) -> Vec<&str> {
        let mut vars: Vec<&str> = self.providers.iter().flat_map(secrets::variables).collect();
        vars.extend(
            self.shared_health
                .as_ref()
                .and_then(|shared| shared.password_env.as_deref()),
        );
        vars.extend(self.auth.iter().flat_map(auth::variables));
        vars.sort_unstable();
        vars.dedup();
        vars
    }

    /// Reads the shared store's password from `[health]
    /// shared_password_env`, through `lookup`: none without one; an unset or
    /// empty variable is an error naming the variable, never a value.
    pub fn shared_password(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(var) = self
            .shared_health
            .as_ref()
            .and_then(|shared| shared.password_env.as_ref())
        else {
            return Ok(None);
        };
        secrets::variable(&lookup, var, "health.shared_password_env").map(Some)
    }

    /// Reads the keys `[auth]` names through `lookup` and keeps only their
    /// SHA-256 digests: none without `[auth]`. An unset or empty variable
    /// is an error naming the variable, never a value.
    pub fn auth_secrets(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<AuthSecrets>, ConfigError> {
        self.auth
            .as_ref()
            .map(|section| auth::read(section, &lookup))
            .transpose()
    }

    /// The provider with this name.
    pub fn provider(&self, name: &str) -> Option<&ProviderEntry> {
        self.providers.iter().find(|p| p.provider.name == name)
    }
}
