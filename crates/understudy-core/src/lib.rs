//! The shared vocabulary of Understudy.
//!
//! Every other Understudy crate builds on these pieces, and on nothing of
//! each other's:
//!
//! - [`Outcome`]: what one upstream attempt came to (success, the caller's
//!   fault, a provider failure of some [`FailureKind`], or a target skipped
//!   as [`Unavailable`]), and whether it counts against health, is worth a
//!   retry, or is worth failing over.
//! - [`Classify`] and [`LlmClassifier`]: turning responses and errors into
//!   outcomes, with `Retry-After` and the providers' error bodies understood.
//! - [`ReplayBody`] and [`ReplayLayer`]: the request body, collected once up
//!   to a limit and shared by reference count with every attempt.
//! - [`OpenAiError`]: the OpenAI error shape every error is rendered in.
//! - Request extensions the layers share: [`RouteName`], [`TargetName`],
//!   [`Attempt`], [`AttemptCounter`], [`Deadline`], and [`CallerName`] on
//!   responses; [`RequestDeadlineLayer`]
//!   sets the deadline for a whole request (every retry and fallback hop
//!   honours it) and answers 504 when it passes.
//! - [`ProviderAvailability`]: the question fallback asks and health
//!   answers, and [`ProviderState`].
//! - [`events::Observer`]: where health, retry and fallback report
//!   [`events::Event`]s, which observability turns into logs, metrics and
//!   alerts.
//! - [`ResponseBody`], the boxed response body target stacks return, and
//!   [`sse::SseDecoder`], which reads provider streams event by event.
//! - [`time::saturating_add`]: deadlines and cooldowns that cannot overflow,
//!   whatever duration a header or a configuration holds.
//! - [`lane`]: which serving thread runs the current code, for state kept
//!   per thread (upstream connection pools).
//! - [`config`]: the one-day limit on configured durations and
//!   [`config::InvalidSetting`], the error every crate's configuration
//!   checks return.
//!
//! # Example: classifying what a provider answered
//!
//! ```
//! use http::Response;
//! use understudy_core::{Classify, FailureKind, LlmClassifier, Outcome};
//!
//! let response = Response::builder()
//!     .status(429)
//!     .header("retry-after-ms", "1500")
//!     .body(())
//!     .unwrap();
//! let outcome = LlmClassifier::new().classify_response(&response);
//! assert_eq!(outcome.retry_after(), Some(std::time::Duration::from_millis(1500)));
//! assert!(matches!(outcome, Outcome::Failure(FailureKind::RateLimited { .. })));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod anthropic_error;
pub mod attempt_log;
pub mod availability;
pub mod body;
pub mod classify;
pub mod config;
pub mod deadline;
pub mod error;
pub mod events;
pub mod extensions;
mod hold;
pub mod lane;
mod openai_error;
pub mod outcome;
pub mod replay;
pub mod request_id;
pub mod sse;
pub mod time;

pub use self::anthropic_error::anthropic_error_type;
pub use self::attempt_log::{AttemptEntry, AttemptLog, AttemptResult, MAX_LOGGED_ATTEMPTS};
pub use self::availability::{AlwaysAvailable, Availability, ProviderAvailability, ProviderState};
pub use self::body::ResponseBody;
pub use self::classify::{Classify, LlmClassifier, MAX_RETRY_AFTER, SharedClassifier};
pub use self::deadline::{RequestDeadline, RequestDeadlineLayer};
pub use self::error::{
    BoxError, ClassifiedError, ErrorBody, ErrorObject, OpenAiError, Unavailable, UnavailableKind,
    cause_ref, is_caused_by,
};
pub use self::extensions::{
    Attempt, AttemptCounter, CallerName, Deadline, Operation, PanicRouting, RouteName, TargetName,
    UnaskedUsage,
};
pub use self::hold::HoldBody;
pub use self::outcome::{ClientErrorKind, FailureKind, Outcome, OutcomeKind};
pub use self::replay::{Replay, ReplayBody, ReplayLayer};
