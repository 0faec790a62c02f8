//! Request extensions the layers share.
//!
//! The outermost layers set them once per caller request; the layers below
//! read them. All are cheap to clone, so a request cloned for a retry or a
//! fallback carries them along.
//!
//! | extension          | set by                            | read by                               |
//! |--------------------|-----------------------------------|---------------------------------------|
//! | [`RouteName`]      | the router (gateway, user app)    | fallback, observe                     |
//! | [`Deadline`]       | the outermost layer               | retry (no backoff past it), fallback  |
//! | [`TargetName`]     | fallback, per target              | health, provider, observe             |
//! | [`Attempt`]        | retry, per try                    | observe, logs                         |
//! | [`AttemptCounter`] | fallback, per caller request      | retry (adds its re-sends), fallback   |
//! | [`Operation`]      | the endpoint (gateway, user app)  | provider, observe                     |
//! | [`CallerName`]     | caller authentication (gateway)   | observe (a *response* extension)      |
//! | [`UnaskedUsage`]   | provider (a *response* extension) | the commit point (fallback)           |
//!
//! [`Operation`] is also a *response* extension: the provider service says
//! in which operation's shape an answer's body is (a Messages request
//! served by an OpenAI-compatible provider is answered in the chat shape,
//! for the endpoint to translate).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What the caller asked for: which API's request the body is, and which
/// shape the answer must have. A request without one is a chat
/// completion.
///
/// ```
/// use understudy_core::Operation;
///
/// assert_eq!(Operation::default(), Operation::ChatCompletions);
/// assert_eq!(Operation::Messages.as_str(), "messages");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Operation {
    /// OpenAI's `POST /v1/chat/completions`, streaming or not.
    #[default]
    ChatCompletions,
    /// Anthropic's `POST /v1/messages`, streaming or not.
    Messages,
    /// OpenAI's `POST /v1/embeddings`.
    Embeddings,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Self; 3] = [Self::ChatCompletions, Self::Messages, Self::Embeddings];

    /// A short name, fit for a metric label: `chat`, `messages`,
    /// `embeddings`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat",
            Self::Messages => "messages",
            Self::Embeddings => "embeddings",
        }
    }

    /// The operation a request asks for (its extension), chat by default.
    pub fn of(extensions: &http::Extensions) -> Self {
        extensions.get::<Self>().copied().unwrap_or_default()
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The route a caller request was matched to: the `model` a caller asked for
/// (`"chat"`), or whatever name the application gives its routes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteName(pub Arc<str>);

impl RouteName {
    /// A route name.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The configured name of the key a caller authenticated with
/// (`"search"`), never the key itself: a *response* extension, set by the
/// layer that identified the caller, for the observe layer to label the
/// request's metrics with. Key names come from configuration, so the label
/// values stay few.
///
/// ```
/// use understudy_core::CallerName;
///
/// let caller = CallerName::new("search");
/// assert_eq!(caller.as_str(), "search");
/// assert_eq!(caller.to_string(), "search");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallerName(pub Arc<str>);

impl CallerName {
    /// A caller's key name.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The target an attempt is sent to: a provider, and the model that provider
/// is asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetName {
    /// The provider's configured name (`"openai"`), used in logs, metrics
    /// and the `x-understudy-provider` header.
    pub provider: Arc<str>,
    /// The model asked of the provider (`"gpt-4o-mini"`).
    pub model: Arc<str>,
}

impl TargetName {
    /// A target name.
    pub fn new(provider: impl Into<Arc<str>>, model: impl Into<Arc<str>>) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
        }
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// The number of this try on one target: 1 for the first, 2 for the first
/// retry, and so on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attempt(pub u32);

impl Attempt {
    /// The first try.
    pub const FIRST: Self = Self(1);

    /// The try after this one.
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// Is this a retry?
    pub const fn is_retry(self) -> bool {
        self.0 > 1
    }
}

/// The instant by which the whole caller request must be answered, all
/// retries and fallbacks included.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use understudy_core::Deadline;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let deadline = Deadline::after(Duration::from_secs(2));
/// tokio::time::advance(Duration::from_millis(500)).await;
/// assert_eq!(deadline.remaining(), Duration::from_millis(1500));
/// assert!(!deadline.has_passed());
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Self(crate::time::saturating_add(Instant::now(), timeout))
    }

    /// The instant.
    pub const fn instant(self) -> Instant {
        self.0
    }

    /// Time left until the deadline; zero once it has passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Has the deadline passed?
    pub fn has_passed(self) -> bool {
        Instant::now() >= self.0
    }
}

/// Counts the upstream attempts made for one caller request, retries
/// included, across all targets (the `x-understudy-attempts` header).
///
/// Clones share the count. Fallback inserts one per caller request and adds
/// one for each target it dispatches to; retry adds one for each re-send.
///
/// # Example
///
/// ```
/// use understudy_core::AttemptCounter;
///
/// let counter = AttemptCounter::new();
/// let shared = counter.clone();
/// shared.add(1);
/// counter.add(2);
/// assert_eq!(counter.get(), 3);
/// counter.take_back(5);
/// assert_eq!(counter.get(), 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct AttemptCounter(Arc<AtomicU32>);

impl AttemptCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n` attempts.
    pub fn add(&self, n: u32) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes back `n` attempts counted for requests that were never sent
    /// (a target that turned out not to serve the request); never below
    /// zero.
    pub fn take_back(&self, n: u32) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                Some(count.saturating_sub(n))
            });
    }

    /// The attempts counted so far.
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Marks a request that a selector sends although health reports its target
/// unavailable: every target of the route was unavailable, and trying them
/// anyway ("panic mode") beats failing every request.
///
/// `understudy-health`'s `HealthLayer` lets such a request through (and still
/// records its outcome) instead of failing fast.
///
/// # Example
///
/// ```
/// use http::Request;
/// use understudy_core::PanicRouting;
///
/// let mut request = Request::new(());
/// request.extensions_mut().insert(PanicRouting);
/// assert!(request.extensions().get::<PanicRouting>().is_some());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PanicRouting;

/// A *response* extension: the stream's usage was asked of the provider by
/// the gateway, not by the caller. The provider service sets it on a
/// streamed answer whose usage chunk (and the `"usage": null` that
/// OpenAI's wire puts on every other chunk) the caller did not ask for;
/// the commit point reads the usage, then removes both before the caller
/// sees the stream.
///
/// # Example
///
/// ```
/// use http::Response;
/// use understudy_core::UnaskedUsage;
///
/// let mut response = Response::new(());
/// response.extensions_mut().insert(UnaskedUsage);
/// assert!(response.extensions().get::<UnaskedUsage>().is_some());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnaskedUsage;
