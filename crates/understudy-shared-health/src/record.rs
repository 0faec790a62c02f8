//! The record of one decision, as it is stored under a provider's key and
//! published on the channel, and its conversions: from a local
//! [`HealthEvent`], and to a [`RemoteDecision`] on another replica.
//!
//! A record is a small JSON object:
//!
//! ```json
//! {"provider":"openai","kind":"ejected","until_ms":1767225600000,
//!  "at_ms":1767225590000,"reason":"consecutive_failures","replica":"gw-1"}
//! ```
//!
//! - `kind`: `ejected`, `cooling_down` or `restored`;
//! - `until_ms`: when an ejection or cooldown ends, in Unix milliseconds
//!   (`null` for a restoration);
//! - `at_ms`: when the decision was made, in Unix milliseconds (a
//!   restoration ends only ejections older than it);
//! - `reason`: why it was ejected (`consecutive_failures`, `failure_ratio`,
//!   `probe_failed`), else `null`;
//! - `replica`: the id of the replica that decided.
//!
//! Unknown fields are ignored, so a newer replica may add some. Times cross
//! replicas as wall-clock milliseconds: clocks kept within a few tens of
//! milliseconds of each other (NTP) are assumed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use understudy_core::time::saturating_add;
use understudy_health::{
    EjectionReason, HealthEvent, HealthEventKind, MAX_HEALTH_DURATION, RemoteDecision,
};

use crate::config::MAX_NAME_BYTES;

/// The longest record read, in bytes: anything longer is garbage.
pub(crate) const MAX_RECORD_BYTES: usize = 2048;

/// What was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Ejected,
    CoolingDown,
    Restored,
}

/// One decision, as stored and published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) provider: String,
    pub(crate) kind: Kind,
    pub(crate) until_ms: Option<u64>,
    pub(crate) at_ms: u64,
    #[serde(default)]
    pub(crate) reason: Option<String>,
    pub(crate) replica: String,
}

/// What a record read from the store means here.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reading {
    /// A decision to apply.
    Apply {
        provider: String,
        decision: RemoteDecision,
    },
    /// This replica's own record.
    Own,
    /// A decision whose time has passed.
    Over,
    /// Not a record.
    Garbage,
}

impl Record {
    /// The record of a decision this replica made, if `event` is one that
    /// travels (an ejection, a failed trial, a cooldown, a restoration)
    /// and is still in force.
    pub(crate) fn of_event(event: &HealthEvent, replica: &str, clock: Clock) -> Option<Self> {
        let (kind, reason) = match event.kind {
            HealthEventKind::Ejected(reason) => (Kind::Ejected, Some(reason)),
            HealthEventKind::ProbeFailed => (Kind::Ejected, Some(EjectionReason::ProbeFailed)),
            HealthEventKind::CoolingDown => (Kind::CoolingDown, None),
            HealthEventKind::Restored => (Kind::Restored, None),
            _ => return None,
        };
        let until_ms = match kind {
            Kind::Restored => None,
            Kind::Ejected | Kind::CoolingDown => {
                let remaining = event.until?.saturating_duration_since(clock.now);
                if remaining.is_zero() {
                    return None;
                }
                Some(clock.unix_ms.saturating_add(millis(remaining)))
            }
        };
        Some(Self {
            provider: event.provider.to_string(),
            kind,
            until_ms,
            at_ms: clock.unix_ms,
            reason: reason.map(|r| r.as_str().to_owned()),
            replica: replica.to_owned(),
        })
    }

    /// The record as stored and published.
    pub(crate) fn encode(&self) -> Vec<u8> {
        // A struct of strings and integers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// How long the key of this record should live from `unix_ms`: the
    /// rest of an ejection or cooldown, `restored_ttl` for a restoration;
    /// `None` when it is over.
    pub(crate) fn ttl(&self, unix_ms: u64, restored_ttl: Duration) -> Option<u64> {
        let until = match self.kind {
            Kind::Restored => self.at_ms.saturating_add(millis(restored_ttl)),
            Kind::Ejected | Kind::CoolingDown => self.until_ms?,
        };
        let left = until.checked_sub(unix_ms)?;
        (left > 0).then_some(left)
    }

    /// Reads `bytes` found in the store. `key_provider` is the provider
    /// named by the key it was found under, if any: a record under another
    /// provider's key is garbage.
    pub(crate) fn read(
        bytes: &[u8],
        key_provider: Option<&str>,
        replica: &str,
        clock: Clock,
    ) -> Reading {
        if bytes.len() > MAX_RECORD_BYTES {
            return Reading::Garbage;
        }
        let Ok(record) = serde_json::from_slice::<Self>(bytes) else {
            return Reading::Garbage;
        };
        let named = |name: &str| !name.is_empty() && name.len() <= MAX_NAME_BYTES;
        if !named(&record.provider)
            || !named(&record.replica)
            || key_provider.is_some_and(|provider| provider != record.provider)
        {
            return Reading::Garbage;
        }
        if record.replica == replica {
            return Reading::Own;
        }
        let decision = match record.kind {
            Kind::Ejected | Kind::CoolingDown => {
                let Some(until_ms) = record.until_ms else {
                    return Reading::Garbage;
                };
                let Some(left) = until_ms.checked_sub(clock.unix_ms).filter(|&ms| ms > 0) else {
                    return Reading::Over;
                };
                // No store can keep a provider out longer than any local
                // setting could.
                let left = Duration::from_millis(left).min(MAX_HEALTH_DURATION);
                let until = saturating_add(clock.now, left);
                if record.kind == Kind::CoolingDown {
                    RemoteDecision::CoolingDown { until }
                } else {
                    let reason = match record.reason.as_deref() {
                        Some("failure_ratio") => EjectionReason::FailureRatio,
                        Some("probe_failed") => EjectionReason::ProbeFailed,
                        // `consecutive_failures`, and reasons of newer
                        // replicas this one does not know: the ejection
                        // still holds.
                        _ => EjectionReason::ConsecutiveFailures,
                    };
                    RemoteDecision::Ejected { until, reason }
                }
            }
            Kind::Restored => {
                // A restoration from the future (a clock ahead) is taken as
                // now; one older than this process's clock can say is
                // older than any ejection here.
                let age = clock.unix_ms.saturating_sub(record.at_ms);
                let Some(at) = clock.now.checked_sub(Duration::from_millis(age)) else {
                    return Reading::Over;
                };
                RemoteDecision::Restored { at }
            }
        };
        Reading::Apply {
            provider: record.provider,
            decision,
        }
    }
}

/// The same moment on both clocks: the monotonic one decisions are applied
/// with, and the wall clock records carry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    pub(crate) now: Instant,
    pub(crate) unix_ms: u64,
}

impl Clock {
    pub(crate) fn now() -> Self {
        Self {
            now: Instant::now(),
            unix_ms: unix_ms(),
        }
    }
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// Whole milliseconds, rounded up, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    let ms = duration.as_millis();
    let rounded = if duration.subsec_nanos().is_multiple_of(1_000_000) {
        ms
    } else {
        ms.saturating_add(1)
    };
    u64::try_from(rounded).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

    use std::sync::Arc;

    use understudy_core::ProviderState;
    use understudy_health::Origin;

    use super::*;

    const NOW_MS: u64 = 1_767_225_600_000;

    fn clock() -> Clock {
        Clock {
            now: Instant::now(),
            unix_ms: NOW_MS,
        }
    }

    fn event(kind: HealthEventKind, until: Option<Duration>, clock: Clock) -> HealthEvent {
        HealthEvent {
            provider: Arc::from("openai"),
            kind,
            from: ProviderState::Healthy,
            to: ProviderState::Ejected,
            until: until.map(|d| clock.now + d),
            origin: Origin::Local,
        }
    }

    #[test]
    fn an_ejection_reads_back_as_the_same_decision() {
        let clock = clock();
        let ejected = event(
            HealthEventKind::Ejected(EjectionReason::FailureRatio),
            Some(Duration::from_secs(30)),
            clock,
        );
        let record = Record::of_event(&ejected, "a", clock).unwrap();
        assert_eq!(record.until_ms, Some(NOW_MS + 30_000));
        assert_eq!(
            record.ttl(NOW_MS + 10_000, Duration::from_mins(1)),
            Some(20_000)
        );
        let json = String::from_utf8(record.encode()).unwrap();
        assert!(json.contains(r#""kind":"ejected""#), "{json}");
        assert!(json.contains(r#""reason":"failure_ratio""#), "{json}");
        let reading = Record::read(json.as_bytes(), Some("openai"), "b", clock);
        assert_eq!(
            reading,
            Reading::Apply {
                provider: "openai".into(),
                decision: RemoteDecision::Ejected {
                    until: clock.now + Duration::from_secs(30),
                    reason: EjectionReason::FailureRatio,
                },
            }
        );
        // The replica's own record, and one under another provider's key.
        assert_eq!(
            Record::read(json.as_bytes(), None, "a", clock),
            Reading::Own
        );
        assert_eq!(
            Record::read(json.as_bytes(), Some("anthropic"), "b", clock),
            Reading::Garbage
        );
    }

    #[test]
    fn a_failed_trial_travels_as_an_ejection_and_counting_does_not_travel() {
        let clock = clock();
        let failed = event(
            HealthEventKind::ProbeFailed,
            Some(Duration::from_secs(5)),
            clock,
        );
        let record = Record::of_event(&failed, "a", clock).unwrap();
        assert_eq!(record.kind, Kind::Ejected);
        assert_eq!(record.reason.as_deref(), Some("probe_failed"));
        for kind in [HealthEventKind::CooledDown, HealthEventKind::ProbeStarted] {
            assert!(Record::of_event(&event(kind, None, clock), "a", clock).is_none());
        }
    }

    #[test]
    fn a_restoration_keeps_its_age() {
        let clock = clock();
        let restored = Record {
            provider: "openai".into(),
            kind: Kind::Restored,
            until_ms: None,
            at_ms: NOW_MS - 1_500,
            reason: None,
            replica: "a".into(),
        };
        assert_eq!(restored.ttl(NOW_MS, Duration::from_mins(1)), Some(58_500));
        let Reading::Apply {
            decision: RemoteDecision::Restored { at },
            ..
        } = Record::read(&restored.encode(), None, "b", clock)
        else {
            panic!("not a restoration");
        };
        assert_eq!(clock.now.duration_since(at), Duration::from_millis(1_500));
    }

    #[test]
    fn garbage_and_past_decisions_are_told_apart() {
        let clock = clock();
        for garbage in [
            &b"not json"[..],
            b"{}",
            b"[1,2,3]",
            br#"{"provider":"openai","kind":"exploded","until_ms":1,"at_ms":1,"replica":"a"}"#,
            br#"{"provider":"openai","kind":"ejected","until_ms":null,"at_ms":1,"replica":"a"}"#,
            br#"{"provider":"","kind":"restored","until_ms":null,"at_ms":1,"replica":"a"}"#,
            br#"{"provider":"openai","kind":"restored","until_ms":null,"at_ms":-1,"replica":"a"}"#,
            &[0xff, 0xfe, 0x00],
        ] {
            assert_eq!(Record::read(garbage, None, "b", clock), Reading::Garbage);
        }
        let long = vec![b' '; MAX_RECORD_BYTES + 1];
        assert_eq!(Record::read(&long, None, "b", clock), Reading::Garbage);
        let over = format!(
            r#"{{"provider":"openai","kind":"cooling_down","until_ms":{},"at_ms":1,"replica":"a"}}"#,
            NOW_MS - 1
        );
        assert_eq!(
            Record::read(over.as_bytes(), None, "b", clock),
            Reading::Over
        );
    }

    #[test]
    fn a_far_future_is_clamped_to_the_longest_setting() {
        let clock = clock();
        let far = format!(
            r#"{{"provider":"openai","kind":"cooling_down","until_ms":{},"at_ms":1,"reason":null,"replica":"a","extra":true}}"#,
            u64::MAX
        );
        assert_eq!(
            Record::read(far.as_bytes(), None, "b", clock),
            Reading::Apply {
                provider: "openai".into(),
                decision: RemoteDecision::CoolingDown {
                    until: clock.now + MAX_HEALTH_DURATION
                },
            }
        );
    }

    #[test]
    fn millis_round_up() {
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_millis(7)), 7);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
