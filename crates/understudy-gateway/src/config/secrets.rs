//! What each provider needs from the environment at start: its API key
//! (`api_key_env`), the values of its `headers_env` headers, and, for the
//! kinds that sign with AWS credentials, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (optional).
//!
//! An unset or empty variable a provider needs is an error naming the
//! variable, never a value; every value read here is kept out of `Debug`.

use std::fmt;

use understudy_provider::{ApiKey, AwsCredentials, check_extra_header};

use super::error::{ConfigError, invalid};
use super::provider::ProviderEntry;

/// The AWS variables a signing provider reads.
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// See [`AWS_ACCESS_KEY_ID`].
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// See [`AWS_ACCESS_KEY_ID`]; optional (temporary credentials).
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

/// One provider's secrets, read from the environment.
#[derive(Clone, Default)]
pub struct ProviderSecrets {
    /// From `api_key_env`.
    pub key: Option<ApiKey>,
    /// From `headers_env`: each header's name and value.
    pub headers: Vec<(String, ApiKey)>,
    /// For the kinds that sign with AWS credentials.
    pub aws: Option<AwsCredentials>,
}

impl fmt::Debug for ProviderSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("ProviderSecrets")
            .field("key", &self.key)
            .field("headers", &names)
            .field("aws", &self.aws)
            .finish()
    }
}

/// The variables `entry` reads at start, whether set or not, in the order
/// they are read: for `--check` to say which are missing here.
pub(super) fn variables(entry: &ProviderEntry) -> Vec<&str> {
    let mut vars: Vec<&str> = entry.api_key_env.iter().map(String::as_str).collect();
    vars.extend(entry.headers_env.values().map(String::as_str));
    if entry.provider.kind.uses_aws_credentials() {
        vars.extend([AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY]);
    }
    vars
}

/// Reads the variable `var`, named by the setting `key`, through `lookup`:
/// an unset or empty variable is an error naming the variable under `key`,
/// never a value.
pub(super) fn variable(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &str,
    key: impl Into<String>,
) -> Result<String, ConfigError> {
    match lookup(var) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(invalid(
            key,
            format!("the environment variable `{var}` is not set"),
        )),
    }
}

/// Reads provider `i`'s secrets through `lookup`.
pub(super) fn read(
    i: usize,
    entry: &ProviderEntry,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<ProviderSecrets, ConfigError> {
    let get = |var: &str, key: String| variable(lookup, var, key);
    let key = entry
        .api_key_env
        .as_ref()
        .map(|var| get(var, format!("providers[{i}].api_key_env")).map(ApiKey::new))
        .transpose()?;
    let mut headers = Vec::with_capacity(entry.headers_env.len());
    for (name, var) in &entry.headers_env {
        let path = format!("providers[{i}].headers_env.{name}");
        let value = get(var, path.clone())?;
        if let Err(problem) = check_extra_header(name, &value) {
            return Err(invalid(path, format!("the value of `{var}`: {problem}")));
        }
        headers.push((name.clone(), ApiKey::new(value)));
    }
    let aws = if entry.provider.kind.uses_aws_credentials() {
        let kind = format!("providers[{i}].kind");
        Some(AwsCredentials::new(
            get(AWS_ACCESS_KEY_ID, kind.clone())?,
            get(AWS_SECRET_ACCESS_KEY, kind)?,
            lookup(AWS_SESSION_TOKEN).filter(|token| !token.is_empty()),
        ))
    } else {
        None
    };
    Ok(ProviderSecrets { key, headers, aws })
}
