use std::time::Duration;

use understudy_core::config::{InvalidSetting, check_duration};

use crate::budget::RetryBudget;

/// The most retries per target [`RetryConfig::validate`] accepts.
pub const MAX_RETRIES: u32 = 10;

/// How a target retries. Every field has a default; setters chain.
///
/// ```
/// use std::time::Duration;
/// use understudy_retry::RetryConfig;
///
/// let config = RetryConfig::default()
///     .max_retries(2)
///     .max_retry_after(Duration::from_secs(5));
/// assert_eq!(config.get_max_retries(), 2);
/// assert!(config.validate().is_ok());
/// ```
///
/// # Deserialising
///
/// With the `serde` feature, a `RetryConfig` deserialises from a map with
/// the keys `max_retries`, `base_delay_ms`, `max_delay_ms`,
/// `max_retry_after_ms`, `budget_ratio` and `budget_min_per_sec`; each is
/// optional (the [`Default`] fills it in), any other key is an error, and
/// the values are checked as [`validate`](Self::validate) checks them. The
/// deadline margin and the budget's window keep their defaults.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use understudy_retry::RetryConfig;
///
/// let config: RetryConfig = toml::from_str(
///     "max_retries = 2\n\
///      base_delay_ms = 50\n\
///      budget_ratio = 0.1\n",
/// )
/// .unwrap();
/// assert_eq!(config.get_max_retries(), 2);
///
/// let error = toml::from_str::<RetryConfig>("max_retries = 11").unwrap_err();
/// assert!(error.message().contains("max_retries (11) must be at most 10"));
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryConfig {
    pub(crate) max_retries: u32,
    pub(crate) base_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) min_remaining: Duration,
    pub(crate) budget_ttl: Duration,
    pub(crate) budget_min_per_sec: u32,
    pub(crate) budget_ratio: f64,
}

impl Default for RetryConfig {
    /// One retry; backoff from 100 ms up to 2 s; `Retry-After` honoured up
    /// to 3 s; no retry with under 50 ms left; a budget of 20% of the last
    /// 10 s of requests plus 10 retries a second.
    fn default() -> Self {
        Self {
            max_retries: 1,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(3),
            min_remaining: Duration::from_millis(50),
            budget_ttl: Duration::from_secs(10),
            budget_min_per_sec: 10,
            budget_ratio: 0.2,
        }
    }
}

impl RetryConfig {
    /// Retries after the first try (0 turns retry off).
    pub const fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Backoff base: the ceiling of the first retry's wait.
    pub const fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Backoff cap.
    pub const fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The longest `Retry-After` waited for; a longer one gives up at once.
    pub const fn max_retry_after(mut self, wait: Duration) -> Self {
        self.max_retry_after = wait;
        self
    }

    /// No retry starts with less than this left before the deadline.
    pub const fn min_remaining(mut self, left: Duration) -> Self {
        self.min_remaining = left;
        self
    }

    /// The retry budget: at most `ratio` of the requests of the last `ttl`,
    /// plus `min_per_sec` retries a second.
    pub const fn budget(mut self, ttl: Duration, min_per_sec: u32, ratio: f64) -> Self {
        self.budget_ttl = ttl;
        self.budget_min_per_sec = min_per_sec;
        self.budget_ratio = ratio;
        self
    }

    /// The share of recent requests that retries may add, keeping the
    /// budget's window and floor.
    pub const fn budget_ratio(mut self, ratio: f64) -> Self {
        self.budget_ratio = ratio;
        self
    }

    /// The floor of the budget: retries a second allowed whatever the
    /// traffic, keeping the budget's window and ratio.
    pub const fn budget_min_per_sec(mut self, min_per_sec: u32) -> Self {
        self.budget_min_per_sec = min_per_sec;
        self
    }

    /// A new budget as this configuration describes it. Share one budget
    /// (with [`RetryLayer::budget`](crate::RetryLayer::budget)) among every
    /// stack that calls the same provider, so the ratio holds per provider
    /// however many routes use it.
    pub fn new_budget(&self) -> RetryBudget {
        RetryBudget::new(self.budget_ttl, self.budget_min_per_sec, self.budget_ratio)
    }

    /// Retries after the first try.
    pub const fn get_max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The first backoff.
    pub const fn get_base_delay(&self) -> Duration {
        self.base_delay
    }

    /// The longest backoff.
    pub const fn get_max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The longest `Retry-After` honoured.
    pub const fn get_max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// Checks the values: at most [`MAX_RETRIES`] retries, every duration at
    /// most [`MAX_CONFIG_DURATION`](understudy_core::config::MAX_CONFIG_DURATION),
    /// the backoff base at most its cap, and the budget's ratio in
    /// `[0.0, 1.0]`. The error names the setting as its method here does.
    ///
    /// [`RetryLayer`](crate::RetryLayer) does not require it: it clamps what
    /// it must. A configuration read from a file is checked as it is
    /// deserialised.
    ///
    /// ```
    /// use std::time::Duration;
    /// use understudy_retry::RetryConfig;
    ///
    /// let error = RetryConfig::default()
    ///     .base_delay(Duration::from_secs(3))
    ///     .validate()
    ///     .unwrap_err();
    /// assert_eq!(error.to_string(), "base_delay (3s) must not exceed max_delay (2s)");
    /// ```
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.check(&Names::METHODS)
    }

    fn check(&self, names: &Names) -> Result<(), InvalidSetting> {
        if self.max_retries > MAX_RETRIES {
            return Err(InvalidSetting::new(
                "max_retries",
                format!("({}) must be at most {MAX_RETRIES}", self.max_retries),
            ));
        }
        for (key, value) in [
            (names.base_delay, self.base_delay),
            (names.max_delay, self.max_delay),
            (names.max_retry_after, self.max_retry_after),
            ("min_remaining", self.min_remaining),
            ("budget_ttl", self.budget_ttl),
        ] {
            check_duration(key, value)?;
        }
        if self.base_delay > self.max_delay {
            return Err(InvalidSetting::new(
                names.base_delay,
                format!(
                    "({:?}) must not exceed {} ({:?})",
                    self.base_delay, names.max_delay, self.max_delay
                ),
            ));
        }
        if !(self.budget_ratio.is_finite() && (0.0..=1.0).contains(&self.budget_ratio)) {
            return Err(InvalidSetting::new(
                "budget_ratio",
                format!("({}) must be in the range [0.0, 1.0]", self.budget_ratio),
            ));
        }
        Ok(())
    }
}

/// Retry settings that replace some of a base [`RetryConfig`]'s: what a
/// gateway route's `[routes.retry]` holds, over the global `[retry]`. An
/// absent field keeps the base's value; the budget is not among them (it
/// is shared by everything that calls one provider).
///
/// ```
/// use std::time::Duration;
/// use understudy_retry::{RetryConfig, RetryOverrides};
///
/// let global = RetryConfig::default().max_retries(2);
/// let route = RetryOverrides { max_retries: Some(0), ..RetryOverrides::default() };
/// let effective = route.apply(global).unwrap();
/// assert_eq!(effective.get_max_retries(), 0);
///
/// let slow = RetryOverrides { base_delay_ms: Some(5_000), ..RetryOverrides::default() };
/// let error = slow.apply(global).unwrap_err();
/// assert_eq!(error.key(), "base_delay_ms");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct RetryOverrides {
    /// Retries after the first try.
    pub max_retries: Option<u32>,
    /// The first backoff, in milliseconds.
    pub base_delay_ms: Option<u64>,
    /// The longest backoff, in milliseconds.
    pub max_delay_ms: Option<u64>,
    /// The longest `Retry-After` honoured, in milliseconds.
    pub max_retry_after_ms: Option<u64>,
}

impl RetryOverrides {
    /// `base` with these settings in place of its own, checked as a file's
    /// `[retry]` is (the error names the file key).
    pub fn apply(&self, base: RetryConfig) -> Result<RetryConfig, InvalidSetting> {
        let mut config = base;
        if let Some(n) = self.max_retries {
            config = config.max_retries(n);
        }
        if let Some(ms) = self.base_delay_ms {
            config = config.base_delay(Duration::from_millis(ms));
        }
        if let Some(ms) = self.max_delay_ms {
            config = config.max_delay(Duration::from_millis(ms));
        }
        if let Some(ms) = self.max_retry_after_ms {
            config = config.max_retry_after(Duration::from_millis(ms));
        }
        config.check(&Names::FILE)?;
        Ok(config)
    }

    /// Whether no setting is replaced.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What the checks call the settings whose file keys differ from their
/// methods' names.
struct Names {
    base_delay: &'static str,
    max_delay: &'static str,
    max_retry_after: &'static str,
}

impl Names {
    const METHODS: Self = Self {
        base_delay: "base_delay",
        max_delay: "max_delay",
        max_retry_after: "max_retry_after",
    };
    const FILE: Self = Self {
        base_delay: "base_delay_ms",
        max_delay: "max_delay_ms",
        max_retry_after: "max_retry_after_ms",
    };
}

#[cfg(feature = "serde")]
mod file {
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};
    use understudy_core::config::InvalidSetting;

    use super::{Names, RetryConfig};

    /// The file form: the keys a file spells, in its units.
    #[derive(Deserialize)]
    // Expected as the type it becomes.
    #[serde(deny_unknown_fields, default, expecting = "struct RetryConfig")]
    struct RetryFile {
        max_retries: u32,
        base_delay_ms: u64,
        max_delay_ms: u64,
        max_retry_after_ms: u64,
        budget_ratio: f64,
        budget_min_per_sec: u32,
    }

    fn millis(duration: Duration) -> u64 {
        u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
    }

    impl Default for RetryFile {
        fn default() -> Self {
            let config = RetryConfig::default();
            Self {
                max_retries: config.max_retries,
                base_delay_ms: millis(config.base_delay),
                max_delay_ms: millis(config.max_delay),
                max_retry_after_ms: millis(config.max_retry_after),
                budget_ratio: config.budget_ratio,
                budget_min_per_sec: config.budget_min_per_sec,
            }
        }
    }

    impl TryFrom<RetryFile> for RetryConfig {
        type Error = InvalidSetting;

        fn try_from(file: RetryFile) -> Result<Self, InvalidSetting> {
            let config = Self::default()
                .max_retries(file.max_retries)
                .base_delay(Duration::from_millis(file.base_delay_ms))
                .max_delay(Duration::from_millis(file.max_delay_ms))
                .max_retry_after(Duration::from_millis(file.max_retry_after_ms))
                .budget_ratio(file.budget_ratio)
                .budget_min_per_sec(file.budget_min_per_sec);
            config.check(&Names::FILE)?;
            Ok(config)
        }
    }

    impl RetryConfig {
        /// Deserialises a `RetryConfig` and checks it, keeping the two
        /// failures apart: the outer error is the deserialiser's (malformed
        /// input, an unknown key, a value of the wrong type), the inner one
        /// a value out of range, naming its file key, for a caller that
        /// reports it under a path of its own. `Deserialize` is this with
        /// the inner error turned into the outer one. Requires the `serde`
        /// feature.
        ///
        /// ```
        /// use understudy_retry::RetryConfig;
        ///
        /// let checked = RetryConfig::deserialize_checked(
        ///     toml::de::ValueDeserializer::parse("{ base_delay_ms = 5000 }").unwrap(),
        /// )
        /// .unwrap();
        /// let error = checked.unwrap_err();
        /// assert_eq!(error.key(), "base_delay_ms");
        /// assert_eq!(error.problem(), "(5s) must not exceed max_delay_ms (2s)");
        /// ```
        pub fn deserialize_checked<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Result<Self, InvalidSetting>, D::Error> {
            RetryFile::deserialize(deserializer).map(Self::try_from)
        }
    }

    impl<'de> Deserialize<'de> for RetryConfig {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            Self::deserialize_checked(deserializer)?.map_err(D::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RetryConfig;

    #[test]
    fn budget_ratio_keeps_the_window_and_the_floor() {
        let config = RetryConfig::default().budget_ratio(0.5);
        assert!((config.budget_ratio - 0.5).abs() < f64::EPSILON);
        assert_eq!(config.budget_ttl, Duration::from_secs(10));
        assert_eq!(config.budget_min_per_sec, 10);
    }
}
