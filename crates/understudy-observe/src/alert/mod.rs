//! Alerts: what is worth waking someone for, delivered off the request path.
//!
//! [`Telemetry`](crate::Telemetry) turns four kinds of [`Event`](understudy_core::events::Event)
//! into an [`Alert`]: a provider ejected, a provider restored, every target
//! of a route unavailable, and a retry budget exhausted. [`Alerts`] takes
//! them without ever blocking: it drops repeats of the same
//! (subject, kind) within a minimum interval, then hands each alert to
//! every [`AlertSink`] through that sink's own bounded queue, drained by its
//! own task. A full queue drops the alert and counts it
//! ([`Alerts::dropped`], `understudy_alerts_dropped_total`), so a slow or
//! dead sink delays neither a request nor the other sinks.
//!
//! Sinks shipped: [`LogSink`] (an ERROR-level `alert` event) and
//! [`WebhookSink`] (Slack-compatible JSON over HTTP(S), with a timeout and
//! retries).

mod dispatch;
mod log;
mod webhook;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use understudy_core::BoxError;

pub use self::dispatch::{Alerts, AlertsBuilder};
pub use self::log::LogSink;
pub use self::webhook::{WebhookError, WebhookSink};

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// A provider was ejected: no requests go to it for a while.
    ProviderEjected,
    /// A provider is healthy again.
    ProviderRestored,
    /// Every target of a route was unavailable: the route is down.
    RouteUnavailable,
    /// A provider's retry budget is spent: failures are no longer retried.
    RetryBudgetExhausted,
}

impl AlertKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 4] = [
        Self::ProviderEjected,
        Self::ProviderRestored,
        Self::RouteUnavailable,
        Self::RetryBudgetExhausted,
    ];

    /// A stable `snake_case` name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ProviderEjected => "provider_ejected",
            Self::ProviderRestored => "provider_restored",
            Self::RouteUnavailable => "route_unavailable",
            Self::RetryBudgetExhausted => "retry_budget_exhausted",
        }
    }

    /// How bad it is: `critical` (a route is down), `warning` (a provider
    /// is out or its retries are spent) or `resolved` (a provider is back).
    pub const fn severity(self) -> &'static str {
        match self {
            Self::RouteUnavailable => "critical",
            Self::ProviderEjected | Self::RetryBudgetExhausted => "warning",
            Self::ProviderRestored => "resolved",
        }
    }

    /// Whether the subject is a route (otherwise a provider).
    pub const fn is_about_route(self) -> bool {
        matches!(self, Self::RouteUnavailable)
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Self::ProviderEjected => 0,
            Self::ProviderRestored => 1,
            Self::RouteUnavailable => 2,
            Self::RetryBudgetExhausted => 3,
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert.
///
/// Every value in it comes from configuration (provider and route names)
/// or from bounded event data: no request content, no secret.
///
/// # Example
///
/// ```
/// use understudy_observe::{Alert, AlertKind};
///
/// let alert = Alert::new(AlertKind::ProviderEjected, "openai", "provider openai ejected")
///     .with_field("reason", "consecutive_failures");
/// assert_eq!(alert.subject(), "openai");
/// assert!(alert.text().contains("provider openai ejected"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// The provider, or for [`AlertKind::RouteUnavailable`] the route.
    pub subject: Arc<str>,
    /// One human sentence.
    pub message: String,
    /// Structured details (`reason`, `duration_ms`, `suppressed`, …).
    pub fields: BTreeMap<&'static str, String>,
    /// When it was raised.
    pub at: SystemTime,
}

impl Alert {
    /// An alert raised now, with no fields.
    pub fn new(kind: AlertKind, subject: impl Into<Arc<str>>, message: impl Into<String>) -> Self {
        Self {
            kind,
            subject: subject.into(),
            message: message.into(),
            fields: BTreeMap::new(),
            at: SystemTime::now(),
        }
    }

    /// Adds a structured field.
    #[must_use]
    pub fn with_field(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.fields.insert(name, value.into());
        self
    }

    /// The provider or route it is about.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The one-line text a chat tool shows:
    /// `[warning] provider_ejected openai: provider openai ejected (reason=…)`.
    pub fn text(&self) -> String {
        let mut text = format!(
            "[{}] {} {}: {}",
            self.kind.severity(),
            self.kind,
            self.subject,
            self.message
        );
        if !self.fields.is_empty() {
            text.push_str(" (");
            for (i, (name, value)) in self.fields.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push_str(name);
                text.push('=');
                text.push_str(value);
            }
            text.push(')');
        }
        text
    }

    /// `at` as an RFC 3339 UTC timestamp with milliseconds.
    pub fn timestamp(&self) -> String {
        rfc3339(self.at)
    }

    /// The JSON a webhook receives: a Slack-compatible `text`, and the
    /// alert's parts as structured fields.
    ///
    /// ```json
    /// {"text": "[warning] provider_ejected openai: …", "kind": "provider_ejected",
    ///  "severity": "warning", "subject": "openai", "message": "…",
    ///  "fields": {"reason": "consecutive_failures"}, "at": "2025-01-01T00:00:00.000Z"}
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "text": self.text(),
            "kind": self.kind,
            "severity": self.kind.severity(),
            "subject": &*self.subject,
            "message": &self.message,
            "fields": &self.fields,
            "at": self.timestamp(),
        })
    }
}

/// Boxed future returned by [`AlertSink::deliver`].
pub type DeliverFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// Where alerts go.
///
/// A sink is called from its own background task, one alert at a time; it
/// may take its time (the queue in front of it absorbs bursts, and drops
/// what does not fit). An error is logged and counted by [`Alerts`], never
/// returned to a request.
///
/// # Example
///
/// ```
/// use understudy_observe::{Alert, AlertSink, DeliverFuture};
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
/// ```
pub trait AlertSink: Send + Sync + 'static {
    /// A short, stable name for logs and the `sink` metric label.
    fn name(&self) -> &'static str;

    /// Delivers one alert.
    fn deliver<'a>(&'a self, alert: &'a Alert) -> DeliverFuture<'a>;
}

impl<S: AlertSink + ?Sized> AlertSink for Arc<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> DeliverFuture<'a> {
        (**self).deliver(alert)
    }
}

/// Formats a time as RFC 3339 in UTC, with milliseconds.
fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let at = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        assert_eq!(rfc3339(at), "2024-02-29T23:59:59.123Z");
        let at = UNIX_EPOCH + Duration::from_hours(264_384);
        assert_eq!(rfc3339(at), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn text_lists_fields_in_order() {
        let alert = Alert::new(
            AlertKind::RouteUnavailable,
            "chat",
            "every target unavailable",
        )
        .with_field("attempts", "0")
        .with_field("all_unavailable", "true");
        assert_eq!(
            alert.text(),
            "[critical] route_unavailable chat: every target unavailable \
             (all_unavailable=true, attempts=0)"
        );
        let json = alert.to_json();
        assert_eq!(json["kind"], "route_unavailable");
        assert_eq!(json["fields"]["attempts"], "0");
    }
}
