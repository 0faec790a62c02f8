//! Errors the project emits, and the OpenAI error shape every one of them is
//! rendered in.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;

pub use crate::openai_error::{ErrorBody, ErrorObject, OpenAiError};
use crate::outcome::Outcome;

/// A boxed error, as tower uses.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The state that made a target unavailable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnavailableKind {
    /// Ejected after failing.
    Ejected,
    /// Cooling down after a 429.
    CoolingDown,
    /// Half-open, with its one trial request already in flight.
    Probing,
}

impl UnavailableKind {
    /// A short lowercase name: `"ejected"`, `"cooling down"`, `"probing"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ejected => "ejected",
            Self::CoolingDown => "cooling down",
            Self::Probing => "probing",
        }
    }
}

impl fmt::Display for UnavailableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A target refused an attempt without sending it upstream: it is ejected,
/// cooling down, or probing with its trial already taken.
///
/// The health layer fails fast with this error; retry never retries it and
/// fallback moves to the next target. [`LlmClassifier`](crate::LlmClassifier)
/// classifies it as [`Outcome::Unavailable`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use understudy_core::{Unavailable, UnavailableKind};
///
/// let until = Instant::now() + Duration::from_secs(30);
/// let error = Unavailable::new("openai", UnavailableKind::Ejected, "5 consecutive failures")
///     .with_until(until);
/// assert_eq!(error.provider(), "openai");
/// assert_eq!(error.until(), Some(until));
/// assert!(error.to_string().starts_with("provider `openai` is ejected (5 consecutive failures)"));
/// ```
#[derive(Clone, Debug)]
pub struct Unavailable {
    provider: Arc<str>,
    kind: UnavailableKind,
    reason: Cow<'static, str>,
    until: Option<Instant>,
}

// ===== impl Unavailable =====

impl Unavailable {
    /// A provider is unavailable, in a state, for a reason (never a secret).
    pub fn new(
        provider: impl Into<Arc<str>>,
        kind: UnavailableKind,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            provider: provider.into(),
            kind,
            reason: reason.into(),
            until: None,
        }
    }

    /// Sets when the provider is expected back.
    pub fn with_until(mut self, until: Instant) -> Self {
        self.until = Some(until);
        self
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The state that made it unavailable.
    pub const fn kind(&self) -> UnavailableKind {
        self.kind
    }

    /// Why, in a few words.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// When the provider is expected back, if known.
    pub const fn until(&self) -> Option<Instant> {
        self.until
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.kind {
            UnavailableKind::Ejected => "is ejected",
            UnavailableKind::CoolingDown => "is cooling down",
            UnavailableKind::Probing => "is probing",
        };
        write!(f, "provider `{}` {state} ({})", self.provider, self.reason)?;
        if let Some(until) = self.until {
            let left = until.saturating_duration_since(Instant::now());
            write!(f, " for another {}ms", left.as_millis())?;
        }
        Ok(())
    }
}

impl Error for Unavailable {}

/// An error that already knows its [`Outcome`].
///
/// A service that knows better than the default classification (a provider
/// that saw a connect error, a stream guard that saw an error event) wraps
/// its error in this; [`LlmClassifier`](crate::LlmClassifier) finds it
/// anywhere in the source chain and trusts it.
///
/// # Example
///
/// ```
/// use understudy_core::{BoxError, Classify, ClassifiedError, FailureKind, LlmClassifier, Outcome};
///
/// let error: BoxError = ClassifiedError::new(Outcome::Failure(FailureKind::StreamBroken))
///     .with_source("event: error before any content")
///     .into();
/// assert_eq!(
///     LlmClassifier::new().classify_error(&*error),
///     Outcome::Failure(FailureKind::StreamBroken),
/// );
/// assert_eq!(error.to_string(), "stream broken");
/// ```
#[derive(Debug)]
pub struct ClassifiedError {
    outcome: Outcome,
    source: Option<BoxError>,
}

// ===== impl ClassifiedError =====

impl ClassifiedError {
    /// An error with an outcome.
    pub const fn new(outcome: Outcome) -> Self {
        Self {
            outcome,
            source: None,
        }
    }

    /// Sets the underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The outcome.
    pub const fn outcome(&self) -> Outcome {
        self.outcome
    }
}

impl fmt::Display for ClassifiedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.outcome, f)
    }
}

impl Error for ClassifiedError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// Is `error`, or any error in its source chain, an `E`?
///
/// ```
/// use understudy_core::{ClassifiedError, Outcome, Unavailable, UnavailableKind, is_caused_by};
///
/// let error = ClassifiedError::new(Outcome::Unavailable)
///     .with_source(Unavailable::new("openai", UnavailableKind::Probing, "trial in flight"));
/// assert!(is_caused_by::<Unavailable>(&error));
/// assert!(!is_caused_by::<std::io::Error>(&error));
/// ```
pub fn is_caused_by<E: Error + 'static>(error: &(dyn Error + 'static)) -> bool {
    cause_ref::<E>(error).is_some()
}

/// The first `E` in `error`'s source chain, `error` itself included.
pub fn cause_ref<'a, E: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn unavailable_says_until_when_and_why() {
        let error = Unavailable::new("anthropic", UnavailableKind::CoolingDown, "rate limited")
            .with_until(Instant::now() + Duration::from_secs(7));
        assert_eq!(
            error.to_string(),
            "provider `anthropic` is cooling down (rate limited) for another 7000ms"
        );
        tokio::time::advance(Duration::from_secs(8)).await;
        assert!(error.to_string().ends_with("for another 0ms"));
    }
}
