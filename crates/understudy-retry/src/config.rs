use std::time::Duration;

use crate::budget::RetryBudget;

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
