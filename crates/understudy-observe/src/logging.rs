//! Log output for binaries: text for people, JSON for log pipelines.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use understudy_core::BoxError;

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the event's fields at the top level
    /// and the current span's fields under `span` (when the filter builds
    /// the span: the request and attempt spans are at DEBUG), ready for
    /// Loki, ELK or Cloud Logging.
    Json,
}

impl LogFormat {
    /// `"text"` or `"json"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A log format name that is neither `text` nor `json`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format (expected \"text\" or \"json\")")]
pub struct UnknownLogFormat;

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "text" | "pretty" | "plain" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(UnknownLogFormat),
        }
    }
}

/// A subscriber writing `format` to `writer`, filtered by `filter` (an
/// `EnvFilter` directive string such as `"info,understudy=debug"`).
///
/// [`init_tracing`] installs this with standard output and `RUST_LOG`;
/// tests use it with a buffer. Text is written without colours.
///
/// # Example
///
/// ```
/// use understudy_observe::{LogFormat, subscriber};
///
/// let subscriber = subscriber(LogFormat::Json, "info", std::io::sink).unwrap();
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(event = "started", "hello");
/// });
/// ```
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
) -> Result<Box<dyn Subscriber + Send + Sync>, BoxError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    build(format, filter, writer, false, None).map(|(subscriber, _)| subscriber)
}

fn build<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
    ansi: bool,
    otlp: Option<&OtlpSettings>,
) -> Result<(Box<dyn Subscriber + Send + Sync>, Option<Guard>), BoxError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Each output filters on its own: the log lines by `filter`, the trace
    // export by its own (it wants the request and attempt spans, which are
    // at DEBUG, whatever `filter` says). A span no output wants is not
    // built at all.
    let filter = EnvFilter::try_new(filter)?;
    let (traces, guard) = traces(otlp)?;
    let registry = tracing_subscriber::registry().with(traces);
    Ok((
        match format {
            LogFormat::Text => Box::new(
                registry.with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(ansi)
                        .with_writer(writer)
                        .with_filter(filter),
                ),
            ),
            LogFormat::Json => Box::new(
                registry.with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_current_span(true)
                        .with_span_list(false)
                        .with_writer(writer)
                        .with_filter(filter),
                ),
            ),
        },
        guard,
    ))
}

#[cfg(feature = "otlp")]
type OtlpSettings = crate::otlp::OtlpConfig;
#[cfg(feature = "otlp")]
type Guard = crate::otlp::OtlpGuard;
#[cfg(feature = "otlp")]
type TraceLayer = Option<crate::otlp::OtlpLayer<tracing_subscriber::Registry>>;

#[cfg(not(feature = "otlp"))]
type OtlpSettings = std::convert::Infallible;
#[cfg(not(feature = "otlp"))]
type Guard = std::convert::Infallible;
#[cfg(not(feature = "otlp"))]
type TraceLayer = Option<tracing_subscriber::layer::Identity>;

#[cfg(feature = "otlp")]
fn traces(otlp: Option<&OtlpSettings>) -> Result<(TraceLayer, Option<Guard>), BoxError> {
    match otlp {
        Some(config) => {
            let (layer, guard) = config.install()?;
            Ok((Some(layer), Some(guard)))
        }
        None => Ok((None, None)),
    }
}

#[cfg(not(feature = "otlp"))]
#[allow(clippy::unnecessary_wraps)]
fn traces(otlp: Option<&OtlpSettings>) -> Result<(TraceLayer, Option<Guard>), BoxError> {
    match otlp {
        Some(never) => match *never {},
        None => Ok((None, None)),
    }
}

/// [`subscriber`], and the request and attempt spans exported over OTLP as
/// `otlp` says (feature `otlp`); the guard flushes the export.
///
/// # Example
///
/// ```
/// use understudy_observe::{LogFormat, OtlpConfig, subscriber_with};
///
/// let config = OtlpConfig::new("http://127.0.0.1:4318");
/// let (subscriber, guard) = subscriber_with(LogFormat::Json, "info", std::io::sink, &config).unwrap();
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(event = "started", "hello");
/// });
/// guard.shutdown(std::time::Duration::from_millis(100));
/// ```
#[cfg(feature = "otlp")]
pub fn subscriber_with<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
    otlp: &crate::otlp::OtlpConfig,
) -> Result<(Box<dyn Subscriber + Send + Sync>, crate::otlp::OtlpGuard), BoxError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (subscriber, guard) = build(format, filter, writer, false, Some(otlp))?;
    let guard = guard.ok_or("the trace export was not installed")?;
    Ok((subscriber, guard))
}

/// [`init_tracing`], and the request and attempt spans exported over OTLP
/// when `otlp` is given (feature `otlp`); keep the guard until the process
/// ends and shut it down then, to flush what waits.
///
/// # Example
///
/// ```
/// use understudy_observe::{LogFormat, init_tracing_with};
///
/// let guard = init_tracing_with(LogFormat::Text, None).unwrap();
/// assert!(guard.is_none());
/// ```
#[cfg(feature = "otlp")]
pub fn init_tracing_with(
    format: LogFormat,
    otlp: Option<&crate::otlp::OtlpConfig>,
) -> Result<Option<crate::otlp::OtlpGuard>, BoxError> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_FILTER.to_owned());
    let ansi = std::io::stdout().is_terminal();
    let (subscriber, guard) = build(format, &filter, std::io::stdout, ansi, otlp)?;
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(guard)
}

/// Installs the global subscriber for a binary: `format` to standard
/// output, filtered by `RUST_LOG` ([`DEFAULT_FILTER`] when unset). Text
/// is coloured when standard output is a terminal.
///
/// Fails if `RUST_LOG` does not parse or a global subscriber is already
/// installed.
///
/// # Example
///
/// ```
/// use understudy_observe::{LogFormat, init_tracing};
///
/// init_tracing(LogFormat::Json).unwrap();
/// tracing::info!(event = "listening", port = 8080, "gateway listening");
/// // A second global subscriber is refused.
/// assert!(init_tracing(LogFormat::Text).is_err());
/// ```
pub fn init_tracing(format: LogFormat) -> Result<(), BoxError> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_FILTER.to_owned());
    let ansi = std::io::stdout().is_terminal();
    let (subscriber, _) = build(format, &filter, std::io::stdout, ansi, None)?;
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(())
}
