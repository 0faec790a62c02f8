//! `[health]`: the library's [`HealthConfig`] and the two keys only the
//! gateway reads, which share health decisions between replicas through a
//! store: `shared` (a `redis://` or `rediss://` URL) and
//! `shared_password_env` (the environment variable holding its password).
//! The table is split as it is read, like a `[[providers]]` entry.

use std::fmt;
use std::sync::LazyLock;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use understudy_core::config::InvalidSetting;
use understudy_health::HealthConfig;
use understudy_shared_health::SharedHealthConfig;

use super::error::{ConfigError, invalid};
use super::split::{self, OwnKeys};

/// Where replicas share health decisions (`[health] shared`).
#[derive(Clone, PartialEq, Eq)]
pub struct SharedHealthSettings {
    /// `shared`: the store's URL, `redis://host:port/db` or `rediss://…`.
    pub url: String,
    /// `shared_password_env`: the environment variable holding the store's
    /// password, read at start; none when the store has no password.
    pub password_env: Option<String>,
}

impl SharedHealthSettings {
    /// The sharer's settings for this URL: the store URL is checked and
    /// redacted by the one definition the sharer uses.
    pub(crate) fn sharing(&self) -> SharedHealthConfig {
        SharedHealthConfig::new(self.url.clone())
    }
}

impl fmt::Debug for SharedHealthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedHealthSettings")
            .field("url", &self.sharing().redacted_url())
            .field("password_env", &self.password_env)
            .finish()
    }
}

const SHARED: &str = "shared";
const SHARED_PASSWORD_ENV: &str = "shared_password_env";

static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut keys = HealthConfig::KEYS.to_vec();
    keys.extend([SHARED, SHARED_PASSWORD_ENV]);
    keys
});

/// `[health]` as read: the library's verdict kept for reporting under
/// `health`, and the gateway's keys.
pub(super) struct HealthFile {
    pub(super) config: Result<HealthConfig, InvalidSetting>,
    keys: SharedKeys,
}

impl Default for HealthFile {
    fn default() -> Self {
        Self {
            config: Ok(HealthConfig::default()),
            keys: SharedKeys::default(),
        }
    }
}

impl HealthFile {
    /// The gateway's keys, checked: where replicas share health, if they
    /// do.
    pub(super) fn shared(&self) -> Result<Option<SharedHealthSettings>, ConfigError> {
        let SharedKeys {
            shared,
            shared_password_env,
        } = &self.keys;
        let Some(url) = shared else {
            if shared_password_env.is_some() {
                return Err(invalid(
                    "health.shared_password_env",
                    "is set without `health.shared`",
                ));
            }
            return Ok(None);
        };
        let settings = SharedHealthSettings {
            url: url.clone(),
            password_env: shared_password_env.clone(),
        };
        check(&settings)?;
        Ok(Some(settings))
    }
}

/// Checks the store's settings: the URL as the sharer checks it when it
/// starts (its errors never show a password).
pub(super) fn check(shared: &SharedHealthSettings) -> Result<(), ConfigError> {
    shared
        .sharing()
        .validate()
        .map_err(|error| invalid("health.shared", error.to_string()))?;
    if shared.password_env.as_deref() == Some("") {
        return Err(invalid("health.shared_password_env", "must not be empty"));
    }
    Ok(())
}

impl<'de> Deserialize<'de> for HealthFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HealthVisitor)
    }
}

struct HealthVisitor;

impl<'de> Visitor<'de> for HealthVisitor {
    type Value = HealthFile;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct HealthConfig")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HealthFile, A::Error> {
        let (config, own) =
            split::read::<_, SharedKeys, _>(map, HealthConfig::KEYS, KEYS.as_slice(), |library| {
                HealthConfig::deserialize_checked(library)
            })?;
        Ok(HealthFile { config, keys: own })
    }
}

#[derive(Default)]
struct SharedKeys {
    shared: Option<String>,
    shared_password_env: Option<String>,
}

impl<'de> OwnKeys<'de> for SharedKeys {
    const NAMES: &'static [&'static str] = &[SHARED, SHARED_PASSWORD_ENV];

    fn read<A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error> {
        if key == SHARED {
            split::once(&mut self.shared, key, map)
        } else {
            split::once(&mut self.shared_password_env, key, map)
        }
    }
}
