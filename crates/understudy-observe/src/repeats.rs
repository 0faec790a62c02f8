//! [`Repeats`]: something that would repeat many times in a short while
//! passes once per window, and says how many repeats it stands for.
//!
//! Two things use it:
//! - [`Alerts`](crate::Alerts): one alert per (kind, subject) per minimum
//!   interval, the next one carrying `suppressed`.
//! - [`Telemetry`](crate::Telemetry)'s `fallback` line past an
//!   unavailable target. While a provider is ejected, each request of its
//!   routes skips it and falls back: at full load that was one WARN line per
//!   request (tens of thousands a second, and a sixth of the gateway's
//!   CPU), each saying what the ejection line already said. The first skip
//!   of a `(route, from, to)` is logged as before; the next ones within
//!   [`SKIP_LINE_WINDOW`] are only counted (`understudy_fallbacks_total`
//!   still counts every one), and the first one after the window is logged
//!   with `repeats`: how many skips since the last line were not written.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How long repeats of one skip line are folded into the next.
pub(crate) const SKIP_LINE_WINDOW: Duration = Duration::from_secs(10);
/// Keys tracked at once; past it the expired windows are forgotten, and if
/// none has expired, all of them (their next one passes again). In
/// practice keys are providers, routes and targets: a few dozen.
const MAX_TRACKED: usize = 1024;

/// Which keys passed when, and how many repeats were held back since.
#[derive(Debug)]
pub(crate) struct Repeats {
    window: Duration,
    hasher: RandomState,
    seen: Mutex<HashMap<u64, Seen>>,
}

#[derive(Debug)]
struct Seen {
    key: Box<[Box<str>]>,
    passed: Instant,
    held: u64,
}

impl Repeats {
    /// One pass per `key` per `window`.
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            hasher: RandomState::new(),
            seen: Mutex::default(),
        }
    }

    /// Whether `key` passes now, and if so how many repeats it stands for
    /// (`Some(0)` for the first): `None` when it is held back and counted
    /// into the next.
    pub(crate) fn check(&self, key: &[&str], now: Instant) -> Option<u64> {
        let hash = self.hasher.hash_one(key);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = seen.get_mut(&hash)
            && entry.key.iter().map(AsRef::as_ref).eq(key.iter().copied())
        {
            if now.saturating_duration_since(entry.passed) < self.window {
                entry.held = entry.held.saturating_add(1);
                return None;
            }
            let held = entry.held;
            entry.passed = now;
            entry.held = 0;
            return Some(held);
        }
        if seen.len() >= MAX_TRACKED {
            seen.retain(|_, entry| now.saturating_duration_since(entry.passed) < self.window);
            if seen.len() >= MAX_TRACKED {
                seen.clear();
            }
        }
        seen.insert(
            hash,
            Seen {
                key: key.iter().map(|part| Box::from(*part)).collect(),
                passed: now,
                held: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_TRACKED, Repeats, SKIP_LINE_WINDOW};
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn a_key_passes_once_a_window_with_the_repeats_it_stands_for() {
        let repeats = Repeats::new(SKIP_LINE_WINDOW);
        let start = Instant::now();
        let key = ["chat", "primary", "backup"];
        assert_eq!(repeats.check(&key, start), Some(0));
        for second in 1..=9 {
            assert_eq!(
                repeats.check(&key, start + Duration::from_secs(second)),
                None
            );
        }
        assert_eq!(repeats.check(&key, start + SKIP_LINE_WINDOW), Some(9));
        assert_eq!(repeats.check(&key, start + SKIP_LINE_WINDOW), None);
        assert_eq!(repeats.check(&key, start + SKIP_LINE_WINDOW * 2), Some(1));
    }

    #[test]
    fn each_key_has_its_own_window() {
        let repeats = Repeats::new(SKIP_LINE_WINDOW);
        let now = Instant::now();
        assert_eq!(repeats.check(&["chat", "a", "b"], now), Some(0));
        assert_eq!(repeats.check(&["chat", "a", "c"], now), Some(0));
        assert_eq!(repeats.check(&["other", "a", "b"], now), Some(0));
        assert_eq!(repeats.check(&["chat", "a", "b"], now), None);
        // Names that run together differently are different keys.
        assert_eq!(repeats.check(&["cha", "ta", "b"], now), Some(0));
        assert_eq!(repeats.check(&["chatab"], now), Some(0));
    }

    #[test]
    fn the_keys_tracked_are_bounded() {
        let repeats = Repeats::new(SKIP_LINE_WINDOW);
        let now = Instant::now();
        for index in 0..MAX_TRACKED * 3 {
            let route = index.to_string();
            assert_eq!(repeats.check(&[&route, "a", "b"], now), Some(0));
        }
        let tracked = repeats.seen.lock().unwrap().len();
        assert!(tracked <= MAX_TRACKED, "{tracked}");
    }
}
