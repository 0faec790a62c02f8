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
    /// An attempt reached its commit point: a stream's first content chunk
    /// arrived (a role-only or other preamble chunk does not count), or a
    /// whole body was read and judged an answer. Reported once per
    /// committed attempt, never for a failed one.
    FirstContent {
        /// The provider.
        provider: &'a str,
        /// The model asked of it.
        model: &'a str,
        /// From the attempt's start to the commit.
        elapsed: Duration,
    },
    /// A served answer's usage: the tokens the provider reported for it (a
    /// whole body's `usage`, or a stream's usage chunk). Reported once per
    /// served answer that carried one.
    Usage {
        /// The provider.
        provider: &'a str,
        /// The model asked of it.
        model: &'a str,
        /// Input (prompt) tokens.
        input_tokens: u64,
        /// Output (completion) tokens.
        output_tokens: u64,
    },
    /// A stream broke after its first chunk reached the caller: too late to
    /// fail over, so the caller got a final SSE error event instead.
    StreamBrokenAfterCommit {
        /// The provider whose stream broke.
        provider: &'a str,
        /// The model asked of it.
        model: &'a str,
    },
    /// A stream that broke after its commit was continued on another
    /// target: the caller's stream goes on with the continuation.
    Resume {
        /// The route, if known.
        route: Option<&'a str>,
        /// The provider whose stream broke.
        from: &'a str,
        /// The provider that continues it.
        to: &'a str,
        /// How it broke: `cut`, `stall`, `malformed` or `error_event`.
        reason: &'a str,
        /// Characters of content the caller had already received.
        chars_sent: usize,
    },
    /// A request's attempt was slow to its first content, and a hedge (the
    /// next target, in parallel) was started, or refused by the budget.
    Hedge {
        /// The route, if known.
        route: Option<&'a str>,
        /// `won` (the hedge committed first; the slow attempt was
        /// cancelled), `lost` (the slow attempt committed first; the hedge
        /// was cancelled), `failed` (neither committed) or
        /// `budget_exhausted` (no hedge was started).
        result: &'a str,
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
        /// Why.
        reason: StateChangeReason,
        /// How long the new state is expected to last, if known.
        duration: Option<Duration>,
    },
}

/// Why a provider's health state changed: a closed set, so every label and
/// alert field made from it is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StateChangeReason {
    /// Ejected: too many provider failures in a row.
    ConsecutiveFailures,
    /// Ejected: too high a share of failures over the window.
    FailureRatio,
    /// Ejected again: the half-open trial or an active probe failed.
    ProbeFailed,
    /// Cooling down: the provider answered 429.
    RateLimited,
    /// Healthy again: the cooldown ended.
    CooldownEnded,
    /// Probing: the ejection ended and the next request is a trial.
    EjectionEnded,
    /// Healthy again: a trial or a probe succeeded.
    ProbeSucceeded,
    /// Another health implementation's reason.
    Other,
}

impl StateChangeReason {
    /// A stable `snake_case` name, used as a metric label.
    ///
    /// ```
    /// use understudy_core::events::StateChangeReason;
    ///
    /// assert_eq!(StateChangeReason::ConsecutiveFailures.as_str(), "consecutive_failures");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConsecutiveFailures => "consecutive_failures",
            Self::FailureRatio => "failure_ratio",
            Self::ProbeFailed => "probe_failed",
            Self::RateLimited => "rate_limited",
            Self::CooldownEnded => "cooldown_ended",
            Self::EjectionEnded => "ejection_ended",
            Self::ProbeSucceeded => "probe_succeeded",
            Self::Other => "other",
        }
    }
}

impl std::fmt::Display for StateChangeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
