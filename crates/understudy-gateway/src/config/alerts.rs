//! `[alerts]`: where alerts go, and how often.

use std::fmt;

use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::{MAX_DURATION_MS, at_most};

/// `[alerts]`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Where to POST alerts (Slack-compatible JSON). May hold a secret token.
    pub webhook_url: Option<String>,
    /// Minimum interval between two alerts of one kind for one provider.
    #[serde(default = "default_min_interval_secs")]
    pub min_interval_secs: u64,
}

const fn default_min_interval_secs() -> u64 {
    300
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

impl AlertsConfig {
    /// Checks every rule a TOML parse cannot, naming the key as
    /// `alerts.{key}` and never echoing the webhook URL.
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_most(
            "alerts.min_interval_secs",
            self.min_interval_secs,
            MAX_DURATION_MS / 1000,
        )?;
        if let Some(url) = &self.webhook_url {
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
}
