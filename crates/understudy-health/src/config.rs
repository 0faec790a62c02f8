use std::time::Duration;

use understudy_core::config::{InvalidSetting, MAX_CONFIG_DURATION};

/// The longest an ejection, its cap, the failure-ratio window, the decay
/// period, the default cooldown or the probe interval may be: one day
/// ([`MAX_CONFIG_DURATION`]). Longer values are refused by
/// [`HealthConfigBuilder::build`]; a provider out for more than a day is a
/// configuration mistake, and such durations would otherwise overflow the
/// clock.
pub const MAX_HEALTH_DURATION: Duration = MAX_CONFIG_DURATION;

/// When a provider is ejected, and for how long. Built with
/// [`HealthConfig::builder`].
///
/// ```
/// use std::time::Duration;
/// use understudy_health::HealthConfig;
///
/// let config = HealthConfig::builder()
///     .consecutive_failures(3)
///     .base_ejection(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert_eq!(config.consecutive_failures(), 3);
///
/// let error = HealthConfig::builder().failure_ratio(1.5).build().unwrap_err();
/// assert_eq!(error.to_string(), "failure_ratio (1.5) must be finite and in the range (0.0, 1.0]");
///
/// // Durations are at most a day.
/// let error = HealthConfig::builder()
///     .base_ejection(Duration::from_secs(9_223_372_036_854_775_807))
///     .build()
///     .unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "base_ejection (9223372036854775807s) must be in the range [1ns, 86400s]",
/// );
/// ```
///
/// # Deserialising
///
/// With the `serde` feature, a `HealthConfig` deserialises from a map with
/// the keys `consecutive_failures`, `failure_ratio`, `min_requests`,
/// `window_secs`, `base_ejection_secs`, `max_ejection_secs` and
/// `probe_interval_secs` (0 turns probing off); each is optional (the
/// [`Default`] fills it in), any other key is an error, and the values are
/// checked as [`HealthConfigBuilder::build`] checks them, the error naming
/// the file's key. The slow threshold, the decay period and the default
/// cooldown keep their defaults.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use std::time::Duration;
/// use understudy_health::HealthConfig;
///
/// let config: HealthConfig = toml::from_str(
///     "consecutive_failures = 3\n\
///      window_secs = 60\n\
///      probe_interval_secs = 0\n",
/// )
/// .unwrap();
/// assert_eq!(config.consecutive_failures(), 3);
/// assert_eq!(config.probe_interval(), None);
///
/// let error = toml::from_str::<HealthConfig>("max_ejection_secs = 86401").unwrap_err();
/// assert!(error.message().starts_with("max_ejection_secs (86401s) must be"));
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthConfig {
    pub(crate) consecutive_failures: u32,
    pub(crate) failure_ratio: f64,
    pub(crate) min_requests: u32,
    pub(crate) window: Duration,
    pub(crate) slow_threshold: Option<Duration>,
    pub(crate) base_ejection: Duration,
    pub(crate) max_ejection: Duration,
    pub(crate) decay_after: Duration,
    pub(crate) default_cooldown: Duration,
    pub(crate) probe_interval: Option<Duration>,
}

impl Default for HealthConfig {
    /// 5 consecutive failures, or a failure ratio of 0.5 over 30 s once 20
    /// requests were seen; ejections of 30 s × recent ejections, capped at
    /// 300 s; the ejection count forgotten after 300 s healthy; a 429 without
    /// a wait cools down 1 s; no slow threshold; probes every 10 s.
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            min_requests: 20,
            window: Duration::from_secs(30),
            slow_threshold: None,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_mins(5),
            decay_after: Duration::from_mins(5),
            default_cooldown: Duration::from_secs(1),
            probe_interval: Some(Duration::from_secs(10)),
        }
    }
}

impl HealthConfig {
    /// The keys a `[health]` table may hold when deserialised (with the
    /// `serde` feature), in order.
    pub const KEYS: &'static [&'static str] = &[
        "consecutive_failures",
        "failure_ratio",
        "min_requests",
        "window_secs",
        "base_ejection_secs",
        "max_ejection_secs",
        "probe_interval_secs",
    ];

    /// A builder starting from the defaults.
    pub fn builder() -> HealthConfigBuilder {
        HealthConfigBuilder(Self::default())
    }

    /// Consecutive provider failures that eject.
    pub const fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The interval at which to probe an ejected provider, for
    /// [`HealthRegistry::spawn_prober`](crate::HealthRegistry::spawn_prober);
    /// `None` when active probing is off. The registry itself does not
    /// probe: whoever spawns the probers reads it here.
    pub const fn probe_interval(&self) -> Option<Duration> {
        self.probe_interval
    }
}

/// Builds a [`HealthConfig`], checking its values.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use understudy_health::HealthConfig;
///
/// let config = HealthConfig::builder()
///     .consecutive_failures(3)
///     .base_ejection(Duration::from_secs(10))
///     .max_ejection(Duration::from_secs(300))
///     .build()
///     .unwrap();
/// assert_eq!(config.consecutive_failures(), 3);
///
/// // A cap below the base is refused, not silently raised.
/// let refused = HealthConfig::builder()
///     .base_ejection(Duration::from_secs(60))
///     .max_ejection(Duration::from_secs(10))
///     .build();
/// assert!(refused.is_err());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct HealthConfigBuilder(HealthConfig);

/// A [`HealthConfig`] value out of range, naming the setting (the builder
/// method, or the file's key when deserialised).
pub type HealthConfigError = InvalidSetting;

impl HealthConfigBuilder {
    /// Consecutive provider failures that eject (at least 1).
    pub const fn consecutive_failures(mut self, n: u32) -> Self {
        self.0.consecutive_failures = n;
        self
    }

    /// The failure ratio over the window that ejects, in `(0, 1]`.
    pub const fn failure_ratio(mut self, ratio: f64) -> Self {
        self.0.failure_ratio = ratio;
        self
    }

    /// Requests the window must hold before the ratio counts.
    pub const fn min_requests(mut self, n: u32) -> Self {
        self.0.min_requests = n;
        self
    }

    /// The sliding window of the failure ratio, from 10 ms to
    /// [`MAX_HEALTH_DURATION`].
    pub const fn window(mut self, window: Duration) -> Self {
        self.0.window = window;
        self
    }

    /// A success slower than this (time to the response) counts as a
    /// failure.
    pub const fn slow_threshold(mut self, threshold: Duration) -> Self {
        self.0.slow_threshold = Some(threshold);
        self
    }

    /// The first ejection's length; later ones are this times the number of
    /// recent ejections. At most [`MAX_HEALTH_DURATION`].
    pub const fn base_ejection(mut self, base: Duration) -> Self {
        self.0.base_ejection = base;
        self
    }

    /// The cap on an ejection's length. At most [`MAX_HEALTH_DURATION`].
    pub const fn max_ejection(mut self, max: Duration) -> Self {
        self.0.max_ejection = max;
        self
    }

    /// After this long healthy, past ejections are forgotten. At most
    /// [`MAX_HEALTH_DURATION`].
    pub const fn decay_after(mut self, after: Duration) -> Self {
        self.0.decay_after = after;
        self
    }

    /// The cooldown after a 429 that gave no `Retry-After`. At most
    /// [`MAX_HEALTH_DURATION`].
    pub const fn default_cooldown(mut self, cooldown: Duration) -> Self {
        self.0.default_cooldown = cooldown;
        self
    }

    /// The interval at which to probe an ejected provider (see
    /// [`HealthConfig::probe_interval`]), greater than 0 and at most
    /// [`MAX_HEALTH_DURATION`]; `None` turns active probing off.
    pub const fn probe_interval(mut self, interval: Option<Duration>) -> Self {
        self.0.probe_interval = interval;
        self
    }

    /// Checks the values: every duration is at most
    /// [`MAX_HEALTH_DURATION`], the window at least 10 ms, the base ejection
    /// greater than 0 and at most the cap, a probe interval greater than 0.
    pub fn build(self) -> Result<HealthConfig, HealthConfigError> {
        self.0.check(&Names::METHODS)?;
        Ok(self.0)
    }
}

/// What the checks call the settings whose file keys differ from their
/// methods' names.
struct Names {
    window: &'static str,
    base_ejection: &'static str,
    max_ejection: &'static str,
    probe_interval: &'static str,
}

impl Names {
    const METHODS: Self = Self {
        window: "window",
        base_ejection: "base_ejection",
        max_ejection: "max_ejection",
        probe_interval: "probe_interval",
    };
    #[cfg(feature = "serde")]
    const FILE: Self = Self {
        window: "window_secs",
        base_ejection: "base_ejection_secs",
        max_ejection: "max_ejection_secs",
        probe_interval: "probe_interval_secs",
    };
}

impl HealthConfig {
    fn check(&self, names: &Names) -> Result<(), HealthConfigError> {
        let fail = |key: &'static str, problem: String| Err(InvalidSetting::new(key, problem));
        if self.consecutive_failures == 0 {
            return fail("consecutive_failures", "(0) must be at least 1".into());
        }
        if !(self.failure_ratio.is_finite()
            && self.failure_ratio > 0.0
            && self.failure_ratio <= 1.0)
        {
            return fail(
                "failure_ratio",
                format!(
                    "({}) must be finite and in the range (0.0, 1.0]",
                    self.failure_ratio
                ),
            );
        }
        if self.window < Duration::from_millis(10) {
            return fail(
                names.window,
                format!("({:?}) must be at least 10ms", self.window),
            );
        }
        let probe_interval = self.probe_interval.unwrap_or(Duration::from_secs(1));
        for (name, value, min) in [
            (
                names.base_ejection,
                self.base_ejection,
                Duration::from_nanos(1),
            ),
            (
                names.max_ejection,
                self.max_ejection,
                Duration::from_nanos(1),
            ),
            (names.window, self.window, Duration::from_millis(10)),
            ("decay_after", self.decay_after, Duration::ZERO),
            ("default_cooldown", self.default_cooldown, Duration::ZERO),
            (
                names.probe_interval,
                probe_interval,
                Duration::from_nanos(1),
            ),
        ] {
            // Values under the minimum have their own messages.
            if value > MAX_HEALTH_DURATION {
                return fail(
                    name,
                    format!("({value:?}) must be in the range [{min:?}, {MAX_HEALTH_DURATION:?}]"),
                );
            }
        }
        if self.base_ejection.is_zero() || self.base_ejection > self.max_ejection {
            return fail(
                names.base_ejection,
                format!(
                    "({:?}) must be greater than 0 and at most {} ({:?})",
                    self.base_ejection, names.max_ejection, self.max_ejection
                ),
            );
        }
        if probe_interval.is_zero() {
            return fail(
                names.probe_interval,
                "must be greater than 0 (`None` turns probing off)".into(),
            );
        }
        Ok(())
    }
}

#[cfg(feature = "serde")]
mod file {
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    use super::{HealthConfig, HealthConfigError, Names};

    /// The file form: the keys a file spells, in its units.
    #[derive(Deserialize)]
    // Expected as the type it becomes.
    #[serde(deny_unknown_fields, default, expecting = "struct HealthConfig")]
    // Keep `HealthConfig::KEYS` in step.
    struct HealthFile {
        consecutive_failures: u32,
        failure_ratio: f64,
        min_requests: u32,
        window_secs: u64,
        base_ejection_secs: u64,
        max_ejection_secs: u64,
        /// 0 turns probing off.
        probe_interval_secs: u64,
    }

    impl Default for HealthFile {
        fn default() -> Self {
            let config = HealthConfig::default();
            Self {
                consecutive_failures: config.consecutive_failures,
                failure_ratio: config.failure_ratio,
                min_requests: config.min_requests,
                window_secs: config.window.as_secs(),
                base_ejection_secs: config.base_ejection.as_secs(),
                max_ejection_secs: config.max_ejection.as_secs(),
                probe_interval_secs: config.probe_interval.map_or(0, |i| i.as_secs()),
            }
        }
    }

    impl TryFrom<HealthFile> for HealthConfig {
        type Error = HealthConfigError;

        fn try_from(file: HealthFile) -> Result<Self, HealthConfigError> {
            let config = Self {
                consecutive_failures: file.consecutive_failures,
                failure_ratio: file.failure_ratio,
                min_requests: file.min_requests,
                window: Duration::from_secs(file.window_secs),
                base_ejection: Duration::from_secs(file.base_ejection_secs),
                max_ejection: Duration::from_secs(file.max_ejection_secs),
                probe_interval: (file.probe_interval_secs > 0)
                    .then(|| Duration::from_secs(file.probe_interval_secs)),
                ..Self::default()
            };
            config.check(&Names::FILE)?;
            Ok(config)
        }
    }

    impl HealthConfig {
        /// Deserialises a `HealthConfig` and checks it, keeping the two
        /// failures apart: the outer error is the deserialiser's (malformed
        /// input, an unknown key, a value of the wrong type), the inner one
        /// a value out of range, naming its file key, for a caller that
        /// reports it under a path of its own. `Deserialize` is this with
        /// the inner error turned into the outer one. Requires the `serde`
        /// feature.
        ///
        /// ```
        /// use understudy_health::HealthConfig;
        ///
        /// let checked = HealthConfig::deserialize_checked(
        ///     toml::de::ValueDeserializer::parse("{ failure_ratio = 1.5 }").unwrap(),
        /// )
        /// .unwrap();
        /// let error = checked.unwrap_err();
        /// assert_eq!(error.key(), "failure_ratio");
        /// assert_eq!(error.problem(), "(1.5) must be finite and in the range (0.0, 1.0]");
        /// ```
        pub fn deserialize_checked<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Result<Self, HealthConfigError>, D::Error> {
            HealthFile::deserialize(deserializer).map(Self::try_from)
        }
    }

    impl<'de> Deserialize<'de> for HealthConfig {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            Self::deserialize_checked(deserializer)?.map_err(D::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_durations_are_refused_with_the_value_and_the_range() {
        let huge = Duration::from_secs(9_223_372_036_854_775_807);
        let error = HealthConfig::builder()
            .base_ejection(huge)
            .max_ejection(huge)
            .build()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "base_ejection (9223372036854775807s) must be in the range [1ns, 86400s]"
        );
        let error = HealthConfig::builder()
            .max_ejection(Duration::MAX)
            .build()
            .unwrap_err();
        assert!(error.to_string().starts_with("max_ejection ("), "{error}");
        for builder in [
            HealthConfig::builder().window(huge),
            HealthConfig::builder().decay_after(huge),
            HealthConfig::builder().default_cooldown(huge),
        ] {
            let error = builder.build().unwrap_err();
            assert!(error.to_string().contains("86400s]"), "{error}");
        }
        // A day is allowed.
        let day = HealthConfig::builder()
            .base_ejection(MAX_HEALTH_DURATION)
            .max_ejection(MAX_HEALTH_DURATION)
            .window(MAX_HEALTH_DURATION)
            .decay_after(MAX_HEALTH_DURATION)
            .default_cooldown(MAX_HEALTH_DURATION)
            .build();
        assert!(day.is_ok());
        // The existing messages are unchanged.
        let error = HealthConfig::builder()
            .window(Duration::from_millis(1))
            .build()
            .unwrap_err();
        assert_eq!(error.to_string(), "window (1ms) must be at least 10ms");
    }
}
