//! The same request, transparently, to the next provider.
//!
//! [`Fallback`] is a `Service<Request<ReplayBody>>` over an ordered list of
//! tiers, each either one [`Target`] (a cloneable service stack for one
//! provider and model) or a balanced group of deployments of the same model
//! ([`FallbackBuilder::balanced`], [`Tier`]). Within a tier each attempt
//! goes to the deployment picked by weighted power of two choices on
//! requests in flight; a deployment that fails moves the request to another
//! of the same tier, and the next tier is tried only when every deployment
//! of this one has failed or is unavailable.
//!
//! It skips targets that health reports unavailable, fails over on the
//! outcomes its [`FallbackPolicy`] names, tries every target anyway when all
//! are unavailable ([`PanicMode`]), marks the served response with
//! `x-understudy-provider`, `x-understudy-model` and `x-understudy-attempts`
//! (always naming the deployment that served it), and answers one
//! OpenAI-shaped error listing every attempt when no target could serve the
//! request.
//!
//! [`FirstChunk`] is the commit point at the bottom of each target stack: a
//! response is released only once it is safe (a body read whole, a stream
//! with its first content chunk in hand), so a failure before that point
//! still fails over and a failure after it ends the stream with an SSE error
//! event.
//!
//! ```text
//! Fallback ── tier 1 ┬ deployment a: Retry → Health → Timeout → FirstChunk → provider
//!          │        └ deployment b: Retry → Health → Timeout → FirstChunk → provider
//!          └─ tier 2 ─ target:       Retry → Health → Timeout → FirstChunk → provider
//! ```
//!
//! This crate depends only on `understudy-core`: availability comes through
//! the [`ProviderAvailability`](understudy_core::ProviderAvailability) trait,
//! which `understudy-health`'s `HealthRegistry` implements.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod first_chunk;
pub mod future;
mod hedge;
mod in_flight;
mod policy;
pub mod resume;
mod service;
mod summary;
mod target;
mod tier;

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
pub use self::tier::Tier;
