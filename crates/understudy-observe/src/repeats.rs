//! [`Repeats`]: a log line that every request would write again while
//! nothing changes is written once per window, carrying how many it stands
//! for.
//!
//! While a provider is ejected, each request of its routes skips it and
//! falls back: at full load that was one WARN line per request (tens of
//! thousands a second, and a sixth of the gateway's CPU), each saying what
//! the ejection line already said. The first skip of a `(route, from, to)`
//! is logged as before; the next ones within [`WINDOW`] are only counted
//! (`understudy_fallbacks_total` still counts every one), and the first one
//! after the window is logged with `repeats`: how many skips since the last
//! line were not written.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long repeats of one line are folded into the next.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
/// Distinct lines tracked at once; past it the oldest windows are
/// forgotten (their lines are written again). Routes times targets, in
/// practice a few dozen.
const MAX_TRACKED: usize = 1024;

/// Which repeated lines were written when, and how many were folded since.
#[derive(Debug, Default)]
pub(crate) struct Repeats {
    hasher: RandomState,
    lines: Mutex<HashMap<u64, Line>>,
}

#[derive(Debug)]
struct Line {
    key: [Box<str>; 3],
    written: Instant,
    folded: u64,
}

impl Repeats {
    /// Whether the line for `key` is written now, and if so how many
    /// repeats it stands for (`Some(0)` for the first): `None` when it is
    /// folded into the next.
    pub(crate) fn check(&self, key: [&str; 3], now: Instant) -> Option<u64> {
        let hash = self.hasher.hash_one(key);
        let Ok(mut lines) = self.lines.lock() else {
            return Some(0);
        };
        if let Some(line) = lines.get_mut(&hash)
            && line.key.iter().map(AsRef::as_ref).eq(key)
        {
            if now.saturating_duration_since(line.written) < WINDOW {
                line.folded = line.folded.saturating_add(1);
                return None;
            }
            let folded = line.folded;
            line.written = now;
            line.folded = 0;
            return Some(folded);
        }
        if lines.len() >= MAX_TRACKED {
            lines.retain(|_, line| now.saturating_duration_since(line.written) < WINDOW);
            if lines.len() >= MAX_TRACKED {
                lines.clear();
            }
        }
        lines.insert(
            hash,
            Line {
                key: key.map(Box::from),
                written: now,
                folded: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::{Repeats, WINDOW};
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn a_line_is_written_once_a_window_with_the_repeats_it_stands_for() {
        let repeats = Repeats::default();
        let start = Instant::now();
        let key = ["chat", "primary", "backup"];
        assert_eq!(repeats.check(key, start), Some(0));
        for second in 1..=9 {
            assert_eq!(
                repeats.check(key, start + Duration::from_secs(second)),
                None
            );
        }
        assert_eq!(repeats.check(key, start + WINDOW), Some(9));
        assert_eq!(repeats.check(key, start + WINDOW), None);
        assert_eq!(repeats.check(key, start + WINDOW * 2), Some(1));
    }

    #[test]
    fn each_route_and_pair_has_its_own_window() {
        let repeats = Repeats::default();
        let now = Instant::now();
        assert_eq!(repeats.check(["chat", "a", "b"], now), Some(0));
        assert_eq!(repeats.check(["chat", "a", "c"], now), Some(0));
        assert_eq!(repeats.check(["other", "a", "b"], now), Some(0));
        assert_eq!(repeats.check(["chat", "a", "b"], now), None);
        // Names that run together differently are different lines.
        assert_eq!(repeats.check(["cha", "ta", "b"], now), Some(0));
    }

    #[test]
    fn the_lines_tracked_are_bounded() {
        let repeats = Repeats::default();
        let now = Instant::now();
        for index in 0..super::MAX_TRACKED * 3 {
            let route = index.to_string();
            assert_eq!(repeats.check([&route, "a", "b"], now), Some(0));
        }
        let tracked = repeats.lines.lock().unwrap().len();
        assert!(tracked <= super::MAX_TRACKED, "{tracked}");
    }
}
