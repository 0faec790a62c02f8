//! Time arithmetic that cannot overflow.
//!
//! `Instant + Duration` panics when the sum does not fit the clock, and a
//! duration can come from a provider's header or a configuration file. Every
//! deadline, cooldown and ejection end in Understudy is computed here
//! instead, so an absurd duration means "the far future", never a panic.

use std::time::Duration;

use tokio::time::Instant;

/// How far ahead "the far future" is when `instant + duration` does not fit
/// the clock: about thirty years, as tokio uses for a sleep that never ends.
pub const FAR_FUTURE: Duration = Duration::from_hours(24 * 365 * 30);

/// `instant + duration`, or the far future when the sum does not fit.
///
/// The far future is `instant` plus [`FAR_FUTURE`], or plus `duration`
/// itself when that is shorter and fits; if even that overflows (a clock
/// near its end), `instant` plus the largest of a year, a day or an hour
/// that fits, and `instant` itself as the last resort.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use understudy_core::time::{FAR_FUTURE, saturating_add};
///
/// let now = Instant::now();
/// assert_eq!(saturating_add(now, Duration::from_secs(2)), now + Duration::from_secs(2));
/// // `now + Duration::MAX` would panic.
/// assert_eq!(saturating_add(now, Duration::MAX), now + FAR_FUTURE);
/// ```
pub fn saturating_add(instant: Instant, duration: Duration) -> Instant {
    if let Some(sum) = instant.checked_add(duration) {
        return sum;
    }
    [
        FAR_FUTURE,
        Duration::from_hours(24 * 365),
        Duration::from_hours(24),
        Duration::from_hours(1),
    ]
    .into_iter()
    .find_map(|step| instant.checked_add(step.min(duration)))
    .unwrap_or(instant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_what_fits_and_saturates_the_rest() {
        let now = Instant::now();
        assert_eq!(saturating_add(now, Duration::ZERO), now);
        assert_eq!(
            saturating_add(now, Duration::from_millis(1500)),
            now + Duration::from_millis(1500)
        );
        assert_eq!(saturating_add(now, Duration::MAX), now + FAR_FUTURE);
        assert_eq!(
            saturating_add(now, Duration::from_secs(10_000_000_000_000_000_000)),
            now + FAR_FUTURE
        );
        // Saturating twice still does not panic.
        let far = saturating_add(now, Duration::MAX);
        assert!(saturating_add(far, Duration::MAX) >= far);
    }
}
