//! Where the store is and how the sharer talks to it, checked by
//! [`spawn`](crate::spawn); and the errors of that check. Secrets never show:
//! the password (given alone or in the URL) is redacted from `Debug` output
//! and error messages.

use std::fmt;
use std::time::Duration;

use understudy_health::MAX_HEALTH_DURATION;

/// The key prefix when none is set.
pub const DEFAULT_KEY_PREFIX: &str = "understudy:health";
/// The time limit of every command when none is set.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(50);
/// The time limit of opening a connection when none is set.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The half-open trial lease when none is set.
pub const DEFAULT_TRIAL_LEASE: Duration = Duration::from_secs(10);
/// How often the connections are checked when nothing else is said.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// The first reconnection delay when none is set.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest reconnection delay when none is set.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The longest replica id, key prefix and provider name, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 256;

/// How a [`HealthRegistry`](understudy_health::HealthRegistry) shares its
/// decisions through Redis. Built with [`SharedHealthConfig::new`] and its
/// setters; checked when [`spawn`](crate::spawn)ed.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use understudy_shared_health::SharedHealthConfig;
///
/// let config = SharedHealthConfig::new("redis://:s3cret@127.0.0.1:6379/0")
///     .key_prefix("prod:health")
///     .replica("gateway-1")
///     .command_timeout(Duration::from_millis(20));
/// assert_eq!(config.replica_id(), "gateway-1");
/// // The password never shows.
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct SharedHealthConfig {
    pub(crate) url: String,
    pub(crate) password: Option<String>,
    pub(crate) key_prefix: String,
    pub(crate) replica: String,
    pub(crate) command_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) trial_lease: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) root_certificate: Option<Vec<u8>>,
}

impl SharedHealthConfig {
    /// The store at `url` (`redis://` or `rediss://` for TLS, e.g.
    /// `redis://user:password@host:6379/0`), with the defaults: key prefix
    /// [`DEFAULT_KEY_PREFIX`], a random replica id, 50 ms per command, 1 s
    /// to connect, a 10 s trial lease, a 1 s heartbeat, and reconnection
    /// delays from 100 ms doubling to 5 s, jittered.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password: None,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            replica: random_replica_id(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            trial_lease: DEFAULT_TRIAL_LEASE,
            heartbeat: DEFAULT_HEARTBEAT,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
            root_certificate: None,
        }
    }

    /// The password to authenticate with; it replaces one in the URL.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// The prefix of every key and of the channel: decisions live at
    /// `{prefix}:{provider}`, trial leases at `{prefix}:trial:{provider}`,
    /// and are announced on `{prefix}:events`. Replicas that share health
    /// use the same prefix; fleets that must not, different ones.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// This replica's id, unique in the fleet (default: random). Records
    /// carrying it are this replica's own, and are not applied again.
    pub fn replica(mut self, replica: impl Into<String>) -> Self {
        self.replica = replica.into();
        self
    }

    /// The time limit of every command (default 50 ms). A command that
    /// takes longer counts as the store failing.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The time limit of opening a connection, TLS and authentication
    /// included (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a replica holds the half-open trial of a provider (default
    /// 10 s). Replicas refused the lease try again every half lease, so a
    /// holder that died costs at most one lease. The holder extends it at
    /// each [`heartbeat`](Self::heartbeat) while its trial request runs,
    /// so the lease should be longer than a heartbeat and a command.
    pub fn trial_lease(mut self, lease: Duration) -> Self {
        self.trial_lease = lease;
        self
    }

    /// How often both connections are pinged while idle (default 1 s): a
    /// store that went silent is noticed within a heartbeat and a command
    /// timeout.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// The reconnection delays: the first is about `min`, each next one
    /// doubles up to `max`, and each is jittered between half and all of
    /// its value (defaults 100 ms and 5 s).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }

    /// Trusts the CA certificate(s) in `pem` for `rediss://`, instead of
    /// the public web PKI roots: a store whose certificate a private CA
    /// signed.
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// This replica's id.
    pub fn replica_id(&self) -> &str {
        &self.replica
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The URL with any password replaced by `***`, fit for a log line.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Checks every setting, as [`spawn`](crate::spawn) does.
    pub fn validate(&self) -> Result<(), SharedHealthError> {
        let scheme_ok = ["redis://", "rediss://"]
            .iter()
            .any(|scheme| has_prefix_ignore_case(&self.url, scheme));
        if !scheme_ok {
            return Err(self.invalid_url("the scheme must be redis:// or rediss://"));
        }
        if self.root_certificate.is_some() && !has_prefix_ignore_case(&self.url, "rediss://") {
            return Err(SharedHealthError::invalid(
                "tls_root_certificate",
                "needs a rediss:// URL",
            ));
        }
        self.client()?;
        let name = |setting: &'static str, value: &str| {
            if value.is_empty() {
                Err(SharedHealthError::invalid(setting, "must not be empty"))
            } else if value.len() > MAX_NAME_BYTES {
                Err(SharedHealthError::invalid(
                    setting,
                    "must be at most 256 bytes",
                ))
            } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(SharedHealthError::invalid(
                    setting,
                    "must not contain whitespace or control characters",
                ))
            } else {
                Ok(())
            }
        };
        name("key_prefix", &self.key_prefix)?;
        name("replica", &self.replica)?;
        let duration = |setting: &'static str, value: Duration| {
            if value.is_zero() {
                Err(SharedHealthError::invalid(
                    setting,
                    "must be more than zero",
                ))
            } else if value > MAX_HEALTH_DURATION {
                Err(SharedHealthError::invalid(setting, "must be at most a day"))
            } else {
                Ok(())
            }
        };
        duration("command_timeout", self.command_timeout)?;
        duration("connect_timeout", self.connect_timeout)?;
        duration("heartbeat", self.heartbeat)?;
        duration("reconnect_backoff.min", self.backoff_min)?;
        duration("reconnect_backoff.max", self.backoff_max)?;
        if self.trial_lease < Duration::from_millis(2) || self.trial_lease > MAX_HEALTH_DURATION {
            return Err(SharedHealthError::invalid(
                "trial_lease",
                "must be between 2 ms and a day",
            ));
        }
        if self.trial_lease <= self.heartbeat.saturating_add(self.command_timeout) {
            return Err(SharedHealthError::invalid(
                "trial_lease",
                "must be longer than a heartbeat and a command, or a running trial loses it",
            ));
        }
        if self.backoff_min > self.backoff_max {
            return Err(SharedHealthError::invalid(
                "reconnect_backoff",
                "min must not exceed max",
            ));
        }
        Ok(())
    }

    /// The parsed URL, with the separate password applied.
    pub(crate) fn connection_info(&self) -> Result<redis::ConnectionInfo, SharedHealthError> {
        let info = redis::IntoConnectionInfo::into_connection_info(self.url.as_str())
            .map_err(|_| self.invalid_url("not a valid Redis URL"))?;
        Ok(match &self.password {
            Some(password) => {
                let settings = info.redis_settings().clone().set_password(password);
                info.set_redis_settings(settings)
            }
            None => info,
        })
    }

    /// The client of the store: its URL, the separate password, and the
    /// roots to trust.
    pub(crate) fn client(&self) -> Result<redis::Client, SharedHealthError> {
        let info = self.connection_info()?;
        match &self.root_certificate {
            None => {
                redis::Client::open(info).map_err(|_| self.invalid_url("the client cannot use it"))
            }
            Some(pem) if !holds_certificates(pem) => Err(SharedHealthError::invalid(
                "tls_root_certificate",
                "holds no PEM certificate",
            )),
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )
            .map_err(|_| {
                SharedHealthError::invalid(
                    "tls_root_certificate",
                    "is not a PEM certificate the client can use",
                )
            }),
        }
    }

    /// Replaces every secret of this configuration found in `text`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        let url_password = url_password(&self.url);
        for secret in [self.password.as_deref(), url_password]
            .into_iter()
            .flatten()
            .filter(|secret| !secret.is_empty())
        {
            text = text.replace(secret, "***");
        }
        text
    }

    fn invalid_url(&self, reason: &'static str) -> SharedHealthError {
        SharedHealthError::InvalidUrl {
            url: redact_url(&self.url),
            reason,
        }
    }
}

impl fmt::Debug for SharedHealthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedHealthConfig")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("key_prefix", &self.key_prefix)
            .field("replica", &self.replica)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("trial_lease", &self.trial_lease)
            .field("heartbeat", &self.heartbeat)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .field(
                "tls_root_certificate",
                &self.root_certificate.as_ref().map(|_| "(PEM)"),
            )
            .finish()
    }
}

/// Why [`spawn`](crate::spawn) refused. Messages never hold a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SharedHealthError {
    /// The URL is not a Redis URL this crate can use.
    #[error("invalid store URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, its password redacted.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A setting is out of its bounds.
    #[error("invalid shared health setting `{setting}`: {reason}")]
    InvalidSetting {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`spawn`](crate::spawn) was called outside a Tokio runtime.
    #[error("shared health needs a Tokio runtime to spawn its tasks on")]
    NoRuntime,
}

impl SharedHealthError {
    const fn invalid(setting: &'static str, reason: &'static str) -> Self {
        Self::InvalidSetting { setting, reason }
    }
}

/// Does `pem` hold certificates, and nothing unreadable?
fn holds_certificates(pem: &[u8]) -> bool {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut found = false;
    for certificate in CertificateDer::pem_slice_iter(pem) {
        if certificate.is_err() {
            return false;
        }
        found = true;
    }
    found
}

fn has_prefix_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// The user information of a URL (`user:password` in
/// `redis://user:password@host`), if it has one.
fn userinfo(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")?.checked_add(3)?;
    let rest = url.get(start..)?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest.get(..authority_end)?.rfind('@')?;
    Some((start, start.checked_add(at)?))
}

/// The password in a URL's user information, if there is one.
fn url_password(url: &str) -> Option<&str> {
    let (start, end) = userinfo(url)?;
    let info = url.get(start..end)?;
    match info.split_once(':') {
        Some((_, password)) => Some(password),
        // `redis://secret@host`: a lone user part is redacted too.
        None => Some(info),
    }
}

/// `url` with the password of its user information (or the lone user part,
/// which some write the password in) replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((start, end)) = userinfo(url) else {
        return url.to_owned();
    };
    let (Some(head), Some(info), Some(tail)) =
        (url.get(..start), url.get(start..end), url.get(end..))
    else {
        return url.to_owned();
    };
    match info.split_once(':') {
        Some((user, _)) => format!("{head}{user}:***{tail}"),
        None => format!("{head}***{tail}"),
    }
}

fn random_replica_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("rediss://user:p@ss@host/0?x=1"),
            "rediss://user:***@host/0?x=1"
        );
        assert_eq!(redact_url("redis://secret@host"), "redis://***@host");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn secrets_are_scrubbed_from_text() {
        let config = SharedHealthConfig::new("redis://u:inurl@host").password("alone");
        assert_eq!(
            config.scrub("auth inurl then alone failed"),
            "auth *** then *** failed"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let config = SharedHealthConfig::new("redis://u:inurl@host").password("alone");
        let debug = format!("{config:?}");
        assert!(!debug.contains("inurl"), "{debug}");
        assert!(!debug.contains("alone"), "{debug}");
        assert!(debug.contains("redis://u:***@host"), "{debug}");
    }

    #[test]
    fn settings_are_checked() {
        let ok = SharedHealthConfig::new("redis://127.0.0.1:6379");
        assert!(ok.validate().is_ok());
        assert!(SharedHealthConfig::new("REDISS://host").validate().is_ok());
        let error = SharedHealthConfig::new("http://:pw@host")
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("scheme"), "{error}");
        assert!(!error.contains("pw@"), "{error}");
        assert!(ok.clone().replica("").validate().is_err());
        assert!(ok.clone().key_prefix("a b").validate().is_err());
        assert!(
            ok.clone()
                .command_timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            ok.clone()
                .trial_lease(Duration::from_millis(1))
                .validate()
                .is_err()
        );
        assert!(
            ok.clone()
                .trial_lease(Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert!(
            ok.clone()
                .trial_lease(Duration::from_secs(1))
                .heartbeat(Duration::from_millis(200))
                .validate()
                .is_ok()
        );
        assert!(
            ok.clone()
                .reconnect_backoff(Duration::from_secs(2), Duration::from_secs(1))
                .validate()
                .is_err()
        );
    }

    #[test]
    fn a_root_certificate_needs_tls_and_a_certificate() {
        let plain = SharedHealthConfig::new("redis://host").tls_root_certificate("x");
        assert!(matches!(
            plain.validate(),
            Err(SharedHealthError::InvalidSetting {
                setting: "tls_root_certificate",
                ..
            })
        ));
        let garbage = SharedHealthConfig::new("rediss://host").tls_root_certificate("not a PEM");
        assert!(garbage.validate().is_err());
        assert!(format!("{garbage:?}").contains("(PEM)"));
    }

    #[test]
    fn replica_ids_differ() {
        assert_ne!(
            SharedHealthConfig::new("redis://h").replica,
            SharedHealthConfig::new("redis://h").replica
        );
    }
}
