//! The status board's fixed-size rings: request and failure counts per
//! second over the last minute, and the last samples of a duration with
//! their percentiles. Neither grows, whatever it is fed.

use std::time::Duration;

/// The seconds a [`Minute`] holds.
pub(crate) const WINDOW_SECS: u64 = 60;

/// One second's counts.
#[derive(Clone, Copy, Debug, Default)]
struct Second {
    /// The second these counts are for, or `None` for a slot never used.
    at: Option<u64>,
    requests: u32,
    failures: u32,
}

/// Requests and failures per second, over the last [`WINDOW_SECS`]
/// seconds: one slot per second of the window, reused as time moves on.
#[derive(Clone, Debug)]
pub(crate) struct Minute {
    seconds: [Second; 60],
}

impl Default for Minute {
    fn default() -> Self {
        Self {
            seconds: [Second::default(); 60],
        }
    }
}

impl Minute {
    /// Counts one request at second `now` (seconds from any fixed start),
    /// and a failure if it `failed`.
    pub(crate) fn record(&mut self, now: u64, failed: bool) {
        let index = usize::try_from(now % WINDOW_SECS).unwrap_or(0);
        let Some(slot) = self.seconds.get_mut(index) else {
            return;
        };
        if slot.at != Some(now) {
            *slot = Second {
                at: Some(now),
                ..Second::default()
            };
        }
        slot.requests = slot.requests.saturating_add(1);
        if failed {
            slot.failures = slot.failures.saturating_add(1);
        }
    }

    /// Requests and failures over the [`WINDOW_SECS`] seconds up to and
    /// including second `now`.
    pub(crate) fn totals(&self, now: u64) -> (u32, u32) {
        self.seconds
            .iter()
            .filter(|slot| {
                slot.at
                    .is_some_and(|at| at <= now && now.saturating_sub(at) < WINDOW_SECS)
            })
            .fold((0u32, 0u32), |(requests, failures), slot| {
                (
                    requests.saturating_add(slot.requests),
                    failures.saturating_add(slot.failures),
                )
            })
    }
}

/// The samples a [`Samples`] ring keeps.
pub(crate) const SAMPLES: usize = 200;

/// The last [`SAMPLES`] durations, in microseconds: each new one replaces
/// the oldest.
#[derive(Clone, Debug)]
pub(crate) struct Samples {
    values: [u64; SAMPLES],
    len: usize,
    next: usize,
}

impl Default for Samples {
    fn default() -> Self {
        Self {
            values: [0; SAMPLES],
            len: 0,
            next: 0,
        }
    }
}

impl Samples {
    /// Keeps `sample`, dropping the oldest when full.
    pub(crate) fn push(&mut self, sample: Duration) {
        let micros = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX);
        if let Some(slot) = self.values.get_mut(self.next) {
            *slot = micros;
        }
        self.next = (self.next + 1) % SAMPLES;
        self.len = (self.len + 1).min(SAMPLES);
    }

    /// How many samples are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The samples held, sorted.
    pub(crate) fn sorted(&self) -> Vec<u64> {
        let mut held = self.values.get(..self.len).unwrap_or_default().to_vec();
        held.sort_unstable();
        held
    }
}

/// The `percent`th percentile of `sorted` by nearest rank (the smallest
/// sample at least `percent`% of them do not exceed), in milliseconds;
/// `None` without samples.
pub(crate) fn percentile_ms(sorted: &[u64], percent: usize) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = percent.min(100).saturating_mul(sorted.len()).div_ceil(100);
    let micros = *sorted.get(rank.saturating_sub(1))?;
    // Microseconds to milliseconds, rounded to one microsecond.
    #[allow(clippy::cast_precision_loss)]
    Some(micros as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Minute, SAMPLES, Samples, WINDOW_SECS, percentile_ms};

    #[test]
    fn a_minute_counts_the_last_sixty_seconds_only() {
        let mut minute = Minute::default();
        assert_eq!(minute.totals(0), (0, 0));
        minute.record(0, false);
        minute.record(0, true);
        minute.record(30, true);
        minute.record(59, false);
        assert_eq!(minute.totals(59), (4, 2));
        // Second 0 leaves the window at second 60; its slot is reused.
        assert_eq!(minute.totals(60), (2, 1));
        minute.record(60, false);
        assert_eq!(minute.totals(60), (3, 1));
        assert_eq!(minute.totals(89), (3, 1));
        assert_eq!(minute.totals(90), (2, 0));
        // Long after: nothing is left, however much was recorded.
        for second in 0..1000 {
            minute.record(second, second % 2 == 0);
        }
        assert_eq!(minute.totals(999), (60, 30));
        assert_eq!(minute.totals(999 + WINDOW_SECS), (0, 0));
        // A second ahead of `now` (a clock read late) is not counted yet.
        minute.record(2000, false);
        assert_eq!(minute.totals(1999), (0, 0));
    }

    #[test]
    fn samples_keep_only_the_last_two_hundred() {
        let mut samples = Samples::default();
        assert_eq!(samples.len(), 0);
        assert_eq!(percentile_ms(&samples.sorted(), 50), None);
        for ms in 1..=1000u64 {
            samples.push(Duration::from_millis(ms));
        }
        assert_eq!(samples.len(), SAMPLES);
        let sorted = samples.sorted();
        assert_eq!(sorted.first(), Some(&801_000));
        assert_eq!(sorted.last(), Some(&1_000_000));
    }

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let mut samples = Samples::default();
        // 1 ms to 100 ms, pushed out of order.
        for ms in (1..=100u64).rev() {
            samples.push(Duration::from_millis(ms));
        }
        let sorted = samples.sorted();
        assert_eq!(percentile_ms(&sorted, 50), Some(50.0));
        assert_eq!(percentile_ms(&sorted, 95), Some(95.0));
        assert_eq!(percentile_ms(&sorted, 100), Some(100.0));
        assert_eq!(percentile_ms(&sorted, 0), Some(1.0));

        let one = [2_500];
        assert_eq!(percentile_ms(&one, 50), Some(2.5));
        assert_eq!(percentile_ms(&one, 95), Some(2.5));
        // Three samples: the median is the middle one, p95 the largest.
        let three = [1_000, 2_000, 30_000];
        assert_eq!(percentile_ms(&three, 50), Some(2.0));
        assert_eq!(percentile_ms(&three, 95), Some(30.0));
    }
}
