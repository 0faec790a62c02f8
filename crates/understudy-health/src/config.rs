use std::time::Duration;

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

    /// The sliding window of the failure ratio.
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
    /// recent ejections.
    pub const fn base_ejection(mut self, base: Duration) -> Self {
        self.0.base_ejection = base;
        self
    }

    /// The cap on an ejection's length.
    pub const fn max_ejection(mut self, max: Duration) -> Self {
        self.0.max_ejection = max;
        self
    }

    /// After this long healthy, past ejections are forgotten.
    pub const fn decay_after(mut self, after: Duration) -> Self {
        self.0.decay_after = after;
        self
    }

    /// The cooldown after a 429 that gave no `Retry-After`.
    pub const fn default_cooldown(mut self, cooldown: Duration) -> Self {
        self.0.default_cooldown = cooldown;
        self
    }

    /// Checks the values.
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
        if c.base_ejection.is_zero() || c.base_ejection > c.max_ejection {
            return fail(format!(
                "base_ejection ({:?}) must be greater than 0 and at most max_ejection ({:?})",
                c.base_ejection, c.max_ejection
            ));
        }
        Ok(c)
    }
}
