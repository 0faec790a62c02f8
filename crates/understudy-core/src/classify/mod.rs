//! Turning an attempt's result into an [`Outcome`].
//!
//! Classification has two inputs, as in tower-http's `classify` module: a
//! response (status, headers and, when it was read, the body) or an error.
//! [`LlmClassifier`] is the default, written for LLM providers; implement
//! [`Classify`] to change it, for instance to treat a provider's 404 as its
//! own fault.
//!
//! A response's body is only read by whoever owns it. A provider service that
//! reads an error body (they are small) should classify it with
//! its classifier's [`Classify::classify_parts`] and attach the [`Outcome`] to the
//! response's extensions: [`LlmClassifier`] trusts an [`Outcome`] found there
//! over the status alone, so every layer above agrees with the provider.
//!
//! Everything here reads bytes a provider sent, so its arithmetic must not
//! overflow: the module denies unchecked arithmetic under clippy.
#![warn(clippy::arithmetic_side_effects)]

mod body;
mod retry_after;

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::SystemTime;

use http::{Extensions, HeaderMap, Response, StatusCode};

use self::body::BodyVerdict;
pub use self::retry_after::{
    MAX_RETRY_AFTER, parse_reset_duration, parse_retry_after, retry_after,
};
use crate::error::{ClassifiedError, Unavailable};
use crate::outcome::{ClientErrorKind, FailureKind, Outcome};

/// Classifies attempt results into [`Outcome`]s.
///
/// The trait is object safe, so one classifier can be shared by every layer
/// of a stack as a [`SharedClassifier`]. Implement
/// [`classify_parts`](Classify::classify_parts) and
/// [`classify_error`](Classify::classify_error); the response methods are
/// provided and trust an [`Outcome`] a provider service attached to the
/// response's extensions (it read the body; the layers above did not).
///
/// # Example
///
/// ```
/// use http::{Response, StatusCode};
/// use understudy_core::{Classify, FailureKind, LlmClassifier, Outcome};
///
/// let response = Response::builder().status(529).body(()).unwrap();
/// assert_eq!(
///     LlmClassifier::new().classify_response(&response),
///     Outcome::Failure(FailureKind::Overloaded),
/// );
/// ```
///
/// A classifier of one's own, here one that treats a 500 whose body names a
/// spent account quota as the caller's problem, wrapping the default:
///
/// ```
/// use std::error::Error;
///
/// use http::{HeaderMap, StatusCode};
/// use understudy_core::{Classify, ClientErrorKind, LlmClassifier, Outcome};
///
/// struct QuotaIsTheCallers;
///
/// impl Classify for QuotaIsTheCallers {
///     fn classify_parts(&self, status: StatusCode, headers: &HeaderMap, body: Option<&[u8]>) -> Outcome {
///         let quota = body.is_some_and(|body| body.windows(13).any(|w| w == b"account_quota"));
///         if status == StatusCode::INTERNAL_SERVER_ERROR && quota {
///             return Outcome::ClientError(ClientErrorKind::Rejected(status));
///         }
///         LlmClassifier::new().classify_parts(status, headers, body)
///     }
///
///     fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
///         LlmClassifier::new().classify_error(error)
///     }
/// }
///
/// let body = br#"{"error":{"code":"account_quota"}}"#;
/// assert!(matches!(
///     QuotaIsTheCallers.classify_parts(StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new(), Some(body)),
///     Outcome::ClientError(_),
/// ));
/// ```
pub trait Classify: Send + Sync + 'static {
    /// Classifies a response from its status, headers and, if it was read,
    /// its body.
    fn classify_parts(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Outcome;

    /// Classifies an error the attempt failed with, looking through its
    /// source chain.
    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome;

    /// Classifies a response head whose body was not read: an [`Outcome`]
    /// in `extensions` (attached by whoever read the body) is trusted, and
    /// otherwise the status and headers decide.
    fn classify_head(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Outcome {
        if let Some(outcome) = extensions.get::<Outcome>() {
            return *outcome;
        }
        self.classify_parts(status, headers, None)
    }

    /// Classifies a response the attempt produced (see
    /// [`classify_head`](Classify::classify_head)).
    fn classify_response<B>(&self, response: &Response<B>) -> Outcome
    where
        Self: Sized,
    {
        self.classify_head(response.status(), response.headers(), response.extensions())
    }

    /// Classifies either side of an attempt's result.
    fn classify_result<B, E>(&self, result: &Result<Response<B>, E>) -> Outcome
    where
        Self: Sized,
        E: Error + 'static,
    {
        match result {
            Ok(response) => self.classify_response(response),
            Err(error) => self.classify_error(error),
        }
    }
}

/// A [`Classify`] shared by every layer of a stack: cheap to clone, and
/// [`LlmClassifier`] by default.
///
/// Every layer that classifies takes one through its `classifier` setter,
/// so a stack decides retry, health and fallback with the same rules.
///
/// # Example
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use understudy_core::{Classify, FailureKind, LlmClassifier, Outcome, SharedClassifier};
///
/// let classifier = SharedClassifier::new(LlmClassifier::new());
/// assert_eq!(
///     classifier.classify_parts(StatusCode::BAD_GATEWAY, &HeaderMap::new(), None),
///     Outcome::Failure(FailureKind::Server(StatusCode::BAD_GATEWAY)),
/// );
/// ```
#[derive(Clone)]
pub struct SharedClassifier(Arc<dyn Classify>);

impl SharedClassifier {
    /// Shares `classifier`; a `SharedClassifier` given here is shared as
    /// it is, not wrapped again.
    pub fn new<C: Classify>(classifier: C) -> Self {
        let any: &dyn Any = &classifier;
        if let Some(shared) = any.downcast_ref::<Self>() {
            return shared.clone();
        }
        Self(Arc::new(classifier))
    }
}

impl Default for SharedClassifier {
    fn default() -> Self {
        Self::new(LlmClassifier::new())
    }
}

impl fmt::Debug for SharedClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedClassifier").finish_non_exhaustive()
    }
}

impl Classify for SharedClassifier {
    fn classify_parts(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Outcome {
        self.0.classify_parts(status, headers, body)
    }

    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
        self.0.classify_error(error)
    }

    fn classify_head(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Outcome {
        self.0.classify_head(status, headers, extensions)
    }
}

/// The default classifier for LLM providers.
///
/// Responses:
/// - 2xx: success (a 2xx body that is only an error envelope, when the body
///   is given, is a broken stream);
/// - 401 and 403: the provider rejected the gateway's credentials (a
///   revoked or wrong key), a provider failure:
///   [`FailureKind::Unauthorized`];
/// - 408: timeout; 429: rate limited, with the wait read by [`retry_after`]
///   (at most [`MAX_RETRY_AFTER`]);
/// - other 4xx: a client error, refined from the body into context length
///   exceeded or content filtered;
/// - 503 and 529 (and a 5xx whose body says `overloaded_error`): overloaded;
/// - other 5xx, and any 1xx or 3xx a provider should never send: server error.
///
/// Errors, by the first recognised error in the source chain:
/// [`ClassifiedError`] (its own outcome), [`Unavailable`],
/// `tower::timeout::error::Elapsed` and `tokio::time::error::Elapsed`
/// (timeout), and `std::io::Error` by kind (refused or unreachable: connect;
/// timed out: timeout). Anything else is a transport failure.
#[derive(Clone, Copy, Debug, Default)]
pub struct LlmClassifier {
    _priv: (),
}

// ===== impl LlmClassifier =====

impl LlmClassifier {
    /// The default classifier.
    pub const fn new() -> Self {
        Self { _priv: () }
    }

    /// Classifies a response from its status, headers and, if it was read,
    /// its body.
    ///
    /// # Example
    ///
    /// ```
    /// use http::{HeaderMap, StatusCode};
    /// use understudy_core::{ClientErrorKind, LlmClassifier, Outcome};
    ///
    /// let body = br#"{"type":"error","error":{"type":"invalid_request_error",
    ///     "message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#;
    /// assert_eq!(
    ///     LlmClassifier::new().classify_parts(StatusCode::BAD_REQUEST, &HeaderMap::new(), Some(body)),
    ///     Outcome::ClientError(ClientErrorKind::ContextLengthExceeded),
    /// );
    /// ```
    pub fn classify_parts(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Outcome {
        let verdict = body.and_then(body::recognise);
        let rate_limited = || {
            Outcome::Failure(FailureKind::RateLimited {
                retry_after: retry_after(headers, SystemTime::now()),
            })
        };
        match status.as_u16() {
            200..=299 => match verdict {
                None => Outcome::Success,
                Some(BodyVerdict::Overloaded) => Outcome::Failure(FailureKind::Overloaded),
                Some(BodyVerdict::RateLimited) => rate_limited(),
                Some(BodyVerdict::ContextLengthExceeded) => {
                    Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)
                }
                Some(BodyVerdict::ContentFiltered) => {
                    Outcome::ClientError(ClientErrorKind::ContentFiltered)
                }
                Some(BodyVerdict::OtherError) => Outcome::Failure(FailureKind::StreamBroken),
            },
            401 | 403 => Outcome::Failure(FailureKind::Unauthorized(status)),
            408 => Outcome::Failure(FailureKind::Timeout),
            429 => rate_limited(),
            400..=499 => match verdict {
                Some(BodyVerdict::ContextLengthExceeded) => {
                    Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)
                }
                Some(BodyVerdict::ContentFiltered) => {
                    Outcome::ClientError(ClientErrorKind::ContentFiltered)
                }
                _ => Outcome::ClientError(ClientErrorKind::Rejected(status)),
            },
            503 | 529 => Outcome::Failure(FailureKind::Overloaded),
            _ if verdict == Some(BodyVerdict::Overloaded) => {
                Outcome::Failure(FailureKind::Overloaded)
            }
            _ => Outcome::Failure(FailureKind::Server(status)),
        }
    }
}

impl Classify for LlmClassifier {
    fn classify_parts(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Outcome {
        LlmClassifier::classify_parts(self, status, headers, body)
    }

    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(outcome) = classify_one(error) {
                return outcome;
            }
            next = error.source();
        }
        Outcome::Failure(FailureKind::Transport)
    }
}

fn classify_one(error: &(dyn Error + 'static)) -> Option<Outcome> {
    if let Some(classified) = error.downcast_ref::<ClassifiedError>() {
        return Some(classified.outcome());
    }
    if error.is::<Unavailable>() {
        return Some(Outcome::Unavailable);
    }
    if error.is::<tower::timeout::error::Elapsed>() || error.is::<tokio::time::error::Elapsed>() {
        return Some(Outcome::Failure(FailureKind::Timeout));
    }
    let io = error.downcast_ref::<std::io::Error>()?;
    match io.kind() {
        ErrorKind::ConnectionRefused
        | ErrorKind::AddrNotAvailable
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable
        | ErrorKind::NetworkDown => Some(Outcome::Failure(FailureKind::Connect)),
        ErrorKind::TimedOut => Some(Outcome::Failure(FailureKind::Timeout)),
        _ => None,
    }
}
