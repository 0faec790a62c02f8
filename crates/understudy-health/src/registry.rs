//! The registry: one health state machine per provider.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::Instant;
use understudy_core::events::{Event, Observer, SharedObserver, StateChangeReason, noop_observer};
use understudy_core::time::saturating_add;
use understudy_core::{
    Availability, FailureKind, Outcome, ProviderAvailability, ProviderState, Unavailable,
    UnavailableKind,
};

use crate::config::HealthConfig;

const BUCKETS: usize = 10;
/// The buckets of the window before the current one.
const OLDER_BUCKETS: u64 = BUCKETS as u64 - 1;
const EVENT_CAPACITY: usize = 256;

/// Shared health of every provider. Cheap to clone.
///
/// States: healthy → ejected (consecutive failures, or a failure ratio over
/// the window) → probing (one trial) → healthy; healthy → cooling down (a
/// 429, for its `Retry-After`) → healthy. An ejection lasts the base time ×
/// the number of recent ejections, capped; a new ejection or cooldown never
/// shortens one that is running.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use understudy_core::{FailureKind, Outcome, ProviderState};
/// use understudy_health::{HealthConfig, HealthRegistry};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let config = HealthConfig::builder().consecutive_failures(2).build().unwrap();
/// let registry = HealthRegistry::new(config);
/// let failure = Outcome::Failure(FailureKind::Overloaded);
/// registry.record("openai", failure, Duration::from_millis(40));
/// assert!(registry.is_available("openai"));
/// registry.record("openai", failure, Duration::from_millis(40));
/// assert!(!registry.is_available("openai"));
/// assert_eq!(registry.snapshot()[0].state, ProviderState::Ejected);
/// # }
/// ```
#[derive(Clone)]
pub struct HealthRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    config: HealthConfig,
    providers: RwLock<HashMap<Arc<str>, Arc<Entry>>>,
    events: broadcast::Sender<HealthEvent>,
    lost_events: AtomicU64,
    observer: SharedObserver,
    start: Instant,
}

/// One provider's state.
pub(crate) struct Entry {
    name: Arc<str>,
    /// True exactly when the provider is healthy: the lock-free fast path.
    healthy: AtomicBool,
    /// The half-open trial slot.
    trial: AtomicBool,
    state: Mutex<State>,
}

struct State {
    mode: Mode,
    consecutive: u32,
    buckets: [Bucket; BUCKETS],
    ejections: u32,
    healthy_since: Instant,
    ewma_ms: Option<f64>,
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Healthy,
    CoolingDown {
        until: Instant,
    },
    Ejected {
        until: Instant,
        reason: EjectionReason,
    },
    Probing,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    epoch: u64,
    ok: u32,
    failed: u32,
}

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
}

/// A subscription to [`HealthEvent`]s. A subscriber that falls behind loses
/// the oldest events; the loss is counted in
/// [`HealthRegistry::lost_events`] and never slows a request.
pub struct HealthEvents {
    receiver: broadcast::Receiver<HealthEvent>,
    registry: Arc<Inner>,
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

// ===== impl HealthRegistry =====

impl HealthRegistry {
    /// A registry with this configuration and no observer.
    pub fn new(config: HealthConfig) -> Self {
        Self::with_observer(config, noop_observer())
    }

    /// A registry that also reports transitions to `observer` as
    /// `Event::ProviderStateChanged`.
    pub fn with_observer(config: HealthConfig, observer: SharedObserver) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                config,
                providers: RwLock::new(HashMap::new()),
                events,
                lost_events: AtomicU64::new(0),
                observer,
                start: Instant::now(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HealthConfig {
        &self.inner.config
    }

    /// Subscribes to transitions.
    pub fn subscribe(&self) -> HealthEvents {
        HealthEvents {
            receiver: self.inner.events.subscribe(),
            registry: self.inner.clone(),
        }
    }

    /// Events lost by subscribers that fell behind.
    pub fn lost_events(&self) -> u64 {
        self.inner.lost_events.load(Ordering::Relaxed)
    }

    /// Can `provider` be tried now? Unknown providers can.
    pub fn is_available(&self, provider: &str) -> bool {
        self.availability(provider).is_available()
    }

    /// Records one attempt's outcome and latency.
    pub fn record(&self, provider: &str, outcome: Outcome, latency: Duration) {
        let entry = self.entry(provider);
        self.record_entry(&entry, outcome, Some(latency));
    }

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
                    Mode::Ejected { until, reason } => (Some(until), Some(reason)),
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

    /// Registers `provider` so it shows in snapshots before its first
    /// request.
    pub fn register(&self, provider: &str) {
        self.entry(provider);
    }

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

    // === internals ===

    pub(crate) fn entry(&self, provider: &str) -> Arc<Entry> {
        if let Some(entry) = self
            .inner
            .providers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
        {
            return entry.clone();
        }
        let mut providers = self
            .inner
            .providers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        providers
            .entry(Arc::from(provider))
            .or_insert_with_key(|name| {
                Arc::new(Entry {
                    name: name.clone(),
                    healthy: AtomicBool::new(true),
                    trial: AtomicBool::new(false),
                    state: Mutex::new(State {
                        mode: Mode::Healthy,
                        consecutive: 0,
                        buckets: [Bucket::default(); BUCKETS],
                        ejections: 0,
                        healthy_since: Instant::now(),
                        ewma_ms: None,
                    }),
                })
            })
            .clone()
    }

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
            Mode::Ejected { until, reason } => Err(Unavailable::new(
                entry.name.clone(),
                UnavailableKind::Ejected,
                reason.as_str(),
            )
            .with_until(until)),
            Mode::Probing => {
                if entry.trial.swap(true, Ordering::AcqRel) {
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
        let now = Instant::now();
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

    /// Applies the transitions that time alone makes.
    fn refresh(&self, entry: &Entry, state: &mut State, now: Instant) {
        match state.mode {
            Mode::Ejected { until, .. } if until <= now => {
                entry.trial.store(false, Ordering::Release);
                self.transition(entry, state, Mode::Probing, HealthEventKind::ProbeStarted);
            }
            Mode::CoolingDown { until } if until <= now => {
                self.transition(entry, state, Mode::Healthy, HealthEventKind::CooledDown);
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
        self.transition(entry, state, Mode::Ejected { until, reason }, kind);
    }

    fn cool_down(&self, entry: &Entry, state: &mut State, now: Instant, wait: Duration) {
        match state.mode {
            Mode::CoolingDown { until } => {
                // A later, longer Retry-After extends; a shorter one never
                // shortens.
                state.mode = Mode::CoolingDown {
                    until: until.max(saturating_add(now, wait)),
                };
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
                );
            }
        }
    }

    fn restore(&self, entry: &Entry, state: &mut State, now: Instant) {
        state.consecutive = 0;
        state.buckets = [Bucket::default(); BUCKETS];
        state.healthy_since = now;
        self.transition(entry, state, Mode::Healthy, HealthEventKind::Restored);
    }

    /// Every state change goes through here: the fast-path flag, the event
    /// subscription and the observer stay in step.
    fn transition(&self, entry: &Entry, state: &mut State, to: Mode, kind: HealthEventKind) {
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

    fn window_counts(&self, state: &State, now: Instant) -> (u32, u32) {
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

impl ProviderAvailability for HealthRegistry {
    fn availability(&self, provider: &str) -> Availability {
        let entry = self.entry(provider);
        if entry.healthy.load(Ordering::Acquire) {
            return Availability::Available;
        }
        let mut state = lock(&entry);
        self.refresh(&entry, &mut state, Instant::now());
        match state.mode {
            Mode::Healthy => Availability::Available,
            Mode::Probing if !entry.trial.load(Ordering::Acquire) => Availability::Available,
            Mode::Probing => Availability::Unavailable {
                kind: UnavailableKind::Probing,
                until: None,
            },
            Mode::CoolingDown { until } => Availability::Unavailable {
                kind: UnavailableKind::CoolingDown,
                until: Some(until),
            },
            Mode::Ejected { until, .. } => Availability::Unavailable {
                kind: UnavailableKind::Ejected,
                until: Some(until),
            },
        }
    }
}

/// Listens for streams that broke after their first chunk reached the caller
/// (`Event::StreamBrokenAfterCommit`, reported by the fallback's first-chunk
/// guard) and records each as a stream-broken failure of its provider: a
/// provider that starts streams and cuts them is failing, though no attempt
/// saw it. Other events are ignored.
///
/// ```
/// use understudy_core::events::{Event, Observer};
/// use understudy_health::{HealthConfig, HealthRegistry};
///
/// let registry = HealthRegistry::new(HealthConfig::default());
/// registry.on_event(&Event::StreamBrokenAfterCommit { provider: "openai", model: "gpt-4o-mini" });
/// assert_eq!(registry.snapshot()[0].consecutive_failures, 1);
/// ```
impl Observer for HealthRegistry {
    fn on_event(&self, event: &Event<'_>) {
        if let Event::StreamBrokenAfterCommit { provider, .. } = event {
            let entry = self.entry(provider);
            self.record_entry(&entry, Outcome::Failure(FailureKind::StreamBroken), None);
        }
    }
}

impl fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthRegistry")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Mode {
    const fn state(self) -> ProviderState {
        match self {
            Self::Healthy => ProviderState::Healthy,
            Self::CoolingDown { .. } => ProviderState::CoolingDown,
            Self::Ejected { .. } => ProviderState::Ejected,
            Self::Probing => ProviderState::Probing,
        }
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

fn lock(entry: &Entry) -> MutexGuard<'_, State> {
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
