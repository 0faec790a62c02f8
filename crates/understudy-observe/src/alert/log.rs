//! [`LogSink`]: alerts as log events: ERROR, or INFO when resolved.

use super::{Alert, AlertKind, AlertSink, DeliverFuture};
use crate::TARGET;

/// Delivers each alert as an ERROR-level `tracing` event named `alert`
/// (INFO for a resolved one, such as a provider restored),
/// whose message is the alert's sentence and whose fields are
/// `event = "alert"`, `kind`, `severity`, `subject`, `details` (the alert's
/// fields, `name=value` joined by commas) and `at`: what a log-based
/// alerting rule (Loki, Cloud Logging) matches on.
///
/// # Example
///
/// ```
/// use understudy_observe::{Alerts, LogSink};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let alerts = Alerts::builder().sink(LogSink::new()).spawn();
/// # drop(alerts);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct LogSink {
    _priv: (),
}

impl LogSink {
    /// The log sink.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl AlertSink for LogSink {
    fn name(&self) -> &'static str {
        "log"
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> DeliverFuture<'a> {
        let details = alert
            .fields
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(",");
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: TARGET,
                    $level,
                    event = "alert",
                    kind = alert.kind.as_str(),
                    severity = alert.kind.severity(),
                    subject = &*alert.subject,
                    details = %details,
                    at = %alert.timestamp(),
                    "{}",
                    alert.message,
                )
            };
        }
        if matches!(alert.kind, AlertKind::ProviderRestored) {
            emit!(tracing::Level::INFO);
        } else {
            emit!(tracing::Level::ERROR);
        }
        Box::pin(std::future::ready(Ok(())))
    }
}
