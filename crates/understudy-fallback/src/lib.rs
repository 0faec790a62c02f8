//! The same request, transparently, to the next provider.
//!
//! [`Fallback`] is a `Service<Request<ReplayBody>>` over an ordered list of
//! [`Target`]s, each a cloneable service stack for one provider and model.
//! It skips targets that health reports unavailable, fails over on the
//! outcomes its [`FallbackPolicy`] names, tries every target anyway when all
//! are unavailable ([`PanicMode`]), marks the served response with
//! `x-understudy-provider`, `x-understudy-model` and `x-understudy-attempts`,
//! and answers one OpenAI-shaped error listing every attempt when no target
//! could serve the request.
//!
//! [`FirstChunk`] is the commit point at the bottom of each target stack: a
//! response is released only once it is safe (a body read whole, a stream
//! with its first content chunk in hand), so a failure before that point
//! still fails over and a failure after it ends the stream with an SSE error
//! event.
//!
//! ```text
//! Fallback ── target 1: Retry → Health → Timeout → FirstChunk → provider
//!          └─ target 2: Retry → Health → Timeout → FirstChunk → provider
//! ```
//!
//! This crate depends only on `understudy-core`: availability comes through
//! the [`ProviderAvailability`](understudy_core::ProviderAvailability) trait,
//! which `understudy-health`'s `HealthRegistry` implements.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod first_chunk;
pub mod future;
mod policy;
mod service;
mod summary;
mod target;

pub use self::first_chunk::{
    DEFAULT_MAX_BODY, FirstChunk, FirstChunkLayer, FirstChunkTimeout, StreamEndedEarly,
    StreamNotUtf8,
};
pub use self::policy::{FallbackOn, FallbackPolicy, FallbackRules, PanicMode};
pub use self::service::{
    ATTEMPTS_HEADER, Fallback, FallbackBuilder, MODEL_HEADER, PROVIDER_HEADER,
};
pub use self::summary::{AttemptSummary, FailedAttempts};
pub use self::target::Target;
