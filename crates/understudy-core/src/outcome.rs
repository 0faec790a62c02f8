//! What one upstream attempt came to.
//!
//! Every layer reads the same [`Outcome`]: health decides whether it counts
//! against the provider, retry whether it is worth another try on the same
//! provider, fallback whether to move on to the next target, and observe how
//! to log and count it. The three questions are answered here, once:
//!
//! | outcome                                   | counts against health | retry same provider | fail over          |
//! |-------------------------------------------|:---------------------:|:-------------------:|:------------------:|
//! | `Success`                                 | no                    | no                  | no                 |
//! | `ClientError(Rejected(_))` (400, 404, …)  | no                    | no                  | no                 |
//! | `ClientError(ContextLengthExceeded)`      | no                    | no                  | opt-in             |
//! | `ClientError(ContentFiltered)`            | no                    | no                  | opt-in             |
//! | `Failure(Connect)`                        | yes                   | yes                 | yes                |
//! | `Failure(Timeout)`                        | yes                   | yes                 | yes                |
//! | `Failure(Transport)`                      | yes                   | yes                 | yes                |
//! | `Failure(RateLimited { .. })`             | no (cooldown)         | yes, if short       | yes                |
//! | `Failure(Overloaded)` (503, 529)          | yes                   | yes                 | yes                |
//! | `Failure(Server(_))` (other 5xx)          | yes                   | yes                 | yes                |
//! | `Failure(StreamBroken)`                   | yes                   | yes                 | yes                |
//! | `Failure(Unauthorized(_))` (401, 403)     | yes                   | no                  | yes                |
//! | `Unavailable` (ejected, not sent)         | no                    | no                  | yes                |
//!
//! "Opt-in" means [`Outcome::is_failover`] says no, and a fallback policy may
//! choose otherwise (a larger-context target, another vendor's filter).

use std::fmt;
use std::time::Duration;

use http::StatusCode;

/// The classified result of one upstream attempt.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use understudy_core::{FailureKind, Outcome};
///
/// let limited = Outcome::Failure(FailureKind::RateLimited {
///     retry_after: Some(Duration::from_secs(2)),
/// });
/// assert!(limited.is_retryable());
/// assert!(limited.is_failover());
/// // A 429 is a cooldown, not a strike against the provider.
/// assert!(!limited.counts_against_health());
/// assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));
/// assert_eq!(limited.kind().as_str(), "rate_limited");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The provider answered with a usable response.
    Success,
    /// The caller's request was at fault; another provider would most
    /// likely refuse it too.
    ClientError(ClientErrorKind),
    /// The provider failed: worth counting, and usually worth another try.
    Failure(FailureKind),
    /// The target was not tried: it is ejected or cooling down.
    Unavailable,
}

/// Why a request was the caller's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientErrorKind {
    /// A 4xx the caller must fix (400, 404, 413, 422, …). A 401 or 403 is
    /// not one: it rejects the gateway's provider key, not the caller, and is
    /// [`FailureKind::Unauthorized`].
    Rejected(StatusCode),
    /// The prompt is longer than the model's context window. A target with a
    /// larger context may accept it.
    ContextLengthExceeded,
    /// The provider's content filter refused the prompt or the answer.
    /// Another vendor's filter may not.
    ContentFiltered,
}

/// How a provider failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The connection could not be made (refused, unreachable, DNS, TLS
    /// handshake).
    Connect,
    /// No answer in time (connect, response head, or first chunk).
    Timeout,
    /// The connection failed after it was made, before a full response head
    /// (reset, closed, malformed HTTP).
    Transport,
    /// 429: the provider asks us to slow down, maybe saying for how long.
    RateLimited {
        /// How long the provider asked us to wait, from `retry-after-ms`,
        /// `Retry-After` or the `x-ratelimit-reset-*` headers.
        retry_after: Option<Duration>,
    },
    /// 503 or 529: the provider is overloaded.
    Overloaded,
    /// Any other 5xx.
    Server(StatusCode),
    /// A 200 whose body or stream broke, or held only an error, before the
    /// first piece of content.
    StreamBroken,
    /// 401 or 403: the provider rejected the credentials the gateway sent
    /// (a revoked, expired or wrong key). From the caller's point of view
    /// this is the provider failing: it counts against health and fails
    /// over, but is never retried on the same provider, where the same key
    /// would be refused again.
    Unauthorized(StatusCode),
}

/// A field-less summary of an [`Outcome`]: cheap to compare and to use as
/// a bounded metric label or a policy key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum OutcomeKind {
    /// [`Outcome::Success`].
    Success,
    /// [`ClientErrorKind::Rejected`].
    ClientError,
    /// [`ClientErrorKind::ContextLengthExceeded`].
    ContextLengthExceeded,
    /// [`ClientErrorKind::ContentFiltered`].
    ContentFiltered,
    /// [`FailureKind::Connect`].
    Connect,
    /// [`FailureKind::Timeout`].
    Timeout,
    /// [`FailureKind::Transport`].
    Transport,
    /// [`FailureKind::RateLimited`].
    RateLimited,
    /// [`FailureKind::Overloaded`].
    Overloaded,
    /// [`FailureKind::Server`].
    Server,
    /// [`FailureKind::StreamBroken`].
    StreamBroken,
    /// [`FailureKind::Unauthorized`].
    Unauthorized,
    /// [`Outcome::Unavailable`].
    Unavailable,
}

// ===== impl Outcome =====

impl Outcome {
    /// Is this a success?
    pub const fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }

    /// Is this a provider failure (not a client error, not a skip)?
    pub const fn is_provider_failure(&self) -> bool {
        matches!(self, Self::Failure(_))
    }

    /// Does this outcome count against the provider's health?
    ///
    /// Provider failures do, except rate limiting, which puts the provider
    /// in a cooldown instead of adding a strike. Client errors and skipped
    /// attempts never do.
    pub const fn counts_against_health(&self) -> bool {
        match self {
            Self::Failure(kind) => !matches!(kind, FailureKind::RateLimited { .. }),
            Self::Success | Self::ClientError(_) | Self::Unavailable => false,
        }
    }

    /// Is this outcome worth another try on the same provider?
    ///
    /// Every provider failure is but a rejected key
    /// ([`FailureKind::Unauthorized`]), which the same provider would reject
    /// again; whether a rate-limited attempt is retried also depends on how
    /// long the provider asked us to wait, which is the retry policy's call.
    pub const fn is_retryable(&self) -> bool {
        matches!(self, Self::Failure(kind) if !matches!(kind, FailureKind::Unauthorized(_)))
    }

    /// Is this outcome worth sending the same request to the next target,
    /// by default?
    ///
    /// Provider failures and unavailable targets are. Context-length and
    /// content-filter errors are not by default; a fallback policy may opt
    /// in to them.
    pub const fn is_failover(&self) -> bool {
        matches!(self, Self::Failure(_) | Self::Unavailable)
    }

    /// How long the provider asked us to wait, for a rate-limited outcome.
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Failure(FailureKind::RateLimited { retry_after }) => *retry_after,
            _ => None,
        }
    }

    /// The field-less kind of this outcome.
    pub const fn kind(&self) -> OutcomeKind {
        match self {
            Self::Success => OutcomeKind::Success,
            Self::ClientError(ClientErrorKind::Rejected(_)) => OutcomeKind::ClientError,
            Self::ClientError(ClientErrorKind::ContextLengthExceeded) => {
                OutcomeKind::ContextLengthExceeded
            }
            Self::ClientError(ClientErrorKind::ContentFiltered) => OutcomeKind::ContentFiltered,
            Self::Failure(FailureKind::Connect) => OutcomeKind::Connect,
            Self::Failure(FailureKind::Timeout) => OutcomeKind::Timeout,
            Self::Failure(FailureKind::Transport) => OutcomeKind::Transport,
            Self::Failure(FailureKind::RateLimited { .. }) => OutcomeKind::RateLimited,
            Self::Failure(FailureKind::Overloaded) => OutcomeKind::Overloaded,
            Self::Failure(FailureKind::Server(_)) => OutcomeKind::Server,
            Self::Failure(FailureKind::StreamBroken) => OutcomeKind::StreamBroken,
            Self::Failure(FailureKind::Unauthorized(_)) => OutcomeKind::Unauthorized,
            Self::Unavailable => OutcomeKind::Unavailable,
        }
    }

    /// The HTTP status the provider answered with, where there was one.
    pub const fn status(&self) -> Option<StatusCode> {
        match self {
            Self::ClientError(ClientErrorKind::Rejected(status))
            | Self::Failure(FailureKind::Server(status) | FailureKind::Unauthorized(status)) => {
                Some(*status)
            }
            Self::Failure(FailureKind::RateLimited { .. }) => Some(StatusCode::TOO_MANY_REQUESTS),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Success => f.write_str("success"),
            Self::ClientError(ClientErrorKind::Rejected(status)) => {
                write!(f, "client error ({})", status.as_u16())
            }
            Self::ClientError(ClientErrorKind::ContextLengthExceeded) => {
                f.write_str("context length exceeded")
            }
            Self::ClientError(ClientErrorKind::ContentFiltered) => f.write_str("content filtered"),
            Self::Failure(FailureKind::Connect) => f.write_str("connect error"),
            Self::Failure(FailureKind::Timeout) => f.write_str("timed out"),
            Self::Failure(FailureKind::Transport) => f.write_str("connection failed"),
            Self::Failure(FailureKind::RateLimited { retry_after: None }) => {
                f.write_str("rate limited")
            }
            Self::Failure(FailureKind::RateLimited {
                retry_after: Some(wait),
            }) => write!(f, "rate limited (retry after {}ms)", wait.as_millis()),
            Self::Failure(FailureKind::Overloaded) => f.write_str("overloaded"),
            Self::Failure(FailureKind::Server(status)) => {
                write!(f, "server error ({})", status.as_u16())
            }
            Self::Failure(FailureKind::StreamBroken) => f.write_str("stream broken"),
            Self::Failure(FailureKind::Unauthorized(status)) => {
                write!(f, "credentials rejected ({})", status.as_u16())
            }
            Self::Unavailable => f.write_str("unavailable"),
        }
    }
}

// ===== impl OutcomeKind =====

impl OutcomeKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 13] = [
        Self::Success,
        Self::ClientError,
        Self::ContextLengthExceeded,
        Self::ContentFiltered,
        Self::Connect,
        Self::Timeout,
        Self::Transport,
        Self::RateLimited,
        Self::Overloaded,
        Self::Server,
        Self::StreamBroken,
        Self::Unauthorized,
        Self::Unavailable,
    ];

    /// A stable `snake_case` name, fit for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ClientError => "client_error",
            Self::ContextLengthExceeded => "context_length_exceeded",
            Self::ContentFiltered => "content_filtered",
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Transport => "transport",
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::Server => "server_error",
            Self::StreamBroken => "stream_broken",
            Self::Unauthorized => "unauthorized",
            Self::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_outcome() -> Vec<Outcome> {
        vec![
            Outcome::Success,
            Outcome::ClientError(ClientErrorKind::Rejected(StatusCode::BAD_REQUEST)),
            Outcome::ClientError(ClientErrorKind::ContextLengthExceeded),
            Outcome::ClientError(ClientErrorKind::ContentFiltered),
            Outcome::Failure(FailureKind::Connect),
            Outcome::Failure(FailureKind::Timeout),
            Outcome::Failure(FailureKind::Transport),
            Outcome::Failure(FailureKind::RateLimited { retry_after: None }),
            Outcome::Failure(FailureKind::Overloaded),
            Outcome::Failure(FailureKind::Server(StatusCode::BAD_GATEWAY)),
            Outcome::Failure(FailureKind::StreamBroken),
            Outcome::Failure(FailureKind::Unauthorized(StatusCode::UNAUTHORIZED)),
            Outcome::Unavailable,
        ]
    }

    #[test]
    fn kinds_cover_every_outcome_once() {
        let kinds: Vec<_> = every_outcome().iter().map(Outcome::kind).collect();
        assert_eq!(kinds, OutcomeKind::ALL);
    }

    #[test]
    fn answers_the_three_questions() {
        // (counts against health, retry, fail over), in `every_outcome` order.
        let expected = [
            (false, false, false),
            (false, false, false),
            (false, false, false),
            (false, false, false),
            (true, true, true),
            (true, true, true),
            (true, true, true),
            (false, true, true),
            (true, true, true),
            (true, true, true),
            (true, true, true),
            (true, false, true),
            (false, false, true),
        ];
        for (outcome, want) in every_outcome().into_iter().zip(expected) {
            let got = (
                outcome.counts_against_health(),
                outcome.is_retryable(),
                outcome.is_failover(),
            );
            assert_eq!(got, want, "{outcome:?}");
        }
    }

    #[test]
    fn labels_are_unique_snake_case() {
        let mut names: Vec<_> = OutcomeKind::ALL.iter().map(|k| k.as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OutcomeKind::ALL.len());
    }

    #[test]
    fn display_is_lowercase_and_says_the_wait() {
        let limited = Outcome::Failure(FailureKind::RateLimited {
            retry_after: Some(Duration::from_millis(1500)),
        });
        assert_eq!(limited.to_string(), "rate limited (retry after 1500ms)");
        assert_eq!(
            Outcome::Failure(FailureKind::Server(StatusCode::BAD_GATEWAY)).to_string(),
            "server error (502)"
        );
    }
}
