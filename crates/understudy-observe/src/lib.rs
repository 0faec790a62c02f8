//! Observability for LLM failover: every fallback logged, every provider
//! failure counted, and the ones that matter alerted.
//!
//! - [`ObserveLayer`], outermost: an `llm.request` span per caller request
//!   and the request metrics.
//! - [`AttemptLayer`], in each target stack: an `llm.attempt` span per
//!   upstream attempt, the attempt metrics (time to first byte included)
//!   and a `provider_failure` event for each provider failure.
//! - [`Telemetry`], the [`Observer`](understudy_core::events::Observer)
//!   that health, retry and fallback report to: `fallback`, `retry`,
//!   `provider_ejected`, `provider_restored`, … events with stable field
//!   names, their metrics, and [alerts](Alerts).
//! - [`Alerts`], fed without blocking, deduplicated, delivered by
//!   [`AlertSink`]s from bounded queues: [`LogSink`] and [`WebhookSink`]
//!   (Slack-compatible JSON).
//! - [`names`]: every metric name, type and label in one table, and
//!   [`describe_metrics`](names::describe_metrics).
//! - [`init_tracing`]: text or JSON (one object per line) log output for
//!   binaries. The `llm.request` and `llm.attempt` spans are at DEBUG, so
//!   the default filter does not build them; the WARN and ERROR events
//!   carry the request's `request_id`, `route`, `model` and `key`
//!   themselves ([`record_model`], [`record_key`], [`record_route`]).
//! - Feature `otlp`: the module `otlp`, the spans exported over OTLP/HTTP
//!   with the OpenTelemetry generative-AI attributes, joined to the
//!   caller's W3C `traceparent` and passed on to each upstream attempt
//!   (`init_tracing_with`, `subscriber_with`, `OtlpConfig`).
//!
//! # Where each piece goes
//!
//! ```text
//! ObserveLayer                       llm.request span, understudy_requests_total, …
//! └─ ReplayLayer
//!    └─ Fallback                     reports fallback / all_targets_failed → Telemetry
//!       └─ per target: RetryLayer    reports retry / retry_budget_exhausted → Telemetry
//!          └─ HealthLayer            registry reports provider state changes → Telemetry
//!             └─ AttemptLayer        llm.attempt span, understudy_attempts_total, TTFB
//!                └─ timeout → FirstChunkLayer → provider
//! ```
//!
//! Metric handles are registered on first use against the recorder
//! installed then: install the exporter before serving requests.
//!
//! Metrics go through the [`metrics`] facade: the application installs the
//! exporter (the gateway serves Prometheus). Example Prometheus alerting
//! rules (provider ejected, fallback rate high, all providers down) ship
//! with this crate in `deploy/prometheus-alerts.yml`.
//!
//! Nothing here logs or labels a header, a body or a URL path: API keys and
//! the webhook's token never reach a log line, a metric or an alert.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use http::{Request, Response};
//! use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
//! use understudy_core::events::{Event, SharedObserver};
//! use understudy_core::{FailureKind, Outcome};
//! use understudy_observe::{Alerts, AttemptLayer, LogSink, ObserveLayer, Telemetry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let alerts = Alerts::builder()
//!     .sink(LogSink::new())
//!     .min_interval(Duration::from_mins(5))
//!     .spawn();
//! // Give this to HealthRegistry::with_observer, RetryLayer, Fallback, …
//! let observer: SharedObserver = Telemetry::new().with_alerts(alerts).into_shared();
//!
//! let provider = service_fn(|_: Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::from("{}")))
//! });
//! let target = AttemptLayer::new("openai", "gpt-4o-mini").layer(provider);
//! let stack = ServiceBuilder::new().layer(ObserveLayer::new()).service(target);
//!
//! let response = stack.oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(response.status(), 200);
//! observer.on_event(&Event::Fallback {
//!     route: Some("chat"),
//!     from: "openai",
//!     to: "anthropic",
//!     outcome: Outcome::Failure(FailureKind::Overloaded),
//! });
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod alert;
pub mod attempt;
mod body;
mod context;
mod labels;
mod logging;
pub mod names;
#[cfg(feature = "otlp")]
pub mod otlp;
mod repeats;
pub mod request;
mod telemetry;
mod tokens;

pub use self::alert::{
    Alert, AlertKind, AlertSink, Alerts, AlertsBuilder, DeliverFuture, LogSink, WebhookError,
    WebhookSink,
};
pub use self::attempt::{AttemptLayer, ObserveAttempt};
pub use self::body::TtfbBody;
pub use self::context::{record_key, record_model, record_route};
pub use self::logging::{DEFAULT_FILTER, LogFormat, UnknownLogFormat, init_tracing, subscriber};
#[cfg(feature = "otlp")]
pub use self::logging::{init_tracing_with, subscriber_with};
#[cfg(feature = "otlp")]
pub use self::otlp::{OtlpConfig, OtlpGuard};
pub use self::request::{Observe, ObserveLayer};
pub use self::telemetry::Telemetry;

/// The `tracing` target of every span and event this crate emits.
pub const TARGET: &str = "understudy";
