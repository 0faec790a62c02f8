//! What the registry tells its listeners: why a provider was ejected, and
//! each transition of a provider's state.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::Instant;
use understudy_core::ProviderState;
use understudy_core::events::StateChangeReason;

use crate::registry::Inner;

/// Why a provider was ejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EjectionReason {
    /// Too many provider failures in a row.
    ConsecutiveFailures,
    /// Too high a share of failures over the window.
    FailureRatio,
    /// The half-open trial (or an active probe) failed.
    ProbeFailed,
}

impl EjectionReason {
    /// A stable `snake_case` name.
    pub const fn as_str(self) -> &'static str {
        self.as_change_reason().as_str()
    }

    /// The same reason as the observer's [`StateChangeReason`].
    pub const fn as_change_reason(self) -> StateChangeReason {
        match self {
            Self::ConsecutiveFailures => StateChangeReason::ConsecutiveFailures,
            Self::FailureRatio => StateChangeReason::FailureRatio,
            Self::ProbeFailed => StateChangeReason::ProbeFailed,
        }
    }
}

impl fmt::Display for EjectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HealthEventKind {
    /// The provider was ejected.
    Ejected(EjectionReason),
    /// A 429 put the provider in a cooldown.
    CoolingDown,
    /// The cooldown ended.
    CooledDown,
    /// The ejection ended; the next request is a trial.
    ProbeStarted,
    /// A trial or probe succeeded: healthy again.
    Restored,
    /// A trial failed: ejected again, for longer.
    ProbeFailed,
}

/// A state transition of one provider.
#[derive(Clone, Debug)]
pub struct HealthEvent {
    /// The provider.
    pub provider: Arc<str>,
    /// What changed.
    pub kind: HealthEventKind,
    /// The state before.
    pub from: ProviderState,
    /// The state after.
    pub to: ProviderState,
    /// When the new state ends, if it has an end.
    pub until: Option<Instant>,
    /// Whether this registry decided it, or applied another replica's
    /// decision ([`HealthRegistry::apply_remote`](crate::HealthRegistry::apply_remote)):
    /// a sharer publishes only its own.
    pub origin: Origin,
}

/// Who made a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// This registry, from the outcomes it recorded.
    Local,
    /// Another replica, applied through
    /// [`HealthRegistry::apply_remote`](crate::HealthRegistry::apply_remote).
    Remote,
}

/// A subscription to [`HealthEvent`]s. A subscriber that falls behind loses
/// the oldest events; the loss is counted in
/// [`HealthRegistry::lost_events`](crate::HealthRegistry::lost_events) and
/// never slows a request.
pub struct HealthEvents {
    pub(crate) receiver: broadcast::Receiver<HealthEvent>,
    pub(crate) registry: Arc<Inner>,
}

impl HealthEvents {
    /// The next event; `None` when the registry is gone.
    pub async fn recv(&mut self) -> Option<HealthEvent> {
        loop {
            match self.receiver.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    self.registry.lost_events.fetch_add(lost, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl fmt::Debug for HealthEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthEvents").finish_non_exhaustive()
    }
}
