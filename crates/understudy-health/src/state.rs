//! The per-provider state machine: healthy, cooling down, ejected, probing,
//! and the sliding window of outcomes that decides between them.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use understudy_core::events::{Event, StateChangeReason};
use understudy_core::time::saturating_add;
use understudy_core::{FailureKind, Outcome, ProviderState, Unavailable, UnavailableKind};

use crate::config::HealthConfig;
use crate::events::{EjectionReason, HealthEvent, HealthEventKind, Origin};
use crate::registry::HealthRegistry;

const BUCKETS: usize = 10;

/// This replica may take the half-open trial.
pub(crate) const TRIAL_OPEN: u8 = 0;
/// Trials are shared and the lease is not decided yet: no trial here.
pub(crate) const TRIAL_PENDING: u8 = 1;
/// Another replica holds the trial lease.
pub(crate) const TRIAL_ELSEWHERE: u8 = 2;
/// The buckets of the window before the current one.
const OLDER_BUCKETS: u64 = BUCKETS as u64 - 1;

/// One provider's state.
pub(crate) struct Entry {
    pub(crate) name: Arc<str>,
    /// True exactly when the provider is healthy: the lock-free fast path.
    pub(crate) healthy: AtomicBool,
    /// The half-open trial slot.
    pub(crate) trial: AtomicBool,
    /// Who may take the half-open trial: this replica ([`TRIAL_OPEN`]), or,
    /// when trials are shared across replicas, nobody until the lease is
    /// decided ([`TRIAL_PENDING`]) or another replica ([`TRIAL_ELSEWHERE`]).
    pub(crate) trial_gate: AtomicU8,
    state: Mutex<State>,
}

pub(crate) struct State {
    pub(crate) mode: Mode,
    pub(crate) consecutive: u32,
    buckets: [Bucket; BUCKETS],
    pub(crate) ejections: u32,
    healthy_since: Instant,
    pub(crate) ewma_ms: Option<f64>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    Healthy,
    CoolingDown {
        until: Instant,
    },
    Ejected {
        until: Instant,
        reason: EjectionReason,
        /// When the ejection began: a restoration reported by another
        /// replica ends it only if it is newer.
        since: Instant,
    },
    Probing,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    epoch: u64,
    ok: u32,
    failed: u32,
}

/// What [`HealthRegistry::admit`] lets through.
pub(crate) enum Admission {
    /// A normal request.
    Normal,
    /// The one half-open trial; the slot frees when the guard drops.
    Trial(TrialGuard),
}

/// Holds the half-open trial slot.
pub(crate) struct TrialGuard(Arc<Entry>);

impl Drop for TrialGuard {
    fn drop(&mut self) {
        self.0.trial.store(false, Ordering::Release);
    }
}

impl Entry {
    /// A healthy provider with an empty window.
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self {
            name,
            healthy: AtomicBool::new(true),
            trial: AtomicBool::new(false),
            trial_gate: AtomicU8::new(TRIAL_OPEN),
            state: Mutex::new(State {
                mode: Mode::Healthy,
                consecutive: 0,
                buckets: [Bucket::default(); BUCKETS],
                ejections: 0,
                healthy_since: Instant::now(),
                ewma_ms: None,
            }),
        }
    }
}

// ===== the transitions =====

impl HealthRegistry {
    /// Lets a request through, takes the trial slot, or refuses.
    pub(crate) fn admit(&self, entry: &Arc<Entry>) -> Result<Admission, Unavailable> {
        if entry.healthy.load(Ordering::Acquire) {
            return Ok(Admission::Normal);
        }
        let mut state = lock(entry);
        self.refresh(entry, &mut state, Instant::now());
        match state.mode {
            Mode::Healthy => Ok(Admission::Normal),
            Mode::CoolingDown { until } => Err(Unavailable::new(
                entry.name.clone(),
                UnavailableKind::CoolingDown,
                "rate limited",
            )
            .with_until(until)),
            Mode::Ejected { until, reason, .. } => Err(Unavailable::new(
                entry.name.clone(),
                UnavailableKind::Ejected,
                reason.as_str(),
            )
            .with_until(until)),
            Mode::Probing => {
                if entry.trial_gate.load(Ordering::Acquire) != TRIAL_OPEN {
                    Err(Unavailable::new(
                        entry.name.clone(),
                        UnavailableKind::Probing,
                        "trial request held by another replica",
                    ))
                } else if entry.trial.swap(true, Ordering::AcqRel) {
                    Err(Unavailable::new(
                        entry.name.clone(),
                        UnavailableKind::Probing,
                        "trial request in flight",
                    ))
                } else {
                    Ok(Admission::Trial(TrialGuard(entry.clone())))
                }
            }
        }
    }

    /// Records an outcome; `latency` is `None` when it is not an attempt's
    /// latency (a stream that broke after its response was released).
    pub(crate) fn record_entry(&self, entry: &Entry, outcome: Outcome, latency: Option<Duration>) {
        self.record_entry_at(entry, outcome, latency, Instant::now());
    }

    /// [`record_entry`](Self::record_entry) at `now`, for a caller that has
    /// just read the clock for the latency (one read instead of two).
    pub(crate) fn record_entry_at(
        &self,
        entry: &Entry,
        outcome: Outcome,
        latency: Option<Duration>,
        now: Instant,
    ) {
        let config = &self.inner.config;
        let mut state = lock(entry);
        self.refresh(entry, &mut state, now);
        if let Some(latency) = latency {
            #[allow(clippy::cast_precision_loss)] // latencies in ms fit an f64 exactly
            let ms = latency.as_micros() as f64 / 1000.0;
            state.ewma_ms = Some(state.ewma_ms.map_or(ms, |avg| avg * 0.8 + ms * 0.2));
        }
        if let Some(wait) = rate_limit_wait(outcome, config) {
            self.cool_down(entry, &mut state, now, wait);
            return;
        }
        let slow = config
            .slow_threshold
            .zip(latency)
            .is_some_and(|(threshold, latency)| outcome.is_success() && latency > threshold);
        let failed = outcome.counts_against_health() || slow;
        let counted = failed || outcome.is_success();
        match state.mode {
            Mode::Probing => {
                if failed {
                    self.eject(entry, &mut state, now, EjectionReason::ProbeFailed);
                } else if outcome.is_success() {
                    self.restore(entry, &mut state, now);
                }
            }
            Mode::Healthy | Mode::CoolingDown { .. } if counted => {
                let epoch = self.epoch(now);
                let bucket = &mut state.buckets[bucket_index(epoch)];
                if bucket.epoch != epoch {
                    *bucket = Bucket {
                        epoch,
                        ..Bucket::default()
                    };
                }
                if failed {
                    bucket.failed = bucket.failed.saturating_add(1);
                    state.consecutive = state.consecutive.saturating_add(1);
                    let (ok, failures) = self.window_counts(&state, now);
                    let total = ok.saturating_add(failures);
                    if state.consecutive >= config.consecutive_failures {
                        self.eject(entry, &mut state, now, EjectionReason::ConsecutiveFailures);
                    } else if total >= config.min_requests.max(1)
                        && f64::from(failures) / f64::from(total) >= config.failure_ratio
                    {
                        self.eject(entry, &mut state, now, EjectionReason::FailureRatio);
                    }
                } else {
                    bucket.ok = bucket.ok.saturating_add(1);
                    state.consecutive = 0;
                    if state.ejections > 0
                        && now.saturating_duration_since(state.healthy_since) >= config.decay_after
                    {
                        state.ejections = 0;
                    }
                }
            }
            // Late results of requests sent before an ejection, and outcomes
            // that neither succeed nor fail, change nothing.
            Mode::Ejected { .. } | Mode::Healthy | Mode::CoolingDown { .. } => {}
        }
    }

    /// Applies the transitions that time alone makes.
    pub(crate) fn refresh(&self, entry: &Entry, state: &mut State, now: Instant) {
        match state.mode {
            Mode::Ejected { until, .. } if until <= now => {
                entry.trial.store(false, Ordering::Release);
                let gate = if self.inner.shared_trials.load(Ordering::Acquire) {
                    TRIAL_PENDING
                } else {
                    TRIAL_OPEN
                };
                entry.trial_gate.store(gate, Ordering::Release);
                self.transition(
                    entry,
                    state,
                    Mode::Probing,
                    HealthEventKind::ProbeStarted,
                    Origin::Local,
                );
            }
            Mode::CoolingDown { until } if until <= now => {
                self.transition(
                    entry,
                    state,
                    Mode::Healthy,
                    HealthEventKind::CooledDown,
                    Origin::Local,
                );
            }
            _ => {}
        }
    }

    fn eject(&self, entry: &Entry, state: &mut State, now: Instant, reason: EjectionReason) {
        let config = &self.inner.config;
        state.ejections = state.ejections.saturating_add(1);
        let length = config
            .base_ejection
            .saturating_mul(state.ejections)
            .min(config.max_ejection);
        let mut until = saturating_add(now, length);
        if let Mode::Ejected { until: running, .. } | Mode::CoolingDown { until: running } =
            state.mode
        {
            until = until.max(running);
        }
        state.consecutive = 0;
        state.buckets = [Bucket::default(); BUCKETS];
        let kind = if reason == EjectionReason::ProbeFailed {
            HealthEventKind::ProbeFailed
        } else {
            HealthEventKind::Ejected(reason)
        };
        self.transition(
            entry,
            state,
            Mode::Ejected {
                until,
                reason,
                since: now,
            },
            kind,
            Origin::Local,
        );
    }

    pub(crate) fn cool_down(&self, entry: &Entry, state: &mut State, now: Instant, wait: Duration) {
        match state.mode {
            Mode::CoolingDown { until } => {
                // A later, longer Retry-After extends; a shorter one never
                // shortens.
                let later = saturating_add(now, wait);
                if later > until {
                    state.mode = Mode::CoolingDown { until: later };
                    // Not a transition (the observer hears of none), but
                    // subscribers learn the new end: a sharer tells the
                    // other replicas.
                    let _ = self.inner.events.send(HealthEvent {
                        provider: entry.name.clone(),
                        kind: HealthEventKind::CoolingDown,
                        from: ProviderState::CoolingDown,
                        to: ProviderState::CoolingDown,
                        until: Some(later),
                        origin: Origin::Local,
                    });
                }
            }
            Mode::Ejected { .. } => {}
            Mode::Healthy | Mode::Probing => {
                entry.trial.store(false, Ordering::Release);
                self.transition(
                    entry,
                    state,
                    Mode::CoolingDown {
                        until: saturating_add(now, wait),
                    },
                    HealthEventKind::CoolingDown,
                    Origin::Local,
                );
            }
        }
    }

    pub(crate) fn restore(&self, entry: &Entry, state: &mut State, now: Instant) {
        self.restore_from(entry, state, now, Origin::Local);
    }

    /// Healthy again, by this registry's trial or probe, or another
    /// replica's.
    pub(crate) fn restore_from(
        &self,
        entry: &Entry,
        state: &mut State,
        now: Instant,
        origin: Origin,
    ) {
        state.consecutive = 0;
        state.buckets = [Bucket::default(); BUCKETS];
        state.healthy_since = now;
        entry.trial_gate.store(TRIAL_OPEN, Ordering::Release);
        self.transition(
            entry,
            state,
            Mode::Healthy,
            HealthEventKind::Restored,
            origin,
        );
    }

    /// Every state change goes through here: the fast-path flag, the event
    /// subscription and the observer stay in step.
    pub(crate) fn transition(
        &self,
        entry: &Entry,
        state: &mut State,
        to: Mode,
        kind: HealthEventKind,
        origin: Origin,
    ) {
        let from = state.mode.state();
        state.mode = to;
        entry
            .healthy
            .store(matches!(to, Mode::Healthy), Ordering::Release);
        let until = match to {
            Mode::Ejected { until, .. } | Mode::CoolingDown { until } => Some(until),
            Mode::Healthy | Mode::Probing => None,
        };
        let reason = match kind {
            HealthEventKind::Ejected(reason) => reason.as_change_reason(),
            HealthEventKind::CoolingDown => StateChangeReason::RateLimited,
            HealthEventKind::CooledDown => StateChangeReason::CooldownEnded,
            HealthEventKind::ProbeStarted => StateChangeReason::EjectionEnded,
            HealthEventKind::Restored => StateChangeReason::ProbeSucceeded,
            HealthEventKind::ProbeFailed => StateChangeReason::ProbeFailed,
        };
        // No receiver is fine: events are for whoever listens.
        let _ = self.inner.events.send(HealthEvent {
            provider: entry.name.clone(),
            kind,
            from,
            to: to.state(),
            until,
            origin,
        });
        self.inner.observer.on_event(&Event::ProviderStateChanged {
            provider: &entry.name,
            from,
            to: to.state(),
            reason,
            duration: until.map(|u| u.saturating_duration_since(Instant::now())),
        });
    }

    fn epoch(&self, now: Instant) -> u64 {
        let bucket = self
            .inner
            .config
            .window
            .checked_div(u32::try_from(BUCKETS).unwrap_or(10))
            .unwrap_or_default()
            .as_nanos()
            .max(1);
        let elapsed = now.saturating_duration_since(self.inner.start).as_nanos();
        u64::try_from(elapsed.checked_div(bucket).unwrap_or_default()).unwrap_or(u64::MAX)
    }

    pub(crate) fn window_counts(&self, state: &State, now: Instant) -> (u32, u32) {
        let epoch = self.epoch(now);
        let oldest = epoch.saturating_sub(OLDER_BUCKETS);
        state
            .buckets
            .iter()
            .filter(|b| b.epoch >= oldest && b.epoch <= epoch)
            .fold((0_u32, 0_u32), |(ok, failed), b| {
                (ok.saturating_add(b.ok), failed.saturating_add(b.failed))
            })
    }
}

impl Mode {
    pub(crate) const fn state(self) -> ProviderState {
        match self {
            Self::Healthy => ProviderState::Healthy,
            Self::CoolingDown { .. } => ProviderState::CoolingDown,
            Self::Ejected { .. } => ProviderState::Ejected,
            Self::Probing => ProviderState::Probing,
        }
    }
}

pub(crate) fn lock(entry: &Entry) -> MutexGuard<'_, State> {
    entry.state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bucket_index(epoch: u64) -> usize {
    usize::try_from(epoch.checked_rem(BUCKETS as u64).unwrap_or_default()).unwrap_or(0)
}

fn rate_limit_wait(outcome: Outcome, config: &HealthConfig) -> Option<Duration> {
    match outcome {
        Outcome::Failure(FailureKind::RateLimited { retry_after }) => {
            Some(retry_after.unwrap_or(config.default_cooldown))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: Outcome = Outcome::Failure(FailureKind::Overloaded);

    /// A configuration the builder refuses, as a caller bypassing it could
    /// hold: the registry must still not overflow.
    fn absurd() -> HealthConfig {
        HealthConfig {
            consecutive_failures: 1,
            base_ejection: Duration::from_secs(9_223_372_036_854_775_807),
            max_ejection: Duration::MAX,
            default_cooldown: Duration::MAX,
            decay_after: Duration::MAX,
            window: Duration::MAX,
            ..HealthConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_ejection_times_saturate_instead_of_panicking() {
        let registry = HealthRegistry::new(absurd());
        registry.record("openai", FAIL, Duration::from_millis(5));
        let snapshot = &registry.snapshot()[0];
        assert_eq!(snapshot.state, ProviderState::Ejected);
        assert!(snapshot.until_ms.is_some_and(|ms| ms > 0));
        // Ejected again and again: the length doubles, saturating.
        for _ in 0..40 {
            let entry = registry.entry("openai");
            let mut state = lock(&entry);
            registry.eject(
                &entry,
                &mut state,
                Instant::now(),
                EjectionReason::ProbeFailed,
            );
        }
        assert!(!registry.is_available("openai"));
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_cooldowns_saturate_instead_of_panicking() {
        let registry = HealthRegistry::new(absurd());
        let limited = |wait| Outcome::Failure(FailureKind::RateLimited { retry_after: wait });
        registry.record("openai", limited(Some(Duration::MAX)), Duration::ZERO);
        assert_eq!(registry.snapshot()[0].state, ProviderState::CoolingDown);
        // A second one extends the running cooldown: `until.max(now + wait)`.
        registry.record("openai", limited(Some(Duration::MAX)), Duration::ZERO);
        // No wait given: the default cooldown, absurd too.
        registry.record("anthropic", limited(None), Duration::ZERO);
        registry.record("anthropic", limited(None), Duration::ZERO);
        assert!(!registry.is_available("openai"));
        assert!(!registry.is_available("anthropic"));
    }
}
