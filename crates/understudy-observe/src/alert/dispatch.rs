//! [`Alerts`]: deduplication and one bounded queue per sink.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::counter;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;

use super::{Alert, AlertKind, AlertSink};
use crate::TARGET;
use crate::names::{ALERT_DELIVERY_FAILURES_TOTAL, ALERTS_DROPPED_TOTAL};
use crate::repeats::Repeats;

/// Configures and starts an [`Alerts`] dispatcher.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use understudy_observe::{Alert, AlertSink, Alerts, DeliverFuture};
///
/// #[derive(Debug)]
/// struct Stdout;
///
/// impl AlertSink for Stdout {
///     fn name(&self) -> &'static str {
///         "stdout"
///     }
///
///     fn deliver<'a>(&'a self, alert: &'a Alert) -> DeliverFuture<'a> {
///         Box::pin(async move {
///             println!("{}", alert.text());
///             Ok(())
///         })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // One alert per provider and kind every five minutes, at most.
/// let alerts = Alerts::builder()
///     .sink(Stdout)
///     .min_interval(Duration::from_secs(300))
///     .queue_capacity(64)
///     .spawn();
/// assert_eq!(alerts.dropped(), 0);
/// # }
/// ```
#[must_use]
pub struct AlertsBuilder {
    sinks: Vec<Arc<dyn AlertSink>>,
    min_interval: Duration,
    queue_capacity: usize,
}

impl AlertsBuilder {
    /// Adds a sink. Each sink gets its own queue and task.
    pub fn sink(mut self, sink: impl AlertSink) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Adds a shared sink.
    pub fn shared_sink(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Repeats of the same (subject, kind) within this interval are
    /// dropped; the next one that passes says how many were. Default: five
    /// minutes. Zero sends every alert.
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    /// How many alerts wait for each sink before new ones are dropped.
    /// Default 64; at least 1.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Starts one delivery task per sink on the current tokio runtime. The
    /// tasks end once every clone of the returned [`Alerts`] is dropped and
    /// their queues are drained.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like [`tokio::spawn`].
    pub fn spawn(self) -> Alerts {
        let queues = self
            .sinks
            .into_iter()
            .map(|sink| {
                let (tx, rx) = mpsc::channel(self.queue_capacity);
                let name = sink.name();
                tokio::spawn(deliver_all(sink, rx));
                Queue { name, tx }
            })
            .collect();
        Alerts {
            shared: Arc::new(Shared {
                queues,
                dedup: std::array::from_fn(|_| Repeats::new(self.min_interval)),
                min_interval: self.min_interval,
                dropped: AtomicU64::new(0),
                suppressed: AtomicU64::new(0),
            }),
        }
    }
}

impl fmt::Debug for AlertsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertsBuilder")
            .field(
                "sinks",
                &self
                    .sinks
                    .iter()
                    .map(|s| AlertSink::name(&**s))
                    .collect::<Vec<_>>(),
            )
            .field("min_interval", &self.min_interval)
            .field("queue_capacity", &self.queue_capacity)
            .finish()
    }
}

/// Hands alerts to sinks without ever blocking the caller.
///
/// - **Deduplication**: one alert per (subject, kind) per
///   [minimum interval](AlertsBuilder::min_interval); the repeats are
///   dropped before anything is allocated, and counted in the `suppressed`
///   field of the next alert that passes.
/// - **Bounded queues**: each sink has its own queue and task, so a slow
///   sink delays no other. When a queue is full the alert is dropped for
///   that sink and counted in [`dropped`](Self::dropped) and
///   `understudy_alerts_dropped_total{sink}`.
///
/// Cheap to clone; clones share everything.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use understudy_observe::{Alert, AlertKind, Alerts, LogSink};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let alerts = Alerts::builder()
///     .sink(LogSink::new())
///     .min_interval(Duration::from_mins(5))
///     .spawn();
/// assert!(alerts.notify(Alert::new(AlertKind::ProviderEjected, "openai", "ejected")));
/// // The same provider and kind again: deduplicated.
/// assert!(!alerts.notify(Alert::new(AlertKind::ProviderEjected, "openai", "ejected")));
/// # }
/// ```
#[derive(Clone)]
pub struct Alerts {
    shared: Arc<Shared>,
}

struct Shared {
    queues: Vec<Queue>,
    /// One per kind, keyed by subject.
    dedup: [Repeats; AlertKind::ALL.len()],
    min_interval: Duration,
    dropped: AtomicU64,
    suppressed: AtomicU64,
}

struct Queue {
    name: &'static str,
    tx: mpsc::Sender<Arc<Alert>>,
}

impl Alerts {
    /// A builder with no sinks, a five-minute minimum interval and queues
    /// of 64.
    pub fn builder() -> AlertsBuilder {
        AlertsBuilder {
            sinks: Vec::new(),
            min_interval: Duration::from_mins(5),
            queue_capacity: 64,
        }
    }

    /// Queues `alert` for every sink unless the same (subject, kind) was
    /// sent within the minimum interval. Never blocks.
    ///
    /// Returns whether the alert passed deduplication (it may still have
    /// been dropped by a full queue).
    pub fn notify(&self, alert: Alert) -> bool {
        let kind = alert.kind;
        let subject = Arc::clone(&alert.subject);
        self.raise(kind, &subject, move || alert)
    }

    /// Like [`notify`](Self::notify), building the alert only if it passes
    /// deduplication.
    pub(crate) fn raise(
        &self,
        kind: AlertKind,
        subject: &str,
        build: impl FnOnce() -> Alert,
    ) -> bool {
        let Some(suppressed) = self.admit(kind, subject) else {
            self.shared.suppressed.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let mut alert = build();
        if suppressed > 0 {
            alert.fields.insert("suppressed", suppressed.to_string());
        }
        let alert = Arc::new(alert);
        for queue in &self.shared.queues {
            match queue.tx.try_send(Arc::clone(&alert)) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    counter!(ALERTS_DROPPED_TOTAL, "sink" => queue.name).increment(1);
                }
            }
        }
        true
    }

    /// Alerts dropped because a sink's queue was full (counted once per
    /// sink).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Alerts dropped as repeats within the minimum interval.
    pub fn suppressed(&self) -> u64 {
        self.shared.suppressed.load(Ordering::Relaxed)
    }

    /// `Some(repeats suppressed since the last one sent)` if an alert for
    /// (subject, kind) may go now.
    fn admit(&self, kind: AlertKind, subject: &str) -> Option<u64> {
        self.shared.dedup[kind.index()].check(&[subject], Instant::now())
    }
}

impl fmt::Debug for Alerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alerts")
            .field(
                "sinks",
                &self
                    .shared
                    .queues
                    .iter()
                    .map(|q| q.name)
                    .collect::<Vec<_>>(),
            )
            .field("min_interval", &self.shared.min_interval)
            .field("dropped", &self.dropped())
            .field("suppressed", &self.suppressed())
            .finish()
    }
}

async fn deliver_all(sink: Arc<dyn AlertSink>, mut rx: mpsc::Receiver<Arc<Alert>>) {
    while let Some(alert) = rx.recv().await {
        if let Err(error) = sink.deliver(&alert).await {
            counter!(ALERT_DELIVERY_FAILURES_TOTAL, "sink" => sink.name()).increment(1);
            tracing::warn!(
                target: TARGET,
                event = "alert_delivery_failed",
                sink = sink.name(),
                kind = alert.kind.as_str(),
                subject = &*alert.subject,
                error = %error,
                "alert not delivered",
            );
        }
    }
}
