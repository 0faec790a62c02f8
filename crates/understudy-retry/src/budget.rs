//! The retry budget: retries may be at most a share of recent requests.
//!
//! A fixed "retry 3 times" turns a provider's bad minute into four times its
//! load, just when it can least take it: a retry storm. A budget instead lets
//! retries be at most `ratio` of the requests seen over the last `ttl`, plus a
//! small floor of `min_per_sec` retries per second so that a quiet target can
//! still retry. Finagle and linkerd budget retries the same way; tower's
//! `TpsBudget` is the model.
//!
//! Every request deposits one token; every retry withdraws one, if the
//! balance allows. The window is kept in ten slots of `ttl / 10`, so old
//! traffic ages out in steps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

const SLOTS: usize = 10;
/// The slots of the window before the current one.
const OLDER_SLOTS: u64 = SLOTS as u64 - 1;

/// A retry budget shared by every request to one target. Cheap to clone.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use understudy_retry::RetryBudget;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // 20% of requests, no floor.
/// let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.2);
/// for _ in 0..10 {
///     budget.deposit();
/// }
/// assert!(budget.withdraw());
/// assert!(budget.withdraw());
/// assert!(!budget.withdraw()); // 2 retries for 10 requests is the limit
/// assert_eq!(budget.exhausted(), 1);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RetryBudget {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    ttl: Duration,
    slot_len: Duration,
    reserve: f64,
    ratio: f64,
    start: Instant,
    window: Mutex<[Slot; SLOTS]>,
    exhausted: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    epoch: u64,
    deposits: u64,
    withdrawals: u64,
}

impl RetryBudget {
    /// A budget over `ttl`, with a floor of `min_per_sec` retries per second
    /// and retries at most `ratio` of requests. `ratio` is clamped to
    /// `[0, 1000]`; a `ttl` under 10 ms is raised to it.
    pub fn new(ttl: Duration, min_per_sec: u32, ratio: f64) -> Self {
        let ttl = ttl.max(Duration::from_millis(10));
        let ratio = if ratio.is_finite() {
            ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        Self {
            shared: Arc::new(Shared {
                ttl,
                slot_len: ttl
                    .checked_div(u32::try_from(SLOTS).unwrap_or(10))
                    .unwrap_or(ttl),
                reserve: f64::from(min_per_sec) * ttl.as_secs_f64(),
                ratio,
                start: Instant::now(),
                window: Mutex::new([Slot::default(); SLOTS]),
                exhausted: AtomicU64::new(0),
            }),
        }
    }

    /// Records a request.
    pub fn deposit(&self) {
        self.with_current_slot(|_, slot| slot.deposits = slot.deposits.saturating_add(1));
    }

    /// Takes one retry from the budget; `false` (and the exhaustion counted)
    /// when the budget is spent.
    pub fn withdraw(&self) -> bool {
        let allowed = self.with_current_slot(|window, slot| {
            let (deposits, withdrawals) =
                window
                    .iter()
                    .fold((slot.deposits, slot.withdrawals), |(d, w), s| {
                        (
                            d.saturating_add(s.deposits),
                            w.saturating_add(s.withdrawals),
                        )
                    });
            #[allow(clippy::cast_precision_loss)] // counts stay far below 2^52
            let balance =
                deposits as f64 * self.shared.ratio + self.shared.reserve - withdrawals as f64;
            if balance >= 1.0 {
                slot.withdrawals = slot.withdrawals.saturating_add(1);
                true
            } else {
                false
            }
        });
        if !allowed {
            self.shared.exhausted.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// How many retries were refused since the budget was made.
    pub fn exhausted(&self) -> u64 {
        self.shared.exhausted.load(Ordering::Relaxed)
    }

    /// The window retries are measured over.
    pub fn ttl(&self) -> Duration {
        self.shared.ttl
    }

    /// Runs `f` on the other live slots and the current slot. The lock is
    /// held for a few additions: no await, no allocation.
    fn with_current_slot<T>(&self, f: impl FnOnce(&[Slot], &mut Slot) -> T) -> T {
        let elapsed = self.shared.start.elapsed();
        let epoch = elapsed
            .as_nanos()
            .checked_div(self.shared.slot_len.as_nanos().max(1))
            .map_or(u64::MAX, |epoch| u64::try_from(epoch).unwrap_or(u64::MAX));
        let index = epoch
            .checked_rem(SLOTS as u64)
            .and_then(|index| usize::try_from(index).ok())
            .unwrap_or(0);
        let mut window = self
            .shared
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let oldest_live = epoch.saturating_sub(OLDER_SLOTS);
        for slot in window.iter_mut() {
            if slot.epoch < oldest_live || slot.epoch > epoch {
                *slot = Slot {
                    epoch,
                    ..Slot::default()
                };
            }
        }
        if window[index].epoch != epoch {
            window[index] = Slot {
                epoch,
                ..Slot::default()
            };
        }
        let mut current = window[index];
        window[index] = Slot {
            epoch,
            ..Slot::default()
        };
        let result = f(&window[..], &mut current);
        window[index] = current;
        result
    }
}

impl Default for RetryBudget {
    /// 20% of the requests of the last 10 seconds, plus 10 retries a second.
    fn default() -> Self {
        Self::new(Duration::from_secs(10), 10, 0.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn floor_allows_retries_without_traffic() {
        let budget = RetryBudget::new(Duration::from_secs(1), 3, 0.0);
        assert!(budget.withdraw());
        assert!(budget.withdraw());
        assert!(budget.withdraw());
        assert!(!budget.withdraw());
        assert_eq!(budget.exhausted(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn old_traffic_ages_out() {
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.5);
        for _ in 0..10 {
            budget.deposit();
        }
        assert!(budget.withdraw());
        tokio::time::advance(Duration::from_secs(11)).await;
        // The deposits and the withdrawal have left the window.
        assert!(!budget.withdraw());
        budget.deposit();
        budget.deposit();
        assert!(budget.withdraw());
        assert!(!budget.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn withdrawals_in_the_window_count_across_slots() {
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.2);
        for _ in 0..10 {
            budget.deposit();
        }
        assert!(budget.withdraw());
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(budget.withdraw());
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!budget.withdraw());
    }
}
