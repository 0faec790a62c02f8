//! Exponential backoff with full jitter.
//!
//! The wait before retry `n` (1 for the first retry) is drawn uniformly from
//! `[0, min(max_delay, base_delay × 2ⁿ⁻¹))`: AWS's "full jitter", which
//! spreads a burst of clients' retries out instead of synchronising them.
//! (tower's backoff adds jitter on top of the exponential delay instead.)

use std::time::Duration;

/// A source of jitter: a fraction in `[0, 1)` per call. Injectable so tests
/// are deterministic.
pub trait Jitter: Send + Sync {
    /// A fraction in `[0, 1)`.
    fn fraction(&self) -> f64;
}

/// Jitter from the thread-local random generator.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn fraction(&self) -> f64 {
        rand::random::<f64>()
    }
}

impl<F: Fn() -> f64 + Send + Sync> Jitter for F {
    fn fraction(&self) -> f64 {
        self()
    }
}

/// Exponential backoff with full jitter.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use understudy_retry::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).unwrap();
/// // The third retry waits up to 400 ms; a jitter fraction of 0.5 gives 200 ms.
/// assert_eq!(backoff.ceiling(3), Duration::from_millis(400));
/// assert_eq!(backoff.delay(3, &|| 0.5), Duration::from_millis(200));
/// // The ceiling stops growing at the cap.
/// assert_eq!(backoff.ceiling(10), Duration::from_secs(2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

/// A backoff that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid backoff: {0}")]
pub struct InvalidBackoff(String);

impl Backoff {
    /// Backoff from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Result<Self, InvalidBackoff> {
        if base.is_zero() {
            return Err(InvalidBackoff("base delay must be greater than 0".into()));
        }
        if base > max {
            return Err(InvalidBackoff(format!(
                "base delay ({base:?}) must not exceed max delay ({max:?})"
            )));
        }
        Ok(Self { base, max })
    }

    /// Backoff with bounds made valid: the base is at least 1 ms and the cap
    /// at least the base.
    pub(crate) fn clamped(base: Duration, max: Duration) -> Self {
        let base = base.max(Duration::from_millis(1));
        Self {
            base,
            max: max.max(base),
        }
    }

    /// The largest wait before retry `retry` (1-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.base
            .checked_mul(1 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// The wait before retry `retry` (1-based), with full jitter.
    pub fn delay(&self, retry: u32, jitter: &dyn Jitter) -> Duration {
        let fraction = jitter.fraction();
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // `Duration::mul_f64` panics when rounding takes the product past
        // `Duration::MAX`; the product is never more than the ceiling.
        let ceiling = self.ceiling(retry);
        Duration::try_from_secs_f64(ceiling.as_secs_f64() * fraction)
            .map_or(ceiling, |delay| delay.min(ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_bounds() {
        assert!(Backoff::new(Duration::ZERO, Duration::from_secs(1)).is_err());
        let error = Backoff::new(Duration::from_secs(2), Duration::from_secs(1)).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid backoff: base delay (2s)")
        );
    }

    #[test]
    fn random_delays_fall_in_the_jittered_bounds() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).unwrap();
        for retry in 1..=8 {
            let ceiling = backoff.ceiling(retry);
            let delays: Vec<Duration> = (0..500)
                .map(|_| backoff.delay(retry, &RandomJitter))
                .collect();
            assert!(
                delays.iter().all(|d| *d < ceiling || ceiling.is_zero()),
                "retry {retry}"
            );
            // Full jitter spreads over the whole range, not just its top.
            assert!(delays.iter().any(|d| *d < ceiling / 4), "retry {retry}");
            assert!(delays.iter().any(|d| *d > ceiling * 3 / 4), "retry {retry}");
        }
        assert_eq!(backoff.ceiling(1), Duration::from_millis(100));
        assert_eq!(backoff.ceiling(5), Duration::from_millis(1600));
        assert_eq!(backoff.ceiling(6), Duration::from_secs(2));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn the_longest_backoff_does_not_overflow() {
        let backoff = Backoff::new(Duration::MAX, Duration::MAX).unwrap();
        assert_eq!(backoff.ceiling(u32::MAX), Duration::MAX);
        assert_eq!(backoff.delay(1, &|| 1.0), Duration::MAX);
        assert_eq!(backoff.delay(40, &|| 7.0), Duration::MAX);
        assert!(backoff.delay(3, &|| 0.999_999) <= Duration::MAX);
        assert_eq!(backoff.delay(3, &|| 0.0), Duration::ZERO);
    }

    #[test]
    fn odd_jitter_is_clamped() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).unwrap();
        assert_eq!(backoff.delay(1, &|| f64::NAN), Duration::ZERO);
        assert_eq!(backoff.delay(1, &|| 7.0), Duration::from_millis(100));
    }
}
