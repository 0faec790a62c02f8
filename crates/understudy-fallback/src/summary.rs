//! [`AttemptSummary`]: what happened at each target of a request that no
//! target could serve, and the one error the caller gets for it.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use understudy_core::error::UnavailableKind;
use understudy_core::{FailureKind, OpenAiError, Outcome};

/// One target's part in a failed request: tried and failed, or skipped
/// because health reported it unavailable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptSummary {
    /// The provider.
    pub provider: Arc<str>,
    /// The model it was (or would have been) asked for.
    pub model: Arc<str>,
    /// How it went; [`Outcome::Unavailable`] when skipped.
    pub outcome: Outcome,
    /// Why it was skipped without being tried, if it was.
    pub skipped: Option<UnavailableKind>,
    /// When a skipped target is expected back, if known.
    pub until: Option<Instant>,
}

impl AttemptSummary {
    /// Was this target rate limited (a 429, or a skip while cooling down)?
    const fn rate_limited(&self) -> bool {
        matches!(
            (self.outcome, self.skipped),
            (Outcome::Failure(FailureKind::RateLimited { .. }), _)
                | (_, Some(UnavailableKind::CoolingDown))
        )
    }

    /// How long before this rate-limited target takes requests again, if
    /// known.
    fn rate_limit_wait(&self, now: Instant) -> Option<Duration> {
        match self.outcome {
            Outcome::Failure(FailureKind::RateLimited { retry_after }) => retry_after,
            _ => self.until.map(|until| until.saturating_duration_since(now)),
        }
    }
}

impl fmt::Display for AttemptSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}: ", self.provider, self.model)?;
        match self.skipped {
            Some(kind) => write!(f, "skipped ({kind})"),
            None => write!(f, "{}", self.outcome),
        }
    }
}

/// The attempts of a request that every target failed, in the order they
/// were made; in the extensions of the error response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailedAttempts(pub Vec<AttemptSummary>);

/// The caller's error when no target served the request: 429 when every
/// target was rate limited (with the smallest known wait), 503 when none
/// could be tried, 502 otherwise; the message lists every attempt.
pub(crate) fn all_failed(route: Option<&str>, attempts: &[AttemptSummary]) -> OpenAiError {
    let mut message = String::with_capacity(64 + attempts.len() * 48);
    match route {
        Some(route) => {
            let _ = write!(message, "no provider could serve model `{route}`");
        }
        None => message.push_str("no provider could serve the request"),
    }
    for (i, attempt) in attempts.iter().enumerate() {
        message.push_str(if i == 0 { ": " } else { "; " });
        let _ = write!(message, "{attempt}");
    }
    if attempts.is_empty() {
        message.push_str(": no targets");
    }

    let now = Instant::now();
    if !attempts.is_empty() && attempts.iter().all(AttemptSummary::rate_limited) {
        let shortest = attempts.iter().filter_map(|a| a.rate_limit_wait(now)).min();
        return OpenAiError::rate_limited(message, shortest);
    }
    let error = if attempts
        .iter()
        .all(|a| matches!(a.outcome, Outcome::Unavailable))
    {
        OpenAiError::service_unavailable(message)
    } else {
        OpenAiError::bad_gateway(message)
    };
    error.with_code("all_providers_failed")
}
