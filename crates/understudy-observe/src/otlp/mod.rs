//! OTLP trace export (feature `otlp`): the `llm.request` and `llm.attempt`
//! spans sent to a collector over OTLP/HTTP with protobuf bodies.
//!
//! - [`OtlpConfig`]: where to, as which service, how many of the traces
//!   (a ratio of the traces the gateway starts; a caller's sampled flag is
//!   followed), and the bounds of the export queue.
//! - [`OtlpConfig::install`] builds the exporter and the
//!   `tracing-opentelemetry` layer that [`init_tracing_with`] and
//!   [`subscriber_with`] put beside the log output, filtered on its own: it
//!   wants the crate's spans whatever `RUST_LOG` says, and the log output
//!   does not pay for them.
//! - Export is batched on a thread of the SDK, and its HTTP requests run on
//!   a runtime of their own: a dead or slow collector costs no request any
//!   time. At most [`max_queue_size`](OtlpConfig::max_queue_size) spans
//!   wait; past that each finished span is dropped and counted in
//!   `understudy_otel_spans_dropped_total{reason="queue_full"}`, and the
//!   spans of a batch the collector did not take in
//!   `{reason="export_failed"}`.
//! - [`OtlpGuard::shutdown`] flushes what waits, within a bound.
//!
//! [`init_tracing_with`]: crate::init_tracing_with
//! [`subscriber_with`]: crate::subscriber_with

mod bounded;
mod client;
pub(crate) mod propagate;

use std::fmt;
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, Tracer,
};
use tracing::Metadata;
use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterFn, Filtered};
use tracing_subscriber::registry::LookupSpan;
use understudy_core::BoxError;

use self::bounded::{Bounded, Counted, Waiting};
use self::client::{ExportClient, ExportRuntime};
use crate::TARGET;

/// The path of the traces signal under an OTLP/HTTP base endpoint.
const TRACES_PATH: &str = "/v1/traces";

/// Where and how the spans are exported.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use understudy_observe::OtlpConfig;
///
/// let config = OtlpConfig::new("http://127.0.0.1:4318")
///     .service_name("gateway-eu")
///     .sample_ratio(0.25)
///     .max_queue_size(4096)
///     .export_timeout(Duration::from_secs(5));
/// assert_eq!(config.traces_url(), "http://127.0.0.1:4318/v1/traces");
///
/// // Credentials in the URL never print.
/// let config = OtlpConfig::new("https://user:secret@collector:4318/?token=secret");
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone, PartialEq)]
pub struct OtlpConfig {
    endpoint: String,
    service_name: String,
    sample_ratio: f64,
    max_queue_size: usize,
    max_export_batch_size: usize,
    scheduled_delay: Duration,
    export_timeout: Duration,
}

impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials or a token in the URL never print.
        let endpoint = match self.endpoint.parse::<http::Uri>() {
            Ok(uri) => format!(
                "{}://{}{}{}",
                uri.scheme_str().unwrap_or("?"),
                uri.host().unwrap_or("?"),
                uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default(),
                uri.path(),
            ),
            Err(_) => "(not a URL)".to_owned(),
        };
        f.debug_struct("OtlpConfig")
            .field("endpoint", &endpoint)
            .field("service_name", &self.service_name)
            .field("sample_ratio", &self.sample_ratio)
            .field("max_queue_size", &self.max_queue_size)
            .field("scheduled_delay", &self.scheduled_delay)
            .field("export_timeout", &self.export_timeout)
            .finish_non_exhaustive()
    }
}

impl OtlpConfig {
    /// The default service name.
    pub const DEFAULT_SERVICE_NAME: &str = "understudy";
    /// The default bound of the spans waiting for export.
    pub const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;
    /// The default time one export may take.
    pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Export to the OTLP/HTTP `endpoint`: a base URL
    /// (`http://collector:4318`), to which `/v1/traces` is appended, or the
    /// traces URL itself (ending in `/v1/traces`).
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            service_name: Self::DEFAULT_SERVICE_NAME.to_owned(),
            sample_ratio: 1.0,
            max_queue_size: Self::DEFAULT_MAX_QUEUE_SIZE,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
            export_timeout: Self::DEFAULT_EXPORT_TIMEOUT,
        }
    }

    /// The `service.name` of the exported resource ([`DEFAULT_SERVICE_NAME`](Self::DEFAULT_SERVICE_NAME)).
    #[must_use]
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// The share of the traces the gateway starts that are recorded (1:
    /// all; clamped to 0..=1). A request under a caller's `traceparent`
    /// follows the caller's sampled flag.
    #[must_use]
    pub fn sample_ratio(mut self, ratio: f64) -> Self {
        self.sample_ratio = if ratio.is_nan() {
            1.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        self
    }

    /// The most spans waiting for export (at least 1); a finished span past
    /// it is dropped and counted.
    #[must_use]
    pub fn max_queue_size(mut self, spans: usize) -> Self {
        self.max_queue_size = spans.max(1);
        self
    }

    /// The longest one export (one HTTP request) may take.
    #[must_use]
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = timeout;
        self
    }

    /// The interval between two exports when fewer than a batch wait (5 s).
    #[must_use]
    pub fn scheduled_delay(mut self, delay: Duration) -> Self {
        self.scheduled_delay = delay;
        self
    }

    /// The URL the spans are posted to.
    pub fn traces_url(&self) -> String {
        let base = self.endpoint.trim_end_matches('/');
        if base.ends_with(TRACES_PATH) {
            base.to_owned()
        } else {
            format!("{base}{TRACES_PATH}")
        }
    }

    /// Builds the exporter and its layer: the layer goes into a subscriber
    /// ([`subscriber_with`](crate::subscriber_with) does it), the guard
    /// flushes and stops the export when the process ends.
    ///
    /// Starts two threads: the SDK's batch thread and the runtime the
    /// export's HTTP requests run on.
    pub fn install<S>(&self) -> Result<(OtlpLayer<S>, OtlpGuard), BoxError>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        let (runtime, handle) = ExportRuntime::start()?;
        let client = ExportClient::new(handle, self.export_timeout)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(self.traces_url())
            .with_timeout(self.export_timeout)
            .build()?;
        let waiting = Waiting::default();
        let batch = self.max_export_batch_size.min(self.max_queue_size);
        let processor = BatchSpanProcessor::builder(Counted::new(exporter, waiting.clone()))
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(self.max_queue_size)
                    .with_max_export_batch_size(batch)
                    .with_scheduled_delay(self.scheduled_delay)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Bounded::new(processor, waiting, self.max_queue_size))
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                self.sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(self.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer(TARGET);
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(
                FilterFn::new(exported as fn(&Metadata<'_>) -> bool)
                    .with_max_level_hint(LevelFilter::DEBUG),
            );
        Ok((
            layer,
            OtlpGuard {
                provider,
                runtime: Some(runtime),
            },
        ))
    }
}

/// Renames `span`'s exported span, already started (a request span learns
/// its model after it is entered).
pub(crate) fn rename(span: &tracing::Span, name: String) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    if !span.is_disabled() {
        span.context().span().update_name(name);
    }
}

/// What the trace export takes: the crate's spans (target `understudy`,
/// DEBUG and above: the request and attempt spans) and its events at INFO
/// and above (fallbacks, provider failures, …), which become span events.
/// Decided once per callsite.
fn exported(metadata: &Metadata<'_>) -> bool {
    metadata.target() == TARGET && (metadata.is_span() || *metadata.level() <= tracing::Level::INFO)
}

/// The layer [`OtlpConfig::install`] builds: the crate's spans and its
/// events at INFO and above, to the exporter.
pub type OtlpLayer<S> = Filtered<
    tracing_opentelemetry::OpenTelemetryLayer<S, Tracer>,
    FilterFn<fn(&Metadata<'_>) -> bool>,
    S,
>;

/// Keeps the export running; [`shutdown`](Self::shutdown) flushes and stops
/// it (dropping the guard stops it too, flushing within the SDK's bound).
pub struct OtlpGuard {
    provider: SdkTracerProvider,
    runtime: Option<ExportRuntime>,
}

impl fmt::Debug for OtlpGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpGuard").finish_non_exhaustive()
    }
}

impl OtlpGuard {
    /// Exports every finished span now; returns once the collector took
    /// them or the export failed. Blocks: call it from a blocking context.
    pub fn flush(&self) -> Result<(), BoxError> {
        self.provider.force_flush().map_err(Into::into)
    }

    /// Exports what waits and stops, waiting at most `within`; `false` if
    /// that was not enough (the rest is lost). Blocks.
    pub fn shutdown(mut self, within: Duration) -> bool {
        let provider = self.provider.clone();
        let (done, finished) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("otlp-shutdown".to_owned())
            .spawn(move || {
                let _ = done.send(provider.shutdown_with_timeout(within).is_ok());
            });
        let flushed = spawned.is_ok()
            && finished
                .recv_timeout(within.saturating_add(Duration::from_millis(100)))
                .unwrap_or(false);
        // The export runtime goes last: the shutdown's export runs on it.
        drop(self.runtime.take());
        flushed
    }
}
