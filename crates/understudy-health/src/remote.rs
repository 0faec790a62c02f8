//! Decisions made by other replicas, applied here: how registries that
//! share a store (see `understudy-shared-health`) learn from each other.
//!
//! Only decisions travel (an ejection, a cooldown, a restoration); failure
//! counting stays local. The rules of merging:
//! - a remote ejection or cooldown is applied as if local, and never
//!   shortens one already running (the later `until` wins);
//! - a remote restoration ends a local ejection only when it is newer than
//!   that ejection, and ends a half-open probe;
//! - transitions applied here are reported with [`Origin::Remote`], so a
//!   sharer does not publish them again.
//!
//! Half-open trials can be leased fleet-wide: with
//! [`share_trials`](HealthRegistry::share_trials) on, a provider whose
//! ejection ends here takes no trial until the sharer says who holds the
//! lease ([`grant_trial`](HealthRegistry::grant_trial)).

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use crate::events::{EjectionReason, HealthEventKind, Origin};
use crate::registry::HealthRegistry;
use crate::state::{Mode, TRIAL_ELSEWHERE, TRIAL_OPEN, TRIAL_PENDING, lock};

/// A decision another replica made about a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteDecision {
    /// Ejected until `until`.
    Ejected {
        /// When the ejection ends.
        until: Instant,
        /// Why it was ejected.
        reason: EjectionReason,
    },
    /// Rate limited until `until`.
    CoolingDown {
        /// When the cooldown ends.
        until: Instant,
    },
    /// A trial or probe succeeded at `at`: healthy again.
    Restored {
        /// When it was restored.
        at: Instant,
    },
}

/// Who takes the half-open trial of a provider whose ejection ended, when
/// trials are shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrialGrant {
    /// This replica holds the lease (or the store cannot say): the next
    /// request here is the trial.
    Here,
    /// Another replica holds the lease: no trial here until its outcome
    /// arrives or the grant changes.
    Elsewhere,
}

impl HealthRegistry {
    /// Applies `decision`, made by another replica, to `provider`.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use tokio::time::Instant;
    /// use understudy_health::{HealthConfig, HealthRegistry, RemoteDecision};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let registry = HealthRegistry::new(HealthConfig::default());
    /// let until = Instant::now() + Duration::from_secs(30);
    /// registry.apply_remote("openai", RemoteDecision::CoolingDown { until });
    /// assert!(!registry.is_available("openai"));
    ///
    /// // A shorter cooldown never shortens the running one.
    /// let sooner = Instant::now() + Duration::from_secs(1);
    /// registry.apply_remote("openai", RemoteDecision::CoolingDown { until: sooner });
    /// tokio::time::advance(Duration::from_secs(2)).await;
    /// assert!(!registry.is_available("openai"));
    /// # }
    /// ```
    pub fn apply_remote(&self, provider: &str, decision: RemoteDecision) {
        let entry = self.entry(provider);
        let now = Instant::now();
        let mut state = lock(&entry);
        self.refresh(&entry, &mut state, now);
        match (decision, state.mode) {
            // Decisions whose time has passed change nothing.
            (RemoteDecision::Ejected { until, .. } | RemoteDecision::CoolingDown { until }, _)
                if until <= now => {}
            (
                RemoteDecision::Ejected { until, .. },
                Mode::Ejected {
                    until: running,
                    since,
                    reason: local,
                },
            ) => {
                if until > running {
                    state.mode = Mode::Ejected {
                        until,
                        reason: local,
                        since,
                    };
                }
            }
            (RemoteDecision::Ejected { until, reason }, mode) => {
                let until = match mode {
                    Mode::CoolingDown { until: running } => until.max(running),
                    _ => until,
                };
                entry.trial.store(false, Ordering::Release);
                entry.trial_gate.store(TRIAL_OPEN, Ordering::Release);
                self.transition(
                    &entry,
                    &mut state,
                    Mode::Ejected {
                        until,
                        reason,
                        since: now,
                    },
                    HealthEventKind::Ejected(reason),
                    Origin::Remote,
                );
            }
            (
                RemoteDecision::CoolingDown { until },
                Mode::Ejected {
                    until: running,
                    reason,
                    since,
                },
            ) => {
                // Ejected here: stay out at least as long as the cooldown.
                if until > running {
                    state.mode = Mode::Ejected {
                        until,
                        reason,
                        since,
                    };
                }
            }
            (RemoteDecision::CoolingDown { until }, Mode::CoolingDown { until: running }) => {
                if until > running {
                    state.mode = Mode::CoolingDown { until };
                }
            }
            (RemoteDecision::CoolingDown { until }, Mode::Healthy | Mode::Probing) => {
                entry.trial.store(false, Ordering::Release);
                entry.trial_gate.store(TRIAL_OPEN, Ordering::Release);
                self.transition(
                    &entry,
                    &mut state,
                    Mode::CoolingDown { until },
                    HealthEventKind::CoolingDown,
                    Origin::Remote,
                );
            }
            (RemoteDecision::Restored { at }, Mode::Ejected { since, .. }) if at > since => {
                self.restore_from(&entry, &mut state, now, Origin::Remote);
            }
            (RemoteDecision::Restored { .. }, Mode::Probing) => {
                self.restore_from(&entry, &mut state, now, Origin::Remote);
            }
            (RemoteDecision::Restored { .. }, _) => {}
        }
    }

    /// Shares half-open trials across replicas (a sharer turns this on
    /// while its store answers, and off when it does not): a provider whose
    /// ejection ends takes no trial here until
    /// [`grant_trial`](Self::grant_trial) says this replica holds the
    /// lease. Off by default: each replica takes its own single trial.
    pub fn share_trials(&self, shared: bool) {
        self.inner.shared_trials.store(shared, Ordering::Release);
        if !shared {
            // Whatever was pending or held elsewhere is this replica's
            // again: the store can no longer say.
            for entry in self.entries() {
                entry.trial_gate.store(TRIAL_OPEN, Ordering::Release);
            }
        }
    }

    /// Says who holds the half-open trial of `provider` (see
    /// [`share_trials`](Self::share_trials)).
    pub fn grant_trial(&self, provider: &str, grant: TrialGrant) {
        let gate = match grant {
            TrialGrant::Here => TRIAL_OPEN,
            TrialGrant::Elsewhere => TRIAL_ELSEWHERE,
        };
        self.entry(provider)
            .trial_gate
            .store(gate, Ordering::Release);
    }

    /// Is the trial of `provider` waiting for a lease decision?
    pub fn trial_pending(&self, provider: &str) -> bool {
        self.entry(provider).trial_gate.load(Ordering::Acquire) == TRIAL_PENDING
    }
}
