//! `[[providers]]`: each entry is the library's
//! [`ProviderConfig`](understudy_provider::ProviderConfig) (name, kind, base
//! URL, timeouts, `max_tokens_default`, `pass_rate_limit_headers`,
//! `stream_usage`: what the
//! target stacks need) and the keys only the gateway reads: `api_key_env`
//! and `headers_env` (secrets come from the environment at start),
//! `direct_models` (which `provider/model` names callers may address) and
//! `prefill` (how the provider continues a broken stream).
//!
//! An entry is one flat table, so it is split as it is read: the gateway's
//! keys are taken out and every other key goes to the library's
//! deserialiser, which owns their names, defaults and checks.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use understudy_core::config::InvalidSetting;
use understudy_fallback::resume::Prefill;
use understudy_provider::{ProviderConfig, ProviderKind, check_extra_header};

use super::check_model_name;
use super::error::{ConfigError, invalid, setting};
use super::split::{self, OwnKeys};

/// One `[[providers]]` entry.
#[derive(Clone, Debug)]
pub struct ProviderEntry {
    /// The provider as the library describes it: `name`, `kind`,
    /// `base_url`, `connect_timeout_ms`, `timeout_ms`,
    /// `first_chunk_timeout_ms`, `max_tokens_default`,
    /// `pass_rate_limit_headers`, `stream_usage`.
    pub provider: ProviderConfig,
    /// `api_key_env`: the environment variable holding the API key; none
    /// for keyless local servers.
    pub api_key_env: Option<String>,
    /// `headers_env`: extra headers whose values come from the
    /// environment at start (header name → variable), kept out of logs
    /// like keys.
    pub headers_env: BTreeMap<String, String>,
    /// `direct_models`: models callers may address directly as
    /// `name/model`, even when `server.direct_addressing` is off.
    pub direct_models: Vec<String>,
    /// `prefill`: how the provider is asked to continue a stream that broke
    /// on another target of a route that resumes (`continue_final_message`
    /// for vLLM, `prefix` for `DeepSeek`-style servers, `native`,
    /// `instruction`); by default `native` for Anthropic and Bedrock and
    /// `instruction` for the others.
    pub prefill: Option<Prefill>,
}

impl ProviderEntry {
    /// The prefill form in force: the configured one, else the kind's.
    pub fn effective_prefill(&self) -> Prefill {
        self.prefill.unwrap_or(match self.provider.kind {
            ProviderKind::Anthropic | ProviderKind::Bedrock => Prefill::Native,
            _ => Prefill::Instruction,
        })
    }
}

/// The keys the gateway reads itself.
const API_KEY_ENV: &str = "api_key_env";
const HEADERS_ENV: &str = "headers_env";
const DIRECT_MODELS: &str = "direct_models";
const PREFILL: &str = "prefill";

/// Every key an entry may hold: the library's, then the gateway's.
static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut keys = ProviderConfig::KEYS.to_vec();
    keys.extend([API_KEY_ENV, HEADERS_ENV, DIRECT_MODELS, PREFILL]);
    keys
});

/// An entry as read: the library's part with its checks' verdict kept (it
/// is reported under `providers[i]` once the whole file has parsed), and
/// the gateway's keys.
pub(super) struct ProviderFile {
    provider: Result<ProviderConfig, InvalidSetting>,
    api_key_env: Option<String>,
    headers_env: BTreeMap<String, String>,
    direct_models: Vec<String>,
    prefill: Option<String>,
}

/// Checks the entries read and turns them into [`ProviderEntry`]s, in the
/// order [`check`] checks built ones: entry by entry, the library's checks
/// first, then the gateway's name and `direct_models` rules.
pub(super) fn resolve(files: Vec<ProviderFile>) -> Result<Vec<ProviderEntry>, ConfigError> {
    if files.is_empty() {
        return Err(no_provider());
    }
    let mut entries: Vec<ProviderEntry> = Vec::with_capacity(files.len());
    for (i, file) in files.into_iter().enumerate() {
        let provider = file
            .provider
            .map_err(|error| setting(&format!("providers[{i}]"), &error))?;
        let prefill = match file.prefill.as_deref() {
            None => None,
            Some(name) => Some(Prefill::from_name(name).ok_or_else(|| {
                invalid(
                    format!("providers[{i}].prefill"),
                    "must be one of `native`, `continue_final_message`, `prefix`, `instruction`",
                )
            })?),
        };
        let entry = ProviderEntry {
            provider,
            api_key_env: file.api_key_env,
            headers_env: file.headers_env,
            direct_models: file.direct_models,
            prefill,
        };
        check_entry(i, &entry, &entries)?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Checks built entries: at least one; each the library's checks (naming
/// its fields), then the gateway's.
pub(super) fn check(entries: &[ProviderEntry]) -> Result<(), ConfigError> {
    if entries.is_empty() {
        return Err(no_provider());
    }
    for (i, entry) in entries.iter().enumerate() {
        entry
            .provider
            .validate()
            .map_err(|error| setting(&format!("providers[{i}]"), &error))?;
        check_entry(i, entry, entries.get(..i).unwrap_or_default())?;
    }
    Ok(())
}

fn no_provider() -> ConfigError {
    invalid("providers", "at least one provider is required")
}

/// The gateway's rules for entry `i`: a name unique among the entries
/// `before` it, fit for `provider/model`; direct models fit for `model`.
fn check_entry(
    i: usize,
    entry: &ProviderEntry,
    before: &[ProviderEntry],
) -> Result<(), ConfigError> {
    let name = &entry.provider.name;
    if name.is_empty() || name.contains('/') {
        return Err(invalid(
            format!("providers[{i}].name"),
            "must be non-empty and hold no `/`",
        ));
    }
    if before.iter().any(|other| other.provider.name == *name) {
        return Err(invalid(
            format!("providers[{i}].name"),
            format!("`{name}` is used by another provider"),
        ));
    }
    for name in entry.headers_env.keys() {
        // The value is checked when it is read at start.
        if let Err(problem) = check_extra_header(name, "") {
            return Err(invalid(
                format!("providers[{i}].headers_env"),
                format!("`{name}` {problem}"),
            ));
        }
        if entry
            .provider
            .headers
            .keys()
            .any(|fixed| fixed.eq_ignore_ascii_case(name))
        {
            return Err(invalid(
                format!("providers[{i}].headers_env"),
                format!("`{name}` is also in `headers`"),
            ));
        }
    }
    for (j, model) in entry.direct_models.iter().enumerate() {
        if let Err(reason) = check_model_name(model) {
            return Err(invalid(
                format!("providers[{i}].direct_models[{j}]"),
                reason,
            ));
        }
    }
    Ok(())
}

// ===== reading an entry =====

impl<'de> Deserialize<'de> for ProviderFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = ProviderFile;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct ProviderConfig")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ProviderFile, A::Error> {
        let (provider, own) = split::read::<_, GatewayKeys, _>(
            map,
            ProviderConfig::KEYS,
            KEYS.as_slice(),
            |library| ProviderConfig::deserialize_checked(library),
        )?;
        Ok(ProviderFile {
            provider,
            api_key_env: own.api_key_env,
            headers_env: own.headers_env.unwrap_or_default(),
            direct_models: own.direct_models.unwrap_or_default(),
            prefill: own.prefill,
        })
    }
}

/// The gateway's keys, as they are found.
#[derive(Default)]
struct GatewayKeys {
    api_key_env: Option<String>,
    headers_env: Option<BTreeMap<String, String>>,
    direct_models: Option<Vec<String>>,
    prefill: Option<String>,
}

impl<'de> OwnKeys<'de> for GatewayKeys {
    const NAMES: &'static [&'static str] = &[API_KEY_ENV, HEADERS_ENV, DIRECT_MODELS, PREFILL];

    fn read<A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error> {
        match key {
            API_KEY_ENV => split::once(&mut self.api_key_env, key, map),
            HEADERS_ENV => split::once(&mut self.headers_env, key, map),
            PREFILL => split::once(&mut self.prefill, key, map),
            _ => split::once(&mut self.direct_models, key, map),
        }
    }
}
