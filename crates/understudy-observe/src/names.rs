//! Metric names, in one place.
//!
//! Every metric Understudy records goes through the [`metrics`] facade: the
//! application installs the exporter it wants (the gateway serves
//! Prometheus). Label values are bounded: provider and route names come from
//! configuration, outcome and reason labels from small fixed sets (see
//! [`OutcomeKind::as_str`](understudy_core::OutcomeKind::as_str)); no request
//! id, user text or secret ever becomes a label.
//!
//! | name | type | labels | recorded by |
//! |------|------|--------|-------------|
//! | [`REQUESTS_TOTAL`] `understudy_requests_total` | counter | `route`, `operation`, `outcome`, `key` | [`ObserveLayer`](crate::ObserveLayer) |
//! | [`REQUEST_DURATION_SECONDS`] `understudy_request_duration_seconds` | histogram | `route`, `operation`, `key` | [`ObserveLayer`](crate::ObserveLayer) |
//! | [`ATTEMPTS_TOTAL`] `understudy_attempts_total` | counter | `provider`, `operation`, `outcome` | [`AttemptLayer`](crate::AttemptLayer) |
//! | [`ATTEMPT_DURATION_SECONDS`] `understudy_attempt_duration_seconds` | histogram | `provider`, `operation` | [`AttemptLayer`](crate::AttemptLayer) |
//! | [`TIME_TO_FIRST_BYTE_SECONDS`] `understudy_time_to_first_byte_seconds` | histogram | `provider`, `operation` | [`AttemptLayer`](crate::AttemptLayer) |
//! | [`TIME_TO_FIRST_CONTENT_SECONDS`] `understudy_time_to_first_content_seconds` | histogram | `provider`, `model` | [`Telemetry`](crate::Telemetry) |
//! | [`OVERHEAD_SECONDS`] `understudy_overhead_seconds` | histogram | `route` | [`ObserveLayer`](crate::ObserveLayer) |
//! | [`UPSTREAM_SECONDS`] `understudy_upstream_seconds` | histogram | `route` | [`ObserveLayer`](crate::ObserveLayer) |
//! | [`TOKENS_TOTAL`] `understudy_tokens_total` | counter | `provider`, `model`, `direction` | [`Telemetry`](crate::Telemetry) |
//! | [`FALLBACKS_TOTAL`] `understudy_fallbacks_total` | counter | `route`, `from`, `to`, `reason` | [`Telemetry`](crate::Telemetry) |
//! | [`HEDGES_TOTAL`] `understudy_hedges_total` | counter | `route`, `result` | [`Telemetry`](crate::Telemetry) |
//! | [`RESUMES_TOTAL`] `understudy_resumes_total` | counter | `route`, `from`, `to`, `reason` | [`Telemetry`](crate::Telemetry) |
//! | [`RETRIES_TOTAL`] `understudy_retries_total` | counter | `provider`, `reason` | [`Telemetry`](crate::Telemetry) |
//! | [`RETRY_BUDGET_EXHAUSTED_TOTAL`] `understudy_retry_budget_exhausted_total` | counter | `provider` | [`Telemetry`](crate::Telemetry) |
//! | [`PROVIDER_STATE`] `understudy_provider_state` | gauge | `provider` | [`Telemetry`](crate::Telemetry) |
//! | [`EJECTIONS_TOTAL`] `understudy_ejections_total` | counter | `provider`, `reason` | [`Telemetry`](crate::Telemetry) |
//! | [`STREAMS_BROKEN_AFTER_COMMIT_TOTAL`] `understudy_streams_broken_after_commit_total` | counter | `provider` | [`Telemetry`](crate::Telemetry) |
//! | [`ALL_TARGETS_FAILED_TOTAL`] `understudy_all_targets_failed_total` | counter | `route`, `all_unavailable` | [`Telemetry`](crate::Telemetry) |
//! | [`ALERTS_DROPPED_TOTAL`] `understudy_alerts_dropped_total` | counter | `sink` | [`Alerts`](crate::Alerts) |
//! | [`ALERT_DELIVERY_FAILURES_TOTAL`] `understudy_alert_delivery_failures_total` | counter | `sink` | [`Alerts`](crate::Alerts) |
//! | [`CONFIG_RELOADS_TOTAL`] `understudy_config_reloads_total` | counter | `result` (`ok` or `error`) | the gateway's configuration reload |
//! | [`OTEL_SPANS_DROPPED_TOTAL`] `understudy_otel_spans_dropped_total` | counter | `reason` (`queue_full` or `export_failed`) | the OTLP trace export (feature `otlp`) |
//!
//! Label values:
//!
//! - `outcome` (requests and attempts) and `reason` (fallbacks and retries):
//!   an [`OutcomeKind`](understudy_core::OutcomeKind) name: `success`,
//!   `client_error`, `context_length_exceeded`, `content_filtered`,
//!   `connect`, `timeout`, `transport`, `rate_limited`, `overloaded`,
//!   `server_error`, `stream_broken`, `unauthorized` (a provider refused
//!   the gateway's key: 401 or 403), `unavailable`.
//! - `reason` of ejections: a
//!   [`StateChangeReason`](understudy_core::events::StateChangeReason) name:
//!   `consecutive_failures`, `failure_ratio`, `probe_failed` or `other`.
//! - `route`: the [`RouteName`](understudy_core::RouteName), or `unknown`.
//! - `operation` (requests and attempts): the
//!   [`Operation`](understudy_core::Operation) the endpoint set on the
//!   request, by its [`as_str`](understudy_core::Operation::as_str) name:
//!   `chat` (also for a request without one), `messages` or `embeddings`.
//! - `understudy_provider_state`: 0 healthy, 1 cooling down, 2 probing,
//!   3 ejected ([`ProviderState::gauge_value`](understudy_core::ProviderState::gauge_value)).
//!
//! Durations are in seconds, exported as histograms with the buckets of
//! [`HISTOGRAMS`]. Request duration is measured until the
//! response head is ready (for a stream: its first chunk), attempt duration
//! likewise per attempt; time to first byte runs until the first data frame
//! of the attempt's body; time to first content runs from the attempt's
//! start to its commit point (a stream's first content chunk, not a
//! role-only one, or a whole body read and judged an answer).

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Caller requests, by route, operation, final outcome and caller key name.
pub const REQUESTS_TOTAL: &str = "understudy_requests_total";
/// Time from a caller request to its response head, by route, operation
/// and caller key name.
pub const REQUEST_DURATION_SECONDS: &str = "understudy_request_duration_seconds";
/// Upstream attempts, by provider, operation and outcome.
pub const ATTEMPTS_TOTAL: &str = "understudy_attempts_total";
/// Time from sending an attempt to its response head or error, by provider
/// and operation.
pub const ATTEMPT_DURATION_SECONDS: &str = "understudy_attempt_duration_seconds";
/// Time from sending an attempt to the first data frame of its body, by
/// provider and operation.
pub const TIME_TO_FIRST_BYTE_SECONDS: &str = "understudy_time_to_first_byte_seconds";
/// Time from an attempt's start to its first content (a stream's first
/// content chunk, or a whole answer read), by provider and model.
pub const TIME_TO_FIRST_CONTENT_SECONDS: &str = "understudy_time_to_first_content_seconds";
/// The gateway's own time in a caller request (to its response head, less
/// the time spent in upstream attempts), by route.
pub const OVERHEAD_SECONDS: &str = "understudy_overhead_seconds";
/// The time a caller request spent in upstream attempts, to its response
/// head, by route.
pub const UPSTREAM_SECONDS: &str = "understudy_upstream_seconds";
/// Tokens of the answers served, by provider, model and direction
/// (`input` or `output`), from each answer's usage.
pub const TOKENS_TOTAL: &str = "understudy_tokens_total";
/// Moves from one target to the next, by route, providers and reason.
pub const FALLBACKS_TOTAL: &str = "understudy_fallbacks_total";
/// Hedged attempts, by route and result (`won`, `lost`, `failed`,
/// `budget_exhausted`).
pub const HEDGES_TOTAL: &str = "understudy_hedges_total";
/// Streams broken after their commit and continued on another target, by
/// route, providers and how the stream broke.
pub const RESUMES_TOTAL: &str = "understudy_resumes_total";
/// Retries scheduled on the same provider, by provider and reason.
pub const RETRIES_TOTAL: &str = "understudy_retries_total";
/// Retries refused because the retry budget was spent, by provider.
pub const RETRY_BUDGET_EXHAUSTED_TOTAL: &str = "understudy_retry_budget_exhausted_total";
/// The health state of each provider: 0 healthy, 1 cooling down, 2 probing,
/// 3 ejected.
pub const PROVIDER_STATE: &str = "understudy_provider_state";
/// Ejections, by provider and bounded reason.
pub const EJECTIONS_TOTAL: &str = "understudy_ejections_total";
/// Streams that broke after their first chunk reached the caller, by
/// provider.
pub const STREAMS_BROKEN_AFTER_COMMIT_TOTAL: &str = "understudy_streams_broken_after_commit_total";
/// Caller requests for which every target failed or was unavailable, by
/// route and whether every target was unavailable (`"true"`/`"false"`).
pub const ALL_TARGETS_FAILED_TOTAL: &str = "understudy_all_targets_failed_total";
/// Alerts dropped because a sink's queue was full, by sink.
pub const ALERTS_DROPPED_TOTAL: &str = "understudy_alerts_dropped_total";
/// Alerts a sink failed to deliver (after its own retries), by sink.
pub const ALERT_DELIVERY_FAILURES_TOTAL: &str = "understudy_alert_delivery_failures_total";
/// Configuration reloads, by result: `ok` (swapped in) or `error` (refused;
/// the running configuration stays).
pub const CONFIG_RELOADS_TOTAL: &str = "understudy_config_reloads_total";
/// Finished spans the OTLP trace export lost, by reason: `queue_full` (the
/// export queue was at its bound) or `export_failed` (in a batch the
/// collector did not take).
pub const OTEL_SPANS_DROPPED_TOTAL: &str = "understudy_otel_spans_dropped_total";

/// Bucket bounds, in seconds, for the durations of an LLM call: from 5 ms
/// (a cached or refused answer) to 10 minutes (a long stream).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Bucket bounds, in seconds, for the gateway's own time in a request: from
/// 50 µs to 100 ms.
pub const OVERHEAD_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// Every duration metric, with the bucket bounds it is exported with. An
/// exporter that builds histograms (the gateway's Prometheus exporter)
/// sets these, so a duration aggregates over replicas and
/// `histogram_quantile` works on it.
///
/// ```
/// use understudy_observe::names::{HISTOGRAMS, REQUEST_DURATION_SECONDS};
///
/// let (_, buckets) = HISTOGRAMS.iter().find(|(name, _)| *name == REQUEST_DURATION_SECONDS).unwrap();
/// assert!(buckets.windows(2).all(|pair| pair[0] < pair[1]));
/// ```
pub const HISTOGRAMS: &[(&str, &[f64])] = &[
    (REQUEST_DURATION_SECONDS, LATENCY_BUCKETS),
    (ATTEMPT_DURATION_SECONDS, LATENCY_BUCKETS),
    (TIME_TO_FIRST_BYTE_SECONDS, LATENCY_BUCKETS),
    (TIME_TO_FIRST_CONTENT_SECONDS, LATENCY_BUCKETS),
    (OVERHEAD_SECONDS, OVERHEAD_BUCKETS),
    (UPSTREAM_SECONDS, LATENCY_BUCKETS),
];

/// Describes every metric above (unit and help text) to the installed
/// recorder. Call once after installing the exporter.
///
/// # Example
///
/// ```
/// understudy_observe::names::describe_metrics();
/// ```
pub fn describe_metrics() {
    describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Caller requests, by route, operation, final outcome and caller key name."
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time from a caller request to its response head, by route, operation and caller key name."
    );
    describe_counter!(
        ATTEMPTS_TOTAL,
        Unit::Count,
        "Upstream attempts, by provider, operation and outcome."
    );
    describe_histogram!(
        ATTEMPT_DURATION_SECONDS,
        Unit::Seconds,
        "Time from sending an attempt to its response head or error, by provider and operation."
    );
    describe_histogram!(
        TIME_TO_FIRST_BYTE_SECONDS,
        Unit::Seconds,
        "Time from sending an attempt to the first data frame of its body, by provider and operation."
    );
    describe_histogram!(
        TIME_TO_FIRST_CONTENT_SECONDS,
        Unit::Seconds,
        "Time from an attempt's start to its first content chunk or whole answer, by provider and model."
    );
    describe_histogram!(
        OVERHEAD_SECONDS,
        Unit::Seconds,
        "The gateway's own time in a caller request: to its response head, less the upstream attempts, by route."
    );
    describe_histogram!(
        UPSTREAM_SECONDS,
        Unit::Seconds,
        "The time a caller request spent in upstream attempts, to its response head, by route."
    );
    describe_counter!(
        TOKENS_TOTAL,
        Unit::Count,
        "Tokens of the answers served, by provider, model and direction (input or output)."
    );
    describe_counter!(
        FALLBACKS_TOTAL,
        Unit::Count,
        "Moves from one target to the next, by route, providers and reason."
    );
    describe_counter!(
        HEDGES_TOTAL,
        Unit::Count,
        "Hedged attempts, by route and result (won, lost, failed, budget_exhausted)."
    );
    describe_counter!(
        RESUMES_TOTAL,
        Unit::Count,
        "Streams broken after their commit and continued on another target, by route, providers and reason."
    );
    describe_counter!(
        RETRIES_TOTAL,
        Unit::Count,
        "Retries scheduled on the same provider, by provider and reason."
    );
    describe_counter!(
        RETRY_BUDGET_EXHAUSTED_TOTAL,
        Unit::Count,
        "Retries refused because the retry budget was spent, by provider."
    );
    describe_gauge!(
        PROVIDER_STATE,
        "Provider health state: 0 healthy, 1 cooling down, 2 probing, 3 ejected."
    );
    describe_counter!(
        EJECTIONS_TOTAL,
        Unit::Count,
        "Provider ejections, by provider and reason."
    );
    describe_counter!(
        STREAMS_BROKEN_AFTER_COMMIT_TOTAL,
        Unit::Count,
        "Streams that broke after their first chunk reached the caller, by provider."
    );
    describe_counter!(
        ALL_TARGETS_FAILED_TOTAL,
        Unit::Count,
        "Caller requests for which every target failed or was unavailable, by route."
    );
    describe_counter!(
        ALERTS_DROPPED_TOTAL,
        Unit::Count,
        "Alerts dropped because a sink's queue was full, by sink."
    );
    describe_counter!(
        ALERT_DELIVERY_FAILURES_TOTAL,
        Unit::Count,
        "Alerts a sink failed to deliver after its retries, by sink."
    );
    describe_counter!(
        CONFIG_RELOADS_TOTAL,
        Unit::Count,
        "Configuration reloads, by result: ok (swapped in) or error (the running configuration stays)."
    );
    describe_counter!(
        OTEL_SPANS_DROPPED_TOTAL,
        Unit::Count,
        "Spans the OTLP trace export lost, by reason: queue_full or export_failed."
    );
}
