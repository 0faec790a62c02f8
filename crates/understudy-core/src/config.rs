//! What the configuration types of the Understudy crates share: the longest
//! duration a setting may take, and the error that names a setting out of
//! range.
//!
//! Each crate checks its own configuration (`RetryConfig`, `HealthConfig`,
//! the provider's `ProviderConfig`, …) with these, whether the value was
//! built in code or deserialised from a file, so a limit is written once.

use std::time::Duration;

/// The longest duration any setting may take: one day. Longer values are
/// typos, and durations added to the clock must not overflow.
pub const MAX_CONFIG_DURATION: Duration = Duration::from_hours(24);

/// A setting out of range, or inconsistent with another: which one, and why.
///
/// The key is the setting's name as the caller spelled it: a builder
/// method's name for a value built in code (`base_delay`), the file's key
/// for a deserialised one (`base_delay_ms`). It displays as
/// `{key} {problem}`; a caller that reports the key under a path of its own
/// (`retry.base_delay_ms`) takes [`key`](Self::key) and
/// [`problem`](Self::problem) apart.
///
/// ```
/// use understudy_core::config::InvalidSetting;
///
/// let error = InvalidSetting::new("max_retries", "(11) must be at most 10");
/// assert_eq!(error.to_string(), "max_retries (11) must be at most 10");
/// assert_eq!(error.key(), "max_retries");
/// assert_eq!(error.problem(), "(11) must be at most 10");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key} {problem}")]
pub struct InvalidSetting {
    key: &'static str,
    problem: String,
}

impl InvalidSetting {
    /// The setting `key` is wrong: `problem` says how, and never repeats a
    /// value that may be a secret.
    pub fn new(key: &'static str, problem: impl Into<String>) -> Self {
        Self {
            key,
            problem: problem.into(),
        }
    }

    /// The setting at fault.
    pub const fn key(&self) -> &'static str {
        self.key
    }

    /// What is wrong with it, without the key.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

/// Checks that the duration setting `key` is at most
/// [`MAX_CONFIG_DURATION`].
///
/// ```
/// use std::time::Duration;
/// use understudy_core::config::check_duration;
///
/// assert!(check_duration("timeout", Duration::from_secs(30)).is_ok());
/// let error = check_duration("timeout", Duration::from_secs(86_401)).unwrap_err();
/// assert_eq!(error.to_string(), "timeout (86401s) must be at most 86400s (one day)");
/// ```
pub fn check_duration(key: &'static str, value: Duration) -> Result<(), InvalidSetting> {
    if value > MAX_CONFIG_DURATION {
        return Err(InvalidSetting::new(
            key,
            format!("({value:?}) must be at most {MAX_CONFIG_DURATION:?} (one day)"),
        ));
    }
    Ok(())
}

/// Checks that the duration setting `key` is greater than zero and at most
/// [`MAX_CONFIG_DURATION`].
///
/// ```
/// use std::time::Duration;
/// use understudy_core::config::check_positive_duration;
///
/// let error = check_positive_duration("timeout", Duration::ZERO).unwrap_err();
/// assert_eq!(error.to_string(), "timeout must be greater than 0");
/// ```
pub fn check_positive_duration(key: &'static str, value: Duration) -> Result<(), InvalidSetting> {
    if value.is_zero() {
        return Err(InvalidSetting::new(key, "must be greater than 0"));
    }
    check_duration(key, value)
}
