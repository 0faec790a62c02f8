//! The registry: one health state machine per provider, shared by every
//! layer and selector that asks about it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;
use understudy_core::events::{Event, Observer, SharedObserver, noop_observer};
use understudy_core::{Availability, FailureKind, Outcome, ProviderAvailability, UnavailableKind};

use crate::config::HealthConfig;
use crate::events::{HealthEvent, HealthEvents};
use crate::state::{Entry, Mode, TRIAL_OPEN, lock};

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
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: HealthConfig,
    pub(crate) providers: RwLock<HashMap<Arc<str>, Arc<Entry>>>,
    pub(crate) events: broadcast::Sender<HealthEvent>,
    pub(crate) lost_events: AtomicU64,
    pub(crate) observer: SharedObserver,
    pub(crate) start: Instant,
    /// Half-open trials are leased across replicas: a provider whose
    /// ejection ends waits for the lease before trying here.
    pub(crate) shared_trials: AtomicBool,
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
                shared_trials: AtomicBool::new(false),
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

    /// Registers `provider` so it shows in snapshots before its first
    /// request.
    pub fn register(&self, provider: &str) {
        self.entry(provider);
    }

    /// Forgets `provider`: its state, counts and ejection history. It
    /// leaves the snapshots, and its next attempt starts it afresh, healthy
    /// (a provider that moved to another address, or left the
    /// configuration). Probes spawned for it keep the old state and should
    /// be stopped with it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use understudy_core::{FailureKind, Outcome};
    /// use understudy_health::{HealthConfig, HealthRegistry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let registry = HealthRegistry::new(HealthConfig::builder().consecutive_failures(1).build().unwrap());
    /// registry.record("openai", Outcome::Failure(FailureKind::Overloaded), Duration::from_millis(5));
    /// assert!(!registry.is_available("openai"));
    /// registry.forget("openai");
    /// assert!(registry.snapshot().is_empty());
    /// assert!(registry.is_available("openai"));
    /// # }
    /// ```
    pub fn forget(&self, provider: &str) {
        self.inner
            .providers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(provider);
    }

    // === internals ===

    /// Every provider's entry, cloned out of the map.
    pub(crate) fn entries(&self) -> Vec<Arc<Entry>> {
        self.inner
            .providers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

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
            .or_insert_with_key(|name| Arc::new(Entry::new(name.clone())))
            .clone()
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
            Mode::Probing
                if !entry.trial.load(Ordering::Acquire)
                    && entry.trial_gate.load(Ordering::Acquire) == TRIAL_OPEN =>
            {
                Availability::Available
            }
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
