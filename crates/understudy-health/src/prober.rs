//! The active prober: checks an ejected provider on an interval, so that
//! recovery is found without sacrificing a caller's request.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use understudy_core::{FailureKind, Outcome};

use crate::registry::HealthRegistry;
use crate::state::{Entry, Mode, lock};

impl HealthRegistry {
    /// Runs `probe` every `interval` while `provider` is ejected or waiting
    /// for its trial; a successful probe restores it without sacrificing a
    /// caller's request. The task stops when the handle drops.
    pub fn spawn_prober<F, Fut>(&self, provider: &str, interval: Duration, probe: F) -> ProberHandle
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let registry = self.clone();
        let entry = self.entry(provider);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let wants_probe = {
                    let mut state = lock(&entry);
                    registry.refresh(&entry, &mut state, Instant::now());
                    match state.mode {
                        Mode::Ejected { .. } => true,
                        Mode::Probing => !entry.trial.swap(true, Ordering::AcqRel),
                        Mode::Healthy | Mode::CoolingDown { .. } => false,
                    }
                };
                if !wants_probe {
                    continue;
                }
                let started = Instant::now();
                let healthy = probe().await;
                let outcome = if healthy {
                    Outcome::Success
                } else {
                    Outcome::Failure(FailureKind::Connect)
                };
                registry.record_probe(&entry, outcome, started.elapsed());
            }
        });
        ProberHandle(task)
    }

    /// A probe's result: success restores even before the ejection ends.
    fn record_probe(&self, entry: &Entry, outcome: Outcome, latency: Duration) {
        {
            let mut state = lock(entry);
            if outcome.is_success() && matches!(state.mode, Mode::Ejected { .. }) {
                self.restore(entry, &mut state, Instant::now());
                return;
            }
            if !matches!(state.mode, Mode::Probing) {
                return;
            }
        }
        self.record_entry(entry, outcome, Some(latency));
        entry.trial.store(false, Ordering::Release);
    }
}

/// Stops an active prober when dropped.
#[derive(Debug)]
pub struct ProberHandle(tokio::task::JoinHandle<()>);

impl Drop for ProberHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}
