use std::time::Duration;

/// The longest an ejection, its cap, the failure-ratio window, the decay
/// period or the default cooldown may be: one day. Longer values are
/// refused by [`HealthConfigBuilder::build`]; a provider out for more than a
/// day is a configuration mistake, and such durations would otherwise
/// overflow the clock.
pub const MAX_HEALTH_DURATION: Duration = Duration::from_hours(24);

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
}

impl Default for HealthConfig {
    /// 5 consecutive failures, or a failure ratio of 0.5 over 30 s once 20
    /// requests were seen; ejections of 30 s × recent ejections, capped at
    /// 300 s; the ejection count forgotten after 300 s healthy; a 429 without
    /// a wait cools down 1 s; no slow threshold.
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
        }
    }
}

impl HealthConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> HealthConfigBuilder {
        HealthConfigBuilder(Self::default())
    }

    /// Consecutive provider failures that eject.
    pub const fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
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

/// A [`HealthConfig`] value out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HealthConfigError(String);

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

    /// Checks the values: every duration is at most
    /// [`MAX_HEALTH_DURATION`], the window at least 10 ms, the base ejection
    /// greater than 0 and at most the cap.
    pub fn build(self) -> Result<HealthConfig, HealthConfigError> {
        let c = self.0;
        let fail = |message: String| Err(HealthConfigError(message));
        if c.consecutive_failures == 0 {
            return fail("consecutive_failures (0) must be at least 1".into());
        }
        if !(c.failure_ratio.is_finite() && c.failure_ratio > 0.0 && c.failure_ratio <= 1.0) {
            return fail(format!(
                "failure_ratio ({}) must be finite and in the range (0.0, 1.0]",
                c.failure_ratio
            ));
        }
        if c.window < Duration::from_millis(10) {
            return fail(format!("window ({:?}) must be at least 10ms", c.window));
        }
        for (name, value, min) in [
            ("base_ejection", c.base_ejection, Duration::from_nanos(1)),
            ("max_ejection", c.max_ejection, Duration::from_nanos(1)),
            ("window", c.window, Duration::from_millis(10)),
            ("decay_after", c.decay_after, Duration::ZERO),
            ("default_cooldown", c.default_cooldown, Duration::ZERO),
        ] {
            // Values under the minimum have their own messages.
            if value > MAX_HEALTH_DURATION {
                return fail(format!(
                    "{name} ({value:?}) must be in the range [{min:?}, {MAX_HEALTH_DURATION:?}]"
                ));
            }
        }
        if c.base_ejection.is_zero() || c.base_ejection > c.max_ejection {
            return fail(format!(
                "base_ejection ({:?}) must be greater than 0 and at most max_ejection ({:?})",
                c.base_ejection, c.max_ejection
            ));
        }
        Ok(c)
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
