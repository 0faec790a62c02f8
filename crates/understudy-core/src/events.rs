//! What the layers report, for logs, metrics and alerts.
//!
//! Health, retry and fallback do not log or count by themselves: each reports
//! [`Event`]s to an [`Observer`], and `understudy-observe` implements the
//! observer that turns them into `tracing` events, `metrics` counters and
//! alerts. Layers hold a [`SharedObserver`]; the default, `()`, ignores
//! everything, so a layer used alone costs nothing extra.
//!
//! Observers are called on the request path: they must not block (queue
//! anything slow, such as a webhook, and drop it when the queue is full).

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::availability::ProviderState;
use crate::extensions::Attempt;
use crate::outcome::Outcome;

/// Something that happened to a request or a provider.
///
/// Fields borrow from the reporter; names are bounded (provider and route
/// names from configuration, never request data) and hold no secret.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// One upstream attempt finished.
    AttemptFinished {
        /// The provider.
        provider: &'a str,
        /// The model asked of it.
        model: &'a str,
        /// Which try on this target.
        attempt: Attempt,
        /// How it went.
        outcome: Outcome,
        /// The HTTP status, if a response came.
        status: Option<StatusCode>,
        /// From sending to the outcome.
        latency: Duration,
    },
    /// A retry on the same provider was scheduled.
    Retry {
        /// The provider.
        provider: &'a str,
        /// The try about to be made.
        attempt: Attempt,
        /// The wait before it.
        delay: Duration,
        /// The outcome that is being retried.
        outcome: Outcome,
    },
    /// A retry was refused because the retry budget is spent.
    RetryBudgetExhausted {
        /// The provider.
        provider: &'a str,
        /// The outcome that was not retried.
        outcome: Outcome,
    },
    /// The request moved on from one target to the next.
    Fallback {
        /// The route, if known.
        route: Option<&'a str>,
        /// The provider that failed or was skipped.
        from: &'a str,
        /// The provider tried next.
        to: &'a str,
        /// Why `from` was left.
        outcome: Outcome,
    },
    /// A stream broke after its first chunk reached the caller: too late to
    /// fail over, so the caller got a final SSE error event instead.
    StreamBrokenAfterCommit {
        /// The provider whose stream broke.
        provider: &'a str,
        /// The model asked of it.
        model: &'a str,
    },
    /// Every target of a route was unavailable or failed.
    AllTargetsFailed {
        /// The route, if known.
        route: Option<&'a str>,
        /// Upstream attempts made.
        attempts: u32,
        /// Whether every target was reported unavailable by health before
        /// any was tried (the route is down, not merely failing).
        all_unavailable: bool,
    },
    /// A provider's health state changed.
    ProviderStateChanged {
        /// The provider.
        provider: &'a str,
        /// The state before.
        from: ProviderState,
        /// The state after.
        to: ProviderState,
        /// Why, in a few words (`"5 consecutive failures"`).
        reason: &'a str,
        /// How long the new state is expected to last, if known.
        duration: Option<Duration>,
    },
}

/// Receives [`Event`]s. Must not block.
///
/// # Example
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use understudy_core::events::{Event, Observer, SharedObserver};
/// use understudy_core::{FailureKind, Outcome};
///
/// #[derive(Default)]
/// struct CountFallbacks(Mutex<u32>);
///
/// impl Observer for CountFallbacks {
///     fn on_event(&self, event: &Event<'_>) {
///         if let Event::Fallback { .. } = event {
///             *self.0.lock().unwrap() += 1;
///         }
///     }
/// }
///
/// let counter = Arc::new(CountFallbacks::default());
/// let observer: SharedObserver = counter.clone();
/// observer.on_event(&Event::Fallback {
///     route: Some("chat"),
///     from: "openai",
///     to: "anthropic",
///     outcome: Outcome::Failure(FailureKind::Overloaded),
/// });
/// assert_eq!(*counter.0.lock().unwrap(), 1);
/// ```
pub trait Observer: Send + Sync {
    /// Called for each event, on the task where it happened.
    fn on_event(&self, event: &Event<'_>);
}

/// Ignores every event.
impl Observer for () {
    fn on_event(&self, _event: &Event<'_>) {}
}

impl<T: Observer + ?Sized> Observer for Arc<T> {
    fn on_event(&self, event: &Event<'_>) {
        (**self).on_event(event);
    }
}

/// Both observers, in order: how one layer reports to, say, telemetry and
/// the health registry at once.
///
/// ```
/// use std::sync::Arc;
/// use understudy_core::events::{Event, Observer, SharedObserver};
///
/// let both: SharedObserver = Arc::new(((), ()));
/// both.on_event(&Event::AllTargetsFailed { route: None, attempts: 2, all_unavailable: false });
/// ```
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn on_event(&self, event: &Event<'_>) {
        self.0.on_event(event);
        self.1.on_event(event);
    }
}

/// An observer shared by every layer of an app.
pub type SharedObserver = Arc<dyn Observer>;

/// The observer that ignores every event, shared.
pub fn noop_observer() -> SharedObserver {
    Arc::new(())
}
