//! Understudy keeps LLM calls alive when a provider fails.
//!
//! This facade re-exports the Understudy crates behind cargo features, all
//! but `shared-health` on by default:
//!
//! | feature | crate | what it holds |
//! |---------|-------|---------------|
//! | `core`  | [`understudy-core`](core) | outcomes and classification, the replayable body, request extensions, the OpenAI error shape |
//! | `health` | [`understudy-health`](health) | `HealthRegistry`, `HealthLayer`: ejection, 429 cooldowns, half-open trials, active probes |
//! | `retry` | [`understudy-retry`](retry) | `RetryLayer`: full-jitter backoff, `Retry-After`, a retry budget, the request deadline |
//! | `fallback` | [`understudy-fallback`](fallback) | `Fallback`: ordered targets and balanced tiers, `FallbackPolicy` (`FallbackRules` by default), the `FirstChunk` commit point |
//! | `observe` | [`understudy-observe`](observe) | `ObserveLayer`: spans, metrics, alerts and the webhook sink |
//! | `provider` | [`understudy-provider`](provider) | provider services: OpenAI-compatible and Anthropic over hyper + rustls |
//! | `shared-health` (off by default: it brings the `redis` client) | `understudy-shared-health` (`shared_health`) | provider health shared between replicas through Redis |
//! | `stack` | [`understudy-stack`](stack) | `TargetStack`: the one builder of a target's layers, in order and wired together |
//!
//! The `serde` feature (off by default) adds `Deserialize` to the
//! configuration types of the enabled crates (`RetryConfig`, `HealthConfig`,
//! `FallbackPolicy`, `ProviderConfig`, `ClientConfig`), each checked as it
//! is read.
//!
//! # Example
//!
//! ```
//! use understudy::core::{Outcome, OutcomeKind};
//!
//! assert_eq!(Outcome::Unavailable.kind(), OutcomeKind::Unavailable);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "core")]
#[doc(inline)]
pub use understudy_core as core;

#[cfg(feature = "health")]
#[doc(inline)]
pub use understudy_health as health;

#[cfg(feature = "retry")]
#[doc(inline)]
pub use understudy_retry as retry;

#[cfg(feature = "fallback")]
#[doc(inline)]
pub use understudy_fallback as fallback;

#[cfg(feature = "observe")]
#[doc(inline)]
pub use understudy_observe as observe;

#[cfg(feature = "provider")]
#[doc(inline)]
pub use understudy_provider as provider;

#[cfg(feature = "stack")]
#[doc(inline)]
pub use understudy_stack as stack;

#[cfg(feature = "shared-health")]
#[doc(inline)]
pub use understudy_shared_health as shared_health;

#[cfg(feature = "stack")]
#[doc(inline)]
pub use understudy_stack::TargetStack;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
