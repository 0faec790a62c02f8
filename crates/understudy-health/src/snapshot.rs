//! A provider's health as `/health` and metrics render it.

use std::sync::{Arc, PoisonError};

use serde::Serialize;
use tokio::time::Instant;
use understudy_core::ProviderState;

use crate::events::EjectionReason;
use crate::registry::HealthRegistry;
use crate::state::{Entry, Mode, lock};

/// A provider's health, as `/health` and metrics render it.
#[derive(Clone, Debug, Serialize)]
pub struct ProviderSnapshot {
    /// The provider.
    pub name: String,
    /// Its state.
    pub state: ProviderState,
    /// Why it is ejected, if it is.
    pub reason: Option<EjectionReason>,
    /// Milliseconds until the ejection or cooldown ends, if one runs.
    pub until_ms: Option<u64>,
    /// Provider failures in a row.
    pub consecutive_failures: u32,
    /// Share of failures over the window (0 when it holds no requests).
    pub failure_ratio: f64,
    /// Requests counted in the window.
    pub window_requests: u32,
    /// Exponentially weighted average latency, in milliseconds.
    pub ewma_latency_ms: Option<f64>,
    /// Recent ejections (the multiplier of the next ejection's length).
    pub ejections: u32,
}

impl HealthRegistry {
    /// Every known provider's health, sorted by name.
    pub fn snapshot(&self) -> Vec<ProviderSnapshot> {
        let entries: Vec<Arc<Entry>> = self
            .inner
            .providers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let now = Instant::now();
        let mut snapshots: Vec<ProviderSnapshot> = entries
            .iter()
            .map(|entry| {
                let mut state = lock(entry);
                self.refresh(entry, &mut state, now);
                let (ok, failed) = self.window_counts(&state, now);
                let (until, reason) = match state.mode {
                    Mode::Ejected { until, reason, .. } => (Some(until), Some(reason)),
                    Mode::CoolingDown { until } => (Some(until), None),
                    Mode::Healthy | Mode::Probing => (None, None),
                };
                let total = ok.saturating_add(failed);
                ProviderSnapshot {
                    name: entry.name.to_string(),
                    state: state.mode.state(),
                    reason,
                    until_ms: until.map(|u| {
                        u64::try_from(u.saturating_duration_since(now).as_millis())
                            .unwrap_or(u64::MAX)
                    }),
                    consecutive_failures: state.consecutive,
                    failure_ratio: if total == 0 {
                        0.0
                    } else {
                        f64::from(failed) / f64::from(total)
                    },
                    window_requests: total,
                    ewma_latency_ms: state.ewma_ms,
                    ejections: state.ejections,
                }
            })
            .collect();
        snapshots.sort_by(|a, b| a.name.cmp(&b.name));
        snapshots
    }
}
