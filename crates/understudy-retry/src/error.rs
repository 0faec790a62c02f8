//! The error returned when retries end on an error.

use understudy_core::{BoxError, Outcome};

/// Retries ended and the last attempt failed with an error.
///
/// Carries the last outcome and the number of attempts made; the last
/// attempt's error stays in the source chain, so
/// [`LlmClassifier`](understudy_core::LlmClassifier) classifies this error as
/// it classified that one.
#[derive(Debug, thiserror::Error)]
#[error("gave up after {attempts} attempt(s): {outcome}")]
pub struct RetryError {
    attempts: u32,
    outcome: Outcome,
    #[source]
    source: BoxError,
}

impl RetryError {
    pub(crate) fn new(attempts: u32, outcome: Outcome, source: BoxError) -> Self {
        Self {
            attempts,
            outcome,
            source,
        }
    }

    /// Attempts made, the first included.
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last attempt's outcome.
    pub const fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The last attempt's error.
    pub fn into_source(self) -> BoxError {
        self.source
    }
}
