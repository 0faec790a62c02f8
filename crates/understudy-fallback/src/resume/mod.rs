//! Resuming a stream that broke after its commit: the answer goes on from
//! another target instead of ending with an error event.
//!
//! When a route resumes ([`FallbackBuilder::resume`](crate::FallbackBuilder::resume)),
//! the [`Fallback`](crate::Fallback) marks each attempt resumable, so
//! the first-chunk guard ends a broken chat-shaped stream with a
//! break error instead of an error event, and wraps the
//! committed stream in a body that reads its events. On a break (a cut, a
//! stall past the idle timeout, a malformed event, an error event) before
//! the stream finished, the next available target gets a continuation
//! request ([`Prefill`]), and its content is spliced into the same stream
//! (see `splice.rs` for the rules).

mod body;
mod dispatch;
mod prefill;
mod splice;

use std::error::Error;
use std::fmt;

pub(crate) use self::dispatch::resumable;
pub use self::prefill::{CONTINUE_INSTRUCTION, Prefill, continuation_body};

/// The most content a stream may have sent and still be resumed, by
/// default: 1 MiB.
pub const DEFAULT_MAX_RESUME_BYTES: usize = 1024 * 1024;

/// A route's resume settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResumeSettings {
    pub(crate) max_resume_bytes: usize,
    pub(crate) max_event_bytes: usize,
}

/// A request extension: this attempt's stream is resumed above if it
/// breaks, so the first-chunk guard ends a break with an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Resumable;

/// How a committed stream broke, as the first-chunk guard saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BreakReason {
    /// The connection or body failed.
    Cut,
    /// Nothing arrived for the idle timeout.
    Stall,
    /// An event that is not a chunk.
    Malformed,
    /// An error event.
    ErrorEvent,
}

impl BreakReason {
    /// The label of metrics and logs.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Cut => "cut",
            Self::Stall => "stall",
            Self::Malformed => "malformed",
            Self::ErrorEvent => "error_event",
        }
    }
}

/// A resumable stream broke after its commit.
#[derive(Debug)]
pub(crate) struct BrokeAfterCommit {
    pub(crate) reason: BreakReason,
    pub(crate) message: String,
}

impl fmt::Display for BrokeAfterCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for BrokeAfterCommit {}
