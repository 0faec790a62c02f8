//! [`Telemetry`]: the observer that turns layer events into logs, metrics
//! and alerts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use metrics::{counter, gauge};
use understudy_core::events::{Event, Observer, SharedObserver, StateChangeReason};
use understudy_core::{Attempt, Outcome, ProviderState};

use crate::TARGET;
use crate::alert::{Alert, AlertKind, Alerts};
use crate::context::with_current;
use crate::labels::{UNKNOWN_ROUTE, bool_label};
use crate::names::{
    ALL_TARGETS_FAILED_TOTAL, EJECTIONS_TOTAL, FALLBACKS_TOTAL, HEDGES_TOTAL, PROVIDER_STATE,
    RESUMES_TOTAL, RETRIES_TOTAL, RETRY_BUDGET_EXHAUSTED_TOTAL, STREAMS_BROKEN_AFTER_COMMIT_TOTAL,
};
use crate::repeats::{Repeats, SKIP_LINE_WINDOW};
use crate::tokens::{FirstContent, TokenCounters};
use tokio::time::Instant;

/// Turns the [`Event`]s that health, retry and fallback report into
/// structured `tracing` events, `metrics` and [`Alerts`].
///
/// | event | log event (level) | metrics | alert |
/// |-------|-------------------|---------|-------|
/// | `AttemptFinished`, provider failure | `provider_failure` (WARN) | — (see [`AttemptLayer`](crate::AttemptLayer)) | — |
/// | `Retry` | `retry` (INFO) | `understudy_retries_total` | — |
/// | `RetryBudgetExhausted` | `retry_budget_exhausted` (WARN) | `understudy_retry_budget_exhausted_total` | retry budget exhausted |
/// | `FirstContent` | — | `understudy_time_to_first_content_seconds` | — |
/// | `Usage` | — | `understudy_tokens_total` (`direction` `input` and `output`) | — |
/// | `Fallback` | `fallback` (WARN; past an unavailable target, once per route and pair per 10 s, with `repeats`) | `understudy_fallbacks_total` (every one) | — |
/// | `Hedge` | `hedge` (INFO) | `understudy_hedges_total` | — |
/// | `Resume` | `resume` (WARN) | `understudy_resumes_total` | — |
/// | `StreamBrokenAfterCommit` | `stream_broken_after_commit` (ERROR) | `understudy_streams_broken_after_commit_total` | — |
/// | `AllTargetsFailed` | `all_targets_failed` (ERROR) | `understudy_all_targets_failed_total` | route unavailable, if every target was unavailable |
/// | `ProviderStateChanged` to ejected | `provider_ejected` (WARN) | `understudy_provider_state`, `understudy_ejections_total` | provider ejected |
/// | `ProviderStateChanged` to healthy | `provider_restored` (INFO) | `understudy_provider_state` | provider restored, if it was ejected or probing |
/// | other `ProviderStateChanged` | `provider_state_changed` (INFO) | `understudy_provider_state` | — |
///
/// Every log event carries a field `event` with the name above, so a log
/// pipeline can match on it; the other field names are stable too
/// (`provider`, `model`, `route`, `from`, `to`, `reason`, `kind`, `status`,
/// `attempt`, `delay_ms`, `latency_ms`, `duration_ms`, `attempts`, `chars_sent`,
/// `all_unavailable`, `repeats`). Events are emitted in the caller's current span, so
/// the `llm.request` and `llm.attempt` spans' fields come along when those
/// are built (they are at DEBUG); the WARN and ERROR events also carry the
/// current request's `request_id`, `route`, `model` and `key` themselves
/// (`requested_model` on `provider_failure`, whose `model` is the
/// upstream's), as [`ObserveLayer`](crate::ObserveLayer) and
/// [`record_model`](crate::record_model) learn them. A whole answer's usage
/// is also recorded on the request span (`gen_ai.usage.input_tokens`,
/// `gen_ai.usage.output_tokens`).
///
/// A successful attempt's report costs one `match`; its commit, one
/// histogram sample. Events allocate only their metric labels. Nothing
/// blocks: alerts are queued (see [`Alerts`]).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use understudy_core::events::{Event, Observer, SharedObserver};
/// use understudy_core::{FailureKind, Outcome};
/// use understudy_observe::Telemetry;
///
/// let observer: SharedObserver = Arc::new(Telemetry::new());
/// observer.on_event(&Event::Fallback {
///     route: Some("chat"),
///     from: "openai",
///     to: "anthropic",
///     outcome: Outcome::Failure(FailureKind::Overloaded),
/// });
/// ```
#[derive(Clone)]
pub struct Telemetry {
    alerts: Option<Alerts>,
    tokens: Arc<TokenCounters>,
    first_content: Arc<FirstContent>,
    skip_lines: Arc<Repeats>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            alerts: None,
            tokens: Arc::default(),
            first_content: Arc::default(),
            skip_lines: Arc::new(Repeats::new(SKIP_LINE_WINDOW)),
        }
    }
}

impl Telemetry {
    /// Logs and metrics, no alerts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also raises alerts through `alerts`.
    #[must_use]
    pub fn with_alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// The alert dispatcher, if any.
    pub fn alerts(&self) -> Option<&Alerts> {
        self.alerts.as_ref()
    }

    /// This telemetry as the [`SharedObserver`] the layers take.
    pub fn into_shared(self) -> SharedObserver {
        Arc::new(self)
    }

    fn alert(&self, kind: AlertKind, subject: &str, build: impl FnOnce() -> Alert) {
        if let Some(alerts) = &self.alerts {
            alerts.raise(kind, subject, build);
        }
    }

    fn state_changed(
        &self,
        provider: &str,
        from: ProviderState,
        to: ProviderState,
        reason: StateChangeReason,
        duration: Option<Duration>,
    ) {
        gauge!(PROVIDER_STATE, "provider" => provider.to_owned()).set(f64::from(to.gauge_value()));
        let duration_ms = duration.map(millis);
        match to {
            ProviderState::Ejected => {
                let label = reason.as_str();
                counter!(EJECTIONS_TOTAL, "provider" => provider.to_owned(), "reason" => label)
                    .increment(1);
                with_current(|current| {
                    tracing::warn!(
                        target: TARGET,
                        event = "provider_ejected",
                        provider,
                        from = from.as_str(),
                        reason = label,
                        duration_ms,
                        request_id = current.request_id(),
                        route = current.route(),
                        model = current.model(),
                        key = current.key(),
                        "provider ejected",
                    );
                });
                self.alert(AlertKind::ProviderEjected, provider, || {
                    let mut alert = Alert::new(
                        AlertKind::ProviderEjected,
                        provider,
                        format!("provider {provider} ejected: {reason}"),
                    )
                    .with_field("reason", label)
                    .with_field("from", from.as_str());
                    if let Some(ms) = duration_ms {
                        alert = alert.with_field("duration_ms", ms.to_string());
                    }
                    alert
                });
            }
            ProviderState::Healthy if from != ProviderState::Healthy => {
                tracing::info!(
                    target: TARGET,
                    event = "provider_restored",
                    provider,
                    from = from.as_str(),
                    reason = reason.as_str(),
                    "provider healthy again",
                );
                // A cooldown ending is routine (it follows a 429, which
                // raised no alert); only a return from ejection is news.
                if matches!(from, ProviderState::Ejected | ProviderState::Probing) {
                    self.alert(AlertKind::ProviderRestored, provider, || {
                        Alert::new(
                            AlertKind::ProviderRestored,
                            provider,
                            format!("provider {provider} is healthy again"),
                        )
                        .with_field("from", from.as_str())
                        .with_field("reason", reason.as_str())
                    });
                }
            }
            _ => {
                tracing::info!(
                    target: TARGET,
                    event = "provider_state_changed",
                    provider,
                    from = from.as_str(),
                    to = to.as_str(),
                    reason = reason.as_str(),
                    duration_ms,
                    "provider state changed",
                );
            }
        }
    }
}

impl Observer for Telemetry {
    fn on_event(&self, event: &Event<'_>) {
        match *event {
            Event::AttemptFinished {
                provider,
                model,
                attempt,
                outcome,
                status,
                latency,
            } if outcome.is_provider_failure() => {
                log_provider_failure(provider, model, attempt, outcome, status, latency);
            }
            Event::Retry {
                provider,
                attempt,
                delay,
                outcome,
            } => {
                let reason = outcome.kind().as_str();
                counter!(RETRIES_TOTAL, "provider" => provider.to_owned(), "reason" => reason)
                    .increment(1);
                tracing::info!(
                    target: TARGET,
                    event = "retry",
                    provider,
                    attempt = attempt.0,
                    delay_ms = millis(delay),
                    reason,
                    "retrying on the same provider",
                );
            }
            Event::RetryBudgetExhausted { provider, outcome } => {
                let reason = outcome.kind().as_str();
                counter!(RETRY_BUDGET_EXHAUSTED_TOTAL, "provider" => provider.to_owned())
                    .increment(1);
                with_current(|current| {
                    tracing::warn!(
                        target: TARGET,
                        event = "retry_budget_exhausted",
                        provider,
                        reason,
                        request_id = current.request_id(),
                        route = current.route(),
                        model = current.model(),
                        key = current.key(),
                        "retry budget exhausted; not retrying",
                    );
                });
                self.alert(AlertKind::RetryBudgetExhausted, provider, || {
                    Alert::new(
                        AlertKind::RetryBudgetExhausted,
                        provider,
                        format!("retry budget of provider {provider} exhausted: failures are not retried"),
                    )
                    .with_field("reason", reason)
                });
            }
            Event::Fallback {
                route,
                from,
                to,
                outcome,
            } => {
                let route = route.unwrap_or(UNKNOWN_ROUTE);
                let reason = outcome.kind().as_str();
                counter!(
                    FALLBACKS_TOTAL,
                    "route" => route.to_owned(),
                    "from" => from.to_owned(),
                    "to" => to.to_owned(),
                    "reason" => reason,
                )
                .increment(1);
                // Skips of an unavailable target repeat on every request
                // while it is out: one line per window (see `repeats.rs`).
                let repeats = if matches!(outcome, Outcome::Unavailable) {
                    match self.skip_lines.check(&[route, from, to], Instant::now()) {
                        Some(folded) => Some(folded),
                        None => return,
                    }
                } else {
                    None
                };
                with_current(|current| {
                    if let Some(span) = current.span() {
                        span.record("understudy.fallback.reason", reason);
                    }
                    tracing::warn!(
                        target: TARGET,
                        event = "fallback",
                        route,
                        from,
                        to,
                        reason,
                        repeats,
                        status = outcome.status().map(|s| s.as_u16()),
                        request_id = current.request_id(),
                        model = current.model(),
                        key = current.key(),
                        "falling back to the next target",
                    );
                });
            }
            Event::FirstContent {
                provider,
                model,
                elapsed,
            } => {
                self.first_content
                    .record(provider, model, elapsed.as_secs_f64());
            }
            Event::Resume {
                route,
                from,
                to,
                reason,
                chars_sent,
            } => resumed(route.unwrap_or(UNKNOWN_ROUTE), from, to, reason, chars_sent),
            Event::Hedge { route, result } => hedged(route.unwrap_or(UNKNOWN_ROUTE), result),
            Event::Usage {
                provider,
                model,
                input_tokens,
                output_tokens,
            } => {
                self.tokens
                    .record(provider, model, input_tokens, output_tokens);
                usage_on_spans(input_tokens, output_tokens);
            }
            Event::StreamBrokenAfterCommit { provider, model } => {
                counter!(STREAMS_BROKEN_AFTER_COMMIT_TOTAL, "provider" => provider.to_owned())
                    .increment(1);
                with_current(|current| {
                    tracing::error!(
                        target: TARGET,
                        event = "stream_broken_after_commit",
                        provider,
                        model,
                        request_id = current.request_id(),
                        route = current.route(),
                        key = current.key(),
                        "stream broke after it reached the caller",
                    );
                });
            }
            Event::AllTargetsFailed {
                route,
                attempts,
                all_unavailable,
            } => {
                let route = route.unwrap_or(UNKNOWN_ROUTE);
                counter!(
                    ALL_TARGETS_FAILED_TOTAL,
                    "route" => route.to_owned(),
                    "all_unavailable" => bool_label(all_unavailable),
                )
                .increment(1);
                with_current(|current| {
                    tracing::error!(
                        target: TARGET,
                        event = "all_targets_failed",
                        route,
                        attempts,
                        all_unavailable,
                        request_id = current.request_id(),
                        model = current.model(),
                        key = current.key(),
                        "every target of the route failed",
                    );
                });
                if all_unavailable {
                    self.alert(AlertKind::RouteUnavailable, route, || {
                        Alert::new(
                            AlertKind::RouteUnavailable,
                            route,
                            format!("every target of route {route} is unavailable"),
                        )
                        .with_field("attempts", attempts.to_string())
                    });
                }
            }
            Event::ProviderStateChanged {
                provider,
                from,
                to,
                reason,
                duration,
            } => self.state_changed(provider, from, to, reason, duration),
            _ => {}
        }
    }
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("alerts", &self.alerts)
            .finish_non_exhaustive()
    }
}

/// The `provider_failure` event (WARN).
pub(crate) fn log_provider_failure(
    provider: &str,
    model: &str,
    attempt: Attempt,
    outcome: Outcome,
    status: Option<StatusCode>,
    latency: Duration,
) {
    with_current(|current| {
        tracing::warn!(
            target: TARGET,
            event = "provider_failure",
            provider,
            model,
            attempt = attempt.0,
            kind = outcome.kind().as_str(),
            status = status.or(outcome.status()).map(|s| s.as_u16()),
            latency_ms = millis(latency),
            retry_after_ms = outcome.retry_after().map(millis),
            request_id = current.request_id(),
            route = current.route(),
            requested_model = current.model(),
            key = current.key(),
            "provider failed",
        );
    });
}

/// An answer's usage on its request's span (the answer is judged after
/// its attempt's span has ended).
fn usage_on_spans(input: u64, output: u64) {
    with_current(|fields| {
        if let Some(request) = fields.span() {
            request.record("gen_ai.usage.input_tokens", input);
            request.record("gen_ai.usage.output_tokens", output);
        }
    });
}

/// Whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A stream continued on another target: counted and logged.
fn resumed(route: &str, from: &str, to: &str, reason: &str, chars_sent: usize) {
    // A closed set of reasons, so the label stays bounded.
    let reason: &'static str = match reason {
        "cut" => "cut",
        "stall" => "stall",
        "malformed" => "malformed",
        "error_event" => "error_event",
        _ => "other",
    };
    counter!(
        RESUMES_TOTAL,
        "route" => route.to_owned(),
        "from" => from.to_owned(),
        "to" => to.to_owned(),
        "reason" => reason,
    )
    .increment(1);
    with_current(|current| {
        tracing::warn!(
            target: TARGET,
            event = "resume",
            route,
            from,
            to,
            reason,
            chars_sent,
            request_id = current.request_id(),
            model = current.model(),
            key = current.key(),
            "resuming a broken stream on the next target",
        );
    });
}

/// A hedge started, or refused: counted and logged.
fn hedged(route: &str, result: &str) {
    // A closed set of results, so the label stays bounded.
    let result: &'static str = match result {
        "won" => "won",
        "lost" => "lost",
        "failed" => "failed",
        "budget_exhausted" => "budget_exhausted",
        _ => "other",
    };
    counter!(HEDGES_TOTAL, "route" => route.to_owned(), "result" => result).increment(1);
    tracing::info!(
        target: TARGET,
        event = "hedge",
        route,
        result,
        "hedged a slow first chunk",
    );
}
