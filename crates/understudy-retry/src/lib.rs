//! Budgeted retry for one LLM provider target.
//!
//! [`RetryLayer`] wraps one target's stack (typically the health layer and
//! the provider) and retries what is worth retrying on the *same* provider,
//! leaving the rest to the fallback above it:
//!
//! - Only outcomes with [`Outcome::is_retryable`] are retried: connect
//!   errors, timeouts, broken connections, 5xx, 503/529 overload, and 429.
//!   Client errors, context-length and content-filter errors, a provider's
//!   401/403 (its key was rejected: the same key would be rejected again),
//!   and [`Outcome::Unavailable`] (the health layer failing fast) go
//!   straight back.
//! - The wait is exponential [`Backoff`] with full jitter, or the provider's
//!   `Retry-After` when it gave one. A `Retry-After` longer than
//!   `max_retry_after` is not waited for: the result goes back at once so
//!   the fallback can move on instead of holding the caller.
//! - A [`RetryBudget`] shared by every request to the target caps retries at
//!   a share of recent requests, so a sick provider cannot cause a retry
//!   storm.
//! - The request's [`Deadline`] bounds everything: no wait runs past it, and
//!   no retry starts with less than `min_remaining` left.
//!
//! Each attempt is rebuilt from the same [`ReplayBody`] (a reference-count
//! share, never a copy) and carries its [`Attempt`] number; an
//! [`AttemptCounter`] in the request, if any, gains one per re-send.
//!
//! # Configuration
//!
//! [`RetryConfig`] holds the settings; [`RetryConfig::validate`] checks them
//! against the limits ([`MAX_RETRIES`], durations of at most a day). With
//! the `serde` feature it deserialises from a file's `[retry]`-style map,
//! checked the same way.
//!
//! # Differences from `tower::retry`
//!
//! tower's `Retry` takes a user policy and knows nothing of HTTP; this layer
//! is that policy, written for LLM providers, plus the budget, the deadline,
//! `Retry-After` and attempt bookkeeping. Its future is boxed: a retry loop
//! with sleeps is clearer as `async` code, and the box costs one allocation
//! per request.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use understudy_core::ReplayBody;
//! use understudy_retry::{RetryConfig, RetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let counted = calls.clone();
//! let flaky = service_fn(move |_request: Request<ReplayBody>| {
//!     let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     async move {
//!         let status = if n == 0 { 503 } else { 200 };
//!         Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(()).unwrap())
//!     }
//! });
//! let config = RetryConfig::default().max_retries(2);
//! let service = ServiceBuilder::new()
//!     .layer(RetryLayer::new(config).provider("openai"))
//!     .service(flaky);
//! let response = service.oneshot(Request::new(ReplayBody::from("{}"))).await.unwrap();
//! assert_eq!(response.status(), 200);
//! assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// Waits come from providers' headers and from configuration: every sum
// saturates.
#![warn(clippy::arithmetic_side_effects)]

mod backoff;
mod budget;
mod config;
pub mod error;
pub mod future;
mod layer;
mod service;

pub use self::backoff::{Backoff, InvalidBackoff, Jitter, RandomJitter};
pub use self::budget::RetryBudget;
pub use self::config::{MAX_RETRIES, RetryConfig, RetryOverrides};
pub use self::error::RetryError;
pub use self::layer::RetryLayer;
pub use self::service::Retry;
#[doc(no_inline)]
pub use understudy_core::{Attempt, AttemptCounter, Deadline, Outcome, ReplayBody};
