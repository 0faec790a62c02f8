//! Deadlines that cannot overflow the clock.

use std::time::Duration;

use tokio::time::Instant;

/// About thirty years: "never" for a deadline.
const FAR: Duration = Duration::from_hours(30 * 365 * 24);

/// `instant + duration`, saturating at a far-future instant instead of
/// panicking on overflow.
pub fn after(instant: Instant, duration: Duration) -> Instant {
    instant
        .checked_add(duration)
        .or_else(|| instant.checked_add(FAR))
        .unwrap_or(instant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_saturate() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(after(now, Duration::MAX) > now + Duration::from_hours(365 * 24));
    }
}
