//! Log output for binaries: text for people, JSON for log pipelines.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
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
    /// and the current span's fields under `span`, ready for Loki, ELK or
    /// Cloud Logging.
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
    build(format, filter, writer, false)
}

fn build<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
    ansi: bool,
) -> Result<Box<dyn Subscriber + Send + Sync>, BoxError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter)?;
    let registry = tracing_subscriber::registry().with(filter);
    Ok(match format {
        LogFormat::Text => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(writer),
            ),
        ),
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            ),
        ),
    })
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
    let subscriber = build(format, &filter, std::io::stdout, ansi)?;
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(())
}
