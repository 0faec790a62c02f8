//! Provider health: know which provider is failing before the caller pays
//! for it.
//!
//! [`HealthRegistry`] keeps one state machine per provider, in the spirit of
//! Envoy's outlier detection and a circuit breaker's half-open trial, fitted
//! to LLM providers:
//!
//! - **Ejection**: `N` provider failures in a row, or a failure ratio over a
//!   sliding window once enough requests were seen (optionally, a success
//!   slower than a threshold counts as a failure). Only outcomes that
//!   [count against health](understudy_core::Outcome::counts_against_health)
//!   count: client errors never do.
//! - **Ejection time** = base × recent ejections, capped; the count is
//!   forgotten after a sustained healthy period.
//! - **Cooldown**: a 429 is not a strike. The provider cools down for its
//!   `Retry-After` (a later, longer one extends the cooldown; nothing shortens
//!   it).
//! - **Probing**: when an ejection ends, exactly one trial request goes
//!   through; success restores, failure ejects again for longer. An optional
//!   [active prober](HealthRegistry::spawn_prober) checks an ejected provider
//!   on an interval, so recovery is found without a caller's request.
//!
//! [`HealthLayer`] records every attempt and fails fast with
//! [`Unavailable`](understudy_core::Unavailable) while the provider is out.
//! The fallback selector asks the registry through
//! [`ProviderAvailability`](understudy_core::ProviderAvailability).
//! Transitions go to [`HealthRegistry::subscribe`] and to the registry's
//! [`Observer`](understudy_core::events::Observer).
//!
//! # Configuration
//!
//! [`HealthConfig`] holds the thresholds and ejection times, checked by its
//! builder. With the `serde` feature it deserialises from a file's
//! `[health]`-style map, checked the same way.
//!
//! # Concurrency
//!
//! A healthy provider is admitted by one atomic load. Recording takes that
//! provider's own short mutex (a few additions, no await, no allocation);
//! providers never share a lock on the request path.
//!
//! # Arithmetic
//!
//! Durations come from configuration and from providers' headers; every sum
//! saturates (ejection ends go through
//! [`understudy_core::time::saturating_add`]) and the crate denies unchecked
//! arithmetic under clippy.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(clippy::arithmetic_side_effects)]

mod config;
mod events;
pub mod future;
mod layer;
mod prober;
mod registry;
mod remote;
mod snapshot;
mod state;

pub use self::config::{HealthConfig, HealthConfigBuilder, HealthConfigError, MAX_HEALTH_DURATION};
pub use self::events::{EjectionReason, HealthEvent, HealthEventKind, HealthEvents, Origin};
pub use self::layer::{Health, HealthLayer};
pub use self::prober::ProberHandle;
pub use self::registry::HealthRegistry;
pub use self::remote::{RemoteDecision, TrialGrant};
pub use self::snapshot::ProviderSnapshot;
