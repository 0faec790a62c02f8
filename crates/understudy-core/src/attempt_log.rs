//! [`AttemptLog`]: every upstream attempt and skipped target of one caller
//! request, in order, shared by the layers that see them.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::StatusCode;

use crate::error::UnavailableKind;
use crate::outcome::OutcomeKind;

/// The most entries a log keeps; later ones are counted, not kept.
pub const MAX_LOGGED_ATTEMPTS: usize = 16;

/// What became of one target of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptResult {
    /// Sent upstream; the response head (or an error) came back.
    Sent {
        /// The upstream status, if a response head arrived.
        status: Option<StatusCode>,
        /// The attempt's outcome.
        outcome: OutcomeKind,
        /// From sending the attempt to its response head or error.
        duration: Duration,
    },
    /// Not sent: health reported the target unavailable.
    Skipped(UnavailableKind),
}

/// One entry of an [`AttemptLog`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptEntry {
    /// The provider's configured name.
    pub provider: Arc<str>,
    /// What became of it.
    pub result: AttemptResult,
}

#[derive(Debug, Default)]
struct Entries {
    kept: Vec<AttemptEntry>,
    /// Entries past [`MAX_LOGGED_ATTEMPTS`].
    more: u32,
    /// The sum of the attempts' durations.
    upstream: Duration,
    /// How many attempts were sent.
    sent: u32,
}

/// The attempts and skips of one caller request, in order: a request
/// extension (cheap to clone; every clone is the same log) that the
/// outermost layer inserts, the attempt layer and fallback append to, and
/// the outermost layer reads when the response head is ready.
///
/// At most [`MAX_LOGGED_ATTEMPTS`] entries are kept; the time spent
/// upstream counts them all.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use understudy_core::{AttemptLog, OutcomeKind, UnavailableKind};
///
/// let log = AttemptLog::new();
/// log.skipped("primary", UnavailableKind::Ejected);
/// log.sent("backup", Some(StatusCode::SERVICE_UNAVAILABLE), OutcomeKind::Overloaded, Duration::from_millis(12));
/// log.sent("backup", Some(StatusCode::OK), OutcomeKind::Success, Duration::from_millis(240));
/// assert_eq!(
///     log.chain(),
///     "primary;skipped=ejected, backup;status=503;ms=12, backup;status=200;ms=240"
/// );
/// assert_eq!(log.upstream(), Duration::from_millis(252));
/// ```
#[derive(Clone, Debug, Default)]
pub struct AttemptLog(Arc<Mutex<Entries>>);

impl AttemptLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an attempt sent to `provider`.
    pub fn sent(
        &self,
        provider: impl Into<Arc<str>>,
        status: Option<StatusCode>,
        outcome: OutcomeKind,
        duration: Duration,
    ) {
        let mut entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        entries.upstream = entries.upstream.saturating_add(duration);
        entries.sent = entries.sent.saturating_add(1);
        entries.push(AttemptEntry {
            provider: provider.into(),
            result: AttemptResult::Sent {
                status,
                outcome,
                duration,
            },
        });
    }

    /// Appends a target skipped because `provider` was unavailable.
    pub fn skipped(&self, provider: impl Into<Arc<str>>, kind: UnavailableKind) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(AttemptEntry {
                provider: provider.into(),
                result: AttemptResult::Skipped(kind),
            });
    }

    /// The time spent in upstream attempts (the sum of their durations to
    /// their response heads or errors).
    pub fn upstream(&self) -> Duration {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upstream
    }

    /// How many attempts were sent (skipped targets aside), kept or not.
    pub fn sent_count(&self) -> u32 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).sent
    }

    /// How many entries were appended, kept or not.
    pub fn len(&self) -> usize {
        let entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .kept
            .len()
            .saturating_add(usize::try_from(entries.more).unwrap_or(usize::MAX))
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kept entries, in order.
    pub fn entries(&self) -> Vec<AttemptEntry> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .kept
            .clone()
    }

    /// The log as the `x-understudy-attempt-chain` header value: entries
    /// separated by `", "`, each `provider;status=503;ms=12` (an attempt
    /// with a response head), `provider;error=timeout;ms=30000` (an
    /// attempt that ended in an error: its outcome kind) or
    /// `provider;skipped=ejected` (`ejected`, `cooling_down`, `probing`);
    /// `", ..."` ends a log that kept only its first entries.
    pub fn chain(&self) -> String {
        let entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::with_capacity(entries.kept.len().saturating_mul(32));
        for (i, entry) in entries.kept.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{entry}");
        }
        if entries.more > 0 {
            out.push_str(", ...");
        }
        out
    }
}

impl Entries {
    fn push(&mut self, entry: AttemptEntry) {
        if self.kept.len() < MAX_LOGGED_ATTEMPTS {
            self.kept.push(entry);
        } else {
            self.more = self.more.saturating_add(1);
        }
    }
}

impl fmt::Display for AttemptEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.provider)?;
        match self.result {
            AttemptResult::Sent {
                status: Some(status),
                duration,
                ..
            } => write!(f, ";status={};ms={}", status.as_u16(), duration.as_millis()),
            AttemptResult::Sent {
                status: None,
                outcome,
                duration,
            } => write!(f, ";error={};ms={}", outcome.as_str(), duration.as_millis()),
            AttemptResult::Skipped(kind) => {
                let kind = match kind {
                    UnavailableKind::CoolingDown => "cooling_down",
                    UnavailableKind::Probing => "probing",
                    UnavailableKind::Ejected => "ejected",
                };
                write!(f, ";skipped={kind}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_the_bound_and_counts_the_rest() {
        let log = AttemptLog::new();
        for _ in 0..20 {
            log.sent("p", None, OutcomeKind::Timeout, Duration::from_millis(1));
        }
        assert_eq!(log.entries().len(), MAX_LOGGED_ATTEMPTS);
        assert_eq!(log.len(), 20);
        assert_eq!(log.sent_count(), 20);
        assert_eq!(log.upstream(), Duration::from_millis(20));
        let chain = log.chain();
        assert!(chain.starts_with("p;error=timeout;ms=1, "));
        assert!(chain.ends_with(", ..."));
        assert_eq!(chain.matches("p;").count(), MAX_LOGGED_ATTEMPTS);
    }

    #[test]
    fn clones_share_one_log() {
        let log = AttemptLog::new();
        log.clone().skipped("a", UnavailableKind::CoolingDown);
        assert_eq!(log.chain(), "a;skipped=cooling_down");
        assert!(!log.is_empty());
        assert_eq!(log.sent_count(), 0);
    }
}
