//! `[auth]`: the keys callers present, what each may use and how often,
//! and the keys of `/metrics` and the admin endpoints. Without the section
//! the gateway serves anyone who reaches it.
//!
//! A key is given either by the environment variable holding it
//! (`key_env`, read at start like a provider's `api_key_env`) or by the
//! SHA-256 of it (`key_sha256`, 64 hexadecimal characters), so a file need
//! never hold a key. Only digests are kept once the gateway has started.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::provider::ProviderEntry;
use super::route::RouteConfig;
use super::secrets::variable;
use super::server::ServerConfig;
use crate::auth::KeyDigest;

/// The longest key name, in bytes.
pub const MAX_KEY_NAME_BYTES: usize = 64;

/// `[auth]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `keys`: the keys callers may present.
    pub keys: Vec<CallerKeyConfig>,
    /// `metrics_key_env`: the variable holding the key `/metrics` asks for
    /// (`Authorization: Bearer <key>`); without it `/metrics` stays open.
    #[serde(default)]
    pub metrics_key_env: Option<String>,
    /// `admin_key_env`: the variable holding the key of the admin
    /// endpoints.
    #[serde(default)]
    pub admin_key_env: Option<String>,
}

/// One entry of `[auth] keys`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerKeyConfig {
    /// `name`: what logs and metrics call the key (never the key itself).
    pub name: String,
    /// `key_env`: the variable holding the key.
    #[serde(default)]
    pub key_env: Option<String>,
    /// `key_sha256`: the SHA-256 of the key, as 64 hexadecimal characters.
    #[serde(default)]
    pub key_sha256: Option<String>,
    /// `routes`: the route names (`"chat"`), directly addressed models
    /// (`"openai/gpt-4o"`, or `"openai/*"` for any of that provider's) the
    /// key may use; `"*"` for all.
    pub routes: Vec<String>,
    /// `rpm`: the most requests a minute the key may make, in bursts of up
    /// to as many; unlimited without it.
    #[serde(default)]
    pub rpm: Option<u32>,
}

impl fmt::Debug for CallerKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerKeyConfig")
            .field("name", &self.name)
            .field("key_env", &self.key_env)
            .field("key_sha256", &self.key_sha256.as_ref().map(|_| "…"))
            .field("routes", &self.routes)
            .field("rpm", &self.rpm)
            .finish()
    }
}

/// The digests of the keys `[auth]` names, read at start: one per entry of
/// `keys`, in order, and those of the `/metrics` and admin keys. The keys
/// themselves are not kept.
#[derive(Clone, Debug)]
pub struct AuthSecrets {
    /// The digest of each caller key, in the order of `keys`.
    pub keys: Vec<KeyDigest>,
    /// The digest of the `/metrics` key.
    pub metrics: Option<KeyDigest>,
    /// The digest of the admin key.
    pub admin: Option<KeyDigest>,
}

/// Checks a key name: non-empty, at most [`MAX_KEY_NAME_BYTES`], ASCII
/// letters, digits, `-`, `_` and `.` only, so it is fit for a metric label
/// and a log line as it is.
pub fn check_key_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must be non-empty".to_owned());
    }
    if name.len() > MAX_KEY_NAME_BYTES {
        return Err(format!("is longer than {MAX_KEY_NAME_BYTES} bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("may hold only ASCII letters, digits, `-`, `_` and `.`".to_owned());
    }
    Ok(())
}

/// Checks `[auth]` against the routes and providers: see the field docs.
pub(super) fn check(
    auth: &AuthConfig,
    routes: &[RouteConfig],
    providers: &[ProviderEntry],
    server: &ServerConfig,
) -> Result<(), ConfigError> {
    if auth.keys.is_empty() {
        return Err(invalid(
            "auth.keys",
            "at least one key is required (without `[auth]` callers need no key)",
        ));
    }
    let mut names = HashSet::new();
    let mut digests = HashSet::new();
    for (i, key) in auth.keys.iter().enumerate() {
        let path = |field: &str| format!("auth.keys[{i}].{field}");
        check_key_name(&key.name).map_err(|reason| invalid(path("name"), reason))?;
        if !names.insert(key.name.as_str()) {
            return Err(invalid(
                path("name"),
                format!("`{}` is used by another key", key.name),
            ));
        }
        match (&key.key_env, &key.key_sha256) {
            (Some(var), None) => {
                if var.is_empty() {
                    return Err(invalid(path("key_env"), "must be non-empty"));
                }
            }
            (None, Some(hex)) => {
                let Some(digest) = KeyDigest::from_hex(hex) else {
                    return Err(invalid(
                        path("key_sha256"),
                        "must be 64 hexadecimal characters: the SHA-256 of the key",
                    ));
                };
                if !digests.insert(digest.to_bytes()) {
                    return Err(invalid(
                        path("key_sha256"),
                        "is the digest of another key's key",
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    format!("auth.keys[{i}]"),
                    "exactly one of `key_env` and `key_sha256` is required",
                ));
            }
        }
        if key.routes.is_empty() {
            return Err(invalid(
                path("routes"),
                "at least one route (or \"*\" for all) is required",
            ));
        }
        for (j, route) in key.routes.iter().enumerate() {
            check_route(route, routes, providers, server)
                .map_err(|reason| invalid(format!("auth.keys[{i}].routes[{j}]"), reason))?;
        }
        if key.rpm == Some(0) {
            return Err(invalid(path("rpm"), "must be greater than 0"));
        }
    }
    for (field, var) in [
        ("metrics_key_env", &auth.metrics_key_env),
        ("admin_key_env", &auth.admin_key_env),
    ] {
        if var.as_deref() == Some("") {
            return Err(invalid(format!("auth.{field}"), "must be non-empty"));
        }
    }
    Ok(())
}

/// Checks one entry of a key's `routes`: `*`, a route's name, a model a
/// provider lists in `direct_models` as `provider/model`, or `provider/*`
/// when that provider can be addressed directly at all.
fn check_route(
    entry: &str,
    routes: &[RouteConfig],
    providers: &[ProviderEntry],
    server: &ServerConfig,
) -> Result<(), String> {
    if entry == "*" || routes.iter().any(|route| route.model == entry) {
        return Ok(());
    }
    let Some((provider, model)) = entry.split_once('/') else {
        return Err(format!(
            "no route is named `{entry}` (a key's routes are route names, `provider/model`, `provider/*` or \"*\")"
        ));
    };
    let Some(found) = providers.iter().find(|p| p.provider.name == provider) else {
        return Err(format!("no provider is named `{provider}`"));
    };
    if model == "*" {
        if server.direct_addressing || !found.direct_models.is_empty() {
            return Ok(());
        }
        return Err(format!(
            "`{provider}` cannot be addressed directly: it lists no `direct_models` and `server.direct_addressing` is off"
        ));
    }
    if found.direct_models.iter().any(|m| m == model) {
        return Ok(());
    }
    Err(format!(
        "`{model}` is not in the `direct_models` of `{provider}` (use `{provider}/*` for any model addressed directly)"
    ))
}

/// The variables `[auth]` reads at start, whether set or not.
pub(super) fn variables(auth: &AuthConfig) -> Vec<&str> {
    let mut vars: Vec<&str> = auth
        .keys
        .iter()
        .filter_map(|key| key.key_env.as_deref())
        .collect();
    vars.extend(auth.metrics_key_env.as_deref());
    vars.extend(auth.admin_key_env.as_deref());
    vars
}

/// Reads the keys `[auth]` names through `lookup` and keeps their digests.
/// An unset or empty variable is an error naming the variable, never a
/// value; so is a key that another entry already holds.
pub(super) fn read(
    auth: &AuthConfig,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<AuthSecrets, ConfigError> {
    let digest = |var: &str, key: String| {
        variable(lookup, var, key).map(|value| KeyDigest::of(value.as_bytes()))
    };
    let mut keys: Vec<KeyDigest> = Vec::with_capacity(auth.keys.len());
    for (i, key) in auth.keys.iter().enumerate() {
        let (found, path) = match (&key.key_env, &key.key_sha256) {
            (Some(var), _) => {
                let path = format!("auth.keys[{i}].key_env");
                (digest(var, path.clone())?, path)
            }
            (None, Some(hex)) => {
                let path = format!("auth.keys[{i}].key_sha256");
                let Some(found) = KeyDigest::from_hex(hex) else {
                    return Err(invalid(path, "must be 64 hexadecimal characters"));
                };
                (found, path)
            }
            (None, None) => {
                return Err(invalid(
                    format!("auth.keys[{i}]"),
                    "exactly one of `key_env` and `key_sha256` is required",
                ));
            }
        };
        if let Some(other) = keys.iter().position(|known| known.same_as(&found)) {
            return Err(invalid(
                path,
                format!("holds the same key as `auth.keys[{other}]`"),
            ));
        }
        keys.push(found);
    }
    let metrics = auth
        .metrics_key_env
        .as_deref()
        .map(|var| digest(var, "auth.metrics_key_env".to_owned()))
        .transpose()?;
    let admin = auth
        .admin_key_env
        .as_deref()
        .map(|var| digest(var, "auth.admin_key_env".to_owned()))
        .transpose()?;
    Ok(AuthSecrets {
        keys,
        metrics,
        admin,
    })
}
