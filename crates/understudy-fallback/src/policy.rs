//! [`FallbackPolicy`]: which outcomes move a request to the next target, how
//! many targets to try, and what to do when every target is unavailable;
//! [`FallbackRules`] is the default, and a closure over the [`Outcome`] is a
//! policy too.

use understudy_core::{ClientErrorKind, Outcome};

/// Decides when a request moves on to the next target.
///
/// [`FallbackRules`] is the default policy. Any `Fn(&Outcome) -> bool` is a
/// policy too, trying every target and [`PanicMode::TryAll`]. Whatever the
/// policy says, a target health refused ([`Outcome::Unavailable`]) was
/// never tried and always moves the request on, and a success never does.
///
/// # Example
///
/// ```
/// use http::StatusCode;
/// use understudy_core::{FailureKind, Outcome};
/// use understudy_fallback::{Fallback, FallbackPolicy};
/// # type S = tower::util::BoxCloneSyncService<http::Request<understudy_core::ReplayBody>, http::Response<understudy_core::ResponseBody>, understudy_core::BoxError>;
///
/// // Fail over on 5xx only; a 429 is answered as it is.
/// let policy = |outcome: &Outcome| matches!(outcome, Outcome::Failure(FailureKind::Server(_)));
/// assert!(policy.fails_over(&Outcome::Failure(FailureKind::Server(StatusCode::BAD_GATEWAY))));
/// assert!(!policy.fails_over(&Outcome::Failure(FailureKind::RateLimited { retry_after: None })));
/// let fallback: Fallback<S> = Fallback::builder().policy(policy).build();
/// ```
pub trait FallbackPolicy: Send + Sync + 'static {
    /// Does this outcome of a target move the request on to the next one?
    fn fails_over(&self, outcome: &Outcome) -> bool;

    /// The most targets tried per request (at least one is always tried).
    fn target_limit(&self) -> usize {
        usize::MAX
    }

    /// What to do when health reports every target unavailable.
    fn panic(&self) -> PanicMode {
        PanicMode::TryAll
    }
}

impl<F> FallbackPolicy for F
where
    F: Fn(&Outcome) -> bool + Send + Sync + 'static,
{
    fn fails_over(&self, outcome: &Outcome) -> bool {
        self(outcome)
    }
}

/// A kind of outcome that can move a request on to the next target.
///
/// With the `serde` feature it deserialises from its name in snake case:
/// `"provider_failure"`, `"context_length"`, `"content_filter"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum FallbackOn {
    /// Any provider failure: connect errors, timeouts, 429, 5xx, 529, a
    /// stream broken before its first chunk. On by default.
    ProviderFailure,
    /// The provider said the prompt is longer than the model's context.
    /// Opt in, typically with a larger-context target next.
    ContextLength,
    /// The provider's content filter refused the request. Opt in, typically
    /// with another vendor next.
    ContentFilter,
}

impl FallbackOn {
    /// The kind as a file spells it (`provider_failure`, `context_length`,
    /// `content_filter`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ProviderFailure => "provider_failure",
            Self::ContextLength => "context_length",
            Self::ContentFilter => "content_filter",
        }
    }
}

/// What [`Fallback`](crate::Fallback) does when health reports every target
/// unavailable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PanicMode {
    /// Try the targets anyway, the one whose ejection ends soonest first:
    /// a provider that is probably still down beats refusing every request.
    #[default]
    TryAll,
    /// Answer 503 at once without calling any provider.
    FailFast,
}

/// The default [`FallbackPolicy`]: fail over on the kinds of outcome it
/// names.
///
/// The default fails over on every provider failure, tries every target and
/// tries them all anyway when all are unavailable ([`PanicMode::TryAll`]).
///
/// # Example
///
/// ```
/// use http::StatusCode;
/// use understudy_core::{ClientErrorKind, FailureKind, Outcome};
/// use understudy_fallback::{FallbackOn, FallbackPolicy, FallbackRules};
///
/// let policy = FallbackRules::default();
/// assert!(policy.fails_over(&Outcome::Failure(FailureKind::Server(StatusCode::BAD_GATEWAY))));
/// assert!(!policy.fails_over(&Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)));
///
/// let policy = FallbackRules::default().on(FallbackOn::ContextLength).max_targets(2);
/// assert!(policy.fails_over(&Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)));
/// assert_eq!(policy.target_limit(), 2);
/// ```
///
/// # Deserialising
///
/// With the `serde` feature, a policy deserialises from the list of the
/// [`FallbackOn`] kinds it fails over on, as [`FallbackRules::only`]
/// builds it; an unknown kind is an error naming it. The target limit and
/// the panic mode keep their defaults.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use understudy_core::{ClientErrorKind, Outcome};
/// use understudy_fallback::{FallbackOn, FallbackRules};
///
/// #[derive(Debug, serde::Deserialize)]
/// struct Route {
///     fallback_on: FallbackRules,
/// }
///
/// let route: Route = toml::from_str(r#"fallback_on = ["provider_failure", "context_length"]"#)
///     .unwrap();
/// assert_eq!(
///     route.fallback_on,
///     FallbackRules::only([FallbackOn::ProviderFailure, FallbackOn::ContextLength]),
/// );
/// assert!(route.fallback_on.fails_over(&Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)));
///
/// let error = toml::from_str::<Route>(r#"fallback_on = ["timeouts"]"#).unwrap_err();
/// assert!(error.message().contains("unknown variant `timeouts`"));
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FallbackRules {
    provider_failure: bool,
    context_length: bool,
    content_filter: bool,
    max_targets: usize,
    panic_mode: PanicMode,
}

impl Default for FallbackRules {
    fn default() -> Self {
        Self {
            provider_failure: true,
            context_length: false,
            content_filter: false,
            max_targets: usize::MAX,
            panic_mode: PanicMode::TryAll,
        }
    }
}

impl FallbackRules {
    /// A policy that fails over on exactly these kinds (the default is
    /// `[FallbackOn::ProviderFailure]`).
    pub fn only(kinds: impl IntoIterator<Item = FallbackOn>) -> Self {
        let mut policy = Self {
            provider_failure: false,
            ..Self::default()
        };
        for kind in kinds {
            policy = policy.on(kind);
        }
        policy
    }

    /// Also fails over on `kind`.
    pub fn on(mut self, kind: FallbackOn) -> Self {
        *self.flag(kind) = true;
        self
    }

    /// No longer fails over on `kind`.
    pub fn off(mut self, kind: FallbackOn) -> Self {
        *self.flag(kind) = false;
        self
    }

    /// Tries at most `n` targets per request (at least one).
    pub fn max_targets(mut self, n: usize) -> Self {
        self.max_targets = n.max(1);
        self
    }

    /// What to do when every target is unavailable.
    pub fn panic_mode(mut self, mode: PanicMode) -> Self {
        self.panic_mode = mode;
        self
    }

    /// The most targets tried per request.
    pub const fn target_limit(&self) -> usize {
        self.max_targets
    }

    /// The panic mode.
    pub const fn panic(&self) -> PanicMode {
        self.panic_mode
    }

    /// Does this outcome move the request to the next target?
    ///
    /// A target that health refused ([`Outcome::Unavailable`]) always does:
    /// it was never tried.
    pub const fn fails_over(&self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Unavailable => true,
            Outcome::Failure(_) => self.provider_failure,
            Outcome::ClientError(ClientErrorKind::ContextLengthExceeded) => self.context_length,
            Outcome::ClientError(ClientErrorKind::ContentFiltered) => self.content_filter,
            _ => false,
        }
    }

    /// The kinds it fails over on, in [`FallbackOn`]'s order.
    ///
    /// ```
    /// use understudy_fallback::{FallbackOn, FallbackRules};
    ///
    /// let rules = FallbackRules::default().on(FallbackOn::ContentFilter);
    /// let kinds: Vec<&str> = rules.kinds().map(FallbackOn::as_str).collect();
    /// assert_eq!(kinds, ["provider_failure", "content_filter"]);
    /// ```
    pub fn kinds(&self) -> impl Iterator<Item = FallbackOn> + '_ {
        [
            (FallbackOn::ProviderFailure, self.provider_failure),
            (FallbackOn::ContextLength, self.context_length),
            (FallbackOn::ContentFilter, self.content_filter),
        ]
        .into_iter()
        .filter_map(|(kind, on)| on.then_some(kind))
    }

    fn flag(&mut self, kind: FallbackOn) -> &mut bool {
        match kind {
            FallbackOn::ProviderFailure => &mut self.provider_failure,
            FallbackOn::ContextLength => &mut self.context_length,
            FallbackOn::ContentFilter => &mut self.content_filter,
        }
    }
}

impl FallbackPolicy for FallbackRules {
    fn fails_over(&self, outcome: &Outcome) -> bool {
        FallbackRules::fails_over(self, outcome)
    }

    fn target_limit(&self) -> usize {
        FallbackRules::target_limit(self)
    }

    fn panic(&self) -> PanicMode {
        FallbackRules::panic(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for FallbackRules {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<FallbackOn>::deserialize(deserializer).map(Self::only)
    }
}
