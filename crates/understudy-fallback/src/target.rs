//! [`Target`]: one provider and model a route can send a request to.

use std::fmt;

use http::HeaderValue;
use understudy_core::TargetName;

use crate::resume::Prefill;

/// One entry of a route: the target's name and the service stack that
/// reaches it (typically retry → health → timeout → first chunk → provider,
/// boxed as a `BoxCloneSyncService`).
///
/// # Example
///
/// ```
/// use understudy_core::TargetName;
/// use understudy_fallback::Target;
///
/// let target = Target::new(TargetName::new("openai", "gpt-4o-mini"), ());
/// assert_eq!(target.provider(), "openai");
/// assert_eq!(target.model(), "gpt-4o-mini");
/// ```
#[derive(Clone)]
pub struct Target<S> {
    name: TargetName,
    service: S,
    /// `x-understudy-provider` and `x-understudy-model`, built once; `None`
    /// when a name is not a valid header value.
    provider_header: Option<HeaderValue>,
    model_header: Option<HeaderValue>,
    prefill: Prefill,
}

impl<S> Target<S> {
    /// A target reached through `service`.
    pub fn new(name: TargetName, service: S) -> Self {
        Self {
            provider_header: HeaderValue::from_str(&name.provider).ok(),
            model_header: HeaderValue::from_str(&name.model).ok(),
            name,
            service,
            prefill: Prefill::default(),
        }
    }

    /// How this target is asked to continue a stream that broke elsewhere
    /// (on a route that resumes); [`Prefill::Instruction`] by default.
    #[must_use]
    pub fn prefill(mut self, prefill: Prefill) -> Self {
        self.prefill = prefill;
        self
    }

    /// How this target continues an answer.
    pub const fn prefill_form(&self) -> Prefill {
        self.prefill
    }

    /// The target's name.
    pub const fn name(&self) -> &TargetName {
        &self.name
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.name.provider
    }

    /// The model the provider is asked for.
    pub fn model(&self) -> &str {
        &self.name.model
    }

    /// The service stack.
    pub const fn service(&self) -> &S {
        &self.service
    }

    pub(crate) const fn provider_header(&self) -> Option<&HeaderValue> {
        self.provider_header.as_ref()
    }

    pub(crate) const fn model_header(&self) -> Option<&HeaderValue> {
        self.model_header.as_ref()
    }
}

impl<S> fmt::Debug for Target<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
