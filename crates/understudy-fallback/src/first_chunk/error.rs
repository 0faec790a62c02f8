//! Why a response failed before its commit point.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use understudy_core::{BoxError, ClassifiedError, FailureKind, Outcome, cause_ref};

/// A body error before the commit point: the error's own classification
/// when it carries one (an Anthropic `error` event translated upstream),
/// otherwise a broken stream.
pub(super) fn body_failure(error: BoxError) -> BoxError {
    let outcome = cause_ref::<ClassifiedError>(&*error).map_or(
        Outcome::Failure(FailureKind::StreamBroken),
        ClassifiedError::outcome,
    );
    ClassifiedError::new(outcome).with_source(error).into()
}

pub(super) fn broken(source: impl Error + Send + Sync + 'static) -> BoxError {
    ClassifiedError::new(Outcome::Failure(FailureKind::StreamBroken))
        .with_source(source)
        .into()
}

/// A stream sent no content within the first-chunk timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstChunkTimeout {
    pub(super) after: Duration,
}

impl FirstChunkTimeout {
    /// The timeout that passed.
    pub const fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for FirstChunkTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no content chunk within the first-chunk timeout of {} ms",
            self.after.as_millis()
        )
    }
}

impl Error for FirstChunkTimeout {}

/// A stream sent bytes that are not UTF-8 before any content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamNotUtf8;

impl fmt::Display for StreamNotUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the stream sent bytes that are not UTF-8 before any content")
    }
}

impl Error for StreamNotUtf8 {}

/// A stream ended, failed or reported an error before any content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamEndedEarly;

impl fmt::Display for StreamEndedEarly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the stream ended before any content")
    }
}

impl Error for StreamEndedEarly {}
