//! Which providers can be tried now.
//!
//! The fallback selector asks before each target; the health registry
//! answers. The question is a trait here so the two crates need not know of
//! each other: `understudy-health`'s `HealthRegistry` implements it, and
//! `understudy-fallback` is generic over it.

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;

use crate::error::UnavailableKind;

/// The health state of one provider. Serialises as its `snake_case` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProviderState {
    /// Serving requests.
    Healthy,
    /// Rate limited: waiting out the provider's `Retry-After`.
    CoolingDown,
    /// Half-open: one trial request (or active probe) decides.
    Probing,
    /// Failing: no requests until the ejection ends.
    Ejected,
}

impl ProviderState {
    /// A stable `snake_case` name for logs, JSON and labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::CoolingDown => "cooling_down",
            Self::Probing => "probing",
            Self::Ejected => "ejected",
        }
    }

    /// The value of the `understudy_provider_state` gauge: 0 healthy,
    /// 1 cooling down, 2 probing, 3 ejected.
    pub const fn gauge_value(self) -> u8 {
        match self {
            Self::Healthy => 0,
            Self::CoolingDown => 1,
            Self::Probing => 2,
            Self::Ejected => 3,
        }
    }
}

impl fmt::Display for ProviderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a provider may be tried now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// It may be tried (healthy, or probing with its trial slot free).
    Available,
    /// It should be skipped.
    Unavailable {
        /// Why.
        kind: UnavailableKind,
        /// When it is expected back, if known.
        until: Option<Instant>,
    },
}

impl Availability {
    /// Is the provider available?
    pub const fn is_available(&self) -> bool {
        matches!(self, Self::Available)
    }
}

/// Answers whether a provider may be tried now.
///
/// Implemented by `understudy-health`'s `HealthRegistry`; [`AlwaysAvailable`]
/// is the no-health default.
///
/// # Example
///
/// ```
/// use understudy_core::{AlwaysAvailable, Availability, ProviderAvailability};
///
/// assert_eq!(AlwaysAvailable.availability("openai"), Availability::Available);
/// ```
pub trait ProviderAvailability: Send + Sync {
    /// The availability of the provider with this name. Unknown names are
    /// available.
    fn availability(&self, provider: &str) -> Availability;
}

impl<T: ProviderAvailability + ?Sized> ProviderAvailability for Arc<T> {
    fn availability(&self, provider: &str) -> Availability {
        (**self).availability(provider)
    }
}

impl<T: ProviderAvailability + ?Sized> ProviderAvailability for &T {
    fn availability(&self, provider: &str) -> Availability {
        (**self).availability(provider)
    }
}

/// Every provider is always available: fallback without health tracking.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysAvailable;

impl ProviderAvailability for AlwaysAvailable {
    fn availability(&self, _provider: &str) -> Availability {
        Availability::Available
    }
}
