//! A request body collected once and replayed to every attempt.
//!
//! Retry and fallback send the same request more than once, so its body must
//! outlive the first send. [`ReplayLayer`] collects the caller's body, up to a
//! limit, into one [`Bytes`] buffer before anything else happens;
//! [`ReplayBody`] then hands that buffer to each attempt by reference count,
//! never copying it.
//!
//! Unlike linkerd's `ReplayBody`, which replays a body lazily while the first
//! attempt streams it, ours is collected up front: an LLM request is small
//! next to its answer, every attempt needs all of it, and OpenAI-compatible
//! targets rewrite its `model` field before sending.
//!
//! A body over the limit is refused with a 413 in the OpenAI error shape. A
//! `Content-Length` over the limit is refused before a byte is read; a body
//! without one is read only until it passes the limit. A body whose reading
//! fails with an `io::Error` of kind `TimedOut` (a read timeout the server
//! put on it) gets a 408 `request_timeout`; other read failures a 400.

pub mod future;
mod layer;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use tower_service::Service;

use self::future::ResponseFuture;
pub use self::layer::ReplayLayer;
use crate::error::BoxError;

/// A request body held in memory, cheap to clone, replayable.
///
/// Cloning shares the same [`Bytes`] buffer (a reference-count increment)
/// and yields a body that will be read again from its start.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::BodyExt;
/// use understudy_core::ReplayBody;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let body = ReplayBody::new(Bytes::from_static(b"{\"model\":\"chat\"}"));
/// let again = body.clone();
/// // Both clones point at the same memory.
/// assert_eq!(body.bytes().as_ptr(), again.bytes().as_ptr());
///
/// let first = body.collect().await.unwrap().to_bytes();
/// let second = again.collect().await.unwrap().to_bytes();
/// assert_eq!(first, second);
/// # }
/// ```
#[derive(Debug, Default)]
pub struct ReplayBody {
    data: Bytes,
    sent: bool,
}

// ===== impl ReplayBody =====

impl ReplayBody {
    /// A body over bytes already in memory.
    pub const fn new(data: Bytes) -> Self {
        Self { data, sent: false }
    }

    /// Collects `body` into a `ReplayBody`, reading at most `limit` bytes.
    ///
    /// Fails with [`CollectError::TooLarge`] as soon as the body's
    /// `size_hint` or the bytes read pass the limit, and with
    /// [`CollectError::Body`] when the body itself fails.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use understudy_core::replay::CollectError;
    /// use understudy_core::ReplayBody;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let small = ReplayBody::collect_from(Full::new(Bytes::from_static(b"hello")), 5).await.unwrap();
    /// assert_eq!(small.bytes(), "hello");
    ///
    /// let big = ReplayBody::collect_from(Full::new(Bytes::from_static(b"hello!")), 5).await;
    /// assert!(matches!(big, Err(CollectError::TooLarge { limit: 5 })));
    /// # }
    /// ```
    pub async fn collect_from<B>(body: B, limit: usize) -> Result<Self, CollectError>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        if exceeds(body.size_hint(), limit) {
            return Err(CollectError::TooLarge { limit });
        }
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(Self::new(collected.to_bytes())),
            Err(error) => Err(CollectError::from_limited(error, limit)),
        }
    }

    /// The whole body.
    pub const fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// The whole body, by value.
    pub fn into_bytes(self) -> Bytes {
        self.data
    }

    /// The body's length in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Is the body empty?
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl Clone for ReplayBody {
    /// Shares the buffer; the clone reads from the start.
    fn clone(&self) -> Self {
        Self::new(self.data.clone())
    }
}

impl From<Bytes> for ReplayBody {
    fn from(data: Bytes) -> Self {
        Self::new(data)
    }
}

impl From<&'static str> for ReplayBody {
    fn from(data: &'static str) -> Self {
        Self::new(Bytes::from_static(data.as_bytes()))
    }
}

impl From<String> for ReplayBody {
    fn from(data: String) -> Self {
        Self::new(Bytes::from(data))
    }
}

impl From<Vec<u8>> for ReplayBody {
    fn from(data: Vec<u8>) -> Self {
        Self::new(Bytes::from(data))
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.sent || this.data.is_empty() {
            return Poll::Ready(None);
        }
        this.sent = true;
        Poll::Ready(Some(Ok(Frame::data(this.data.clone()))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent || self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        let remaining = if self.sent { 0 } else { self.data.len() as u64 };
        SizeHint::with_exact(remaining)
    }
}

/// Why a body could not be collected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// The body is larger than the limit.
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body failed while it was read.
    #[error("failed to read the request body")]
    Body(#[source] BoxError),
}

impl CollectError {
    fn from_limited(error: BoxError, limit: usize) -> Self {
        if error.is::<http_body_util::LengthLimitError>() {
            Self::TooLarge { limit }
        } else {
            Self::Body(error)
        }
    }
}

fn exceeds(hint: SizeHint, limit: usize) -> bool {
    usize::try_from(hint.lower()).map_or(true, |lower| lower > limit)
}

/// Collects the request body into a [`ReplayBody`] before calling the inner
/// service; answers 413 (OpenAI error shape) when it passes the limit.
///
/// Built by [`ReplayLayer`].
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use tower::{Layer, ServiceExt, service_fn};
/// use understudy_core::{ReplayBody, ReplayLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let echo = service_fn(|request: Request<ReplayBody>| async move {
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(request.into_body().into_bytes())))
/// });
/// let service = ReplayLayer::new(16).layer(echo);
///
/// let too_big = Request::new(Full::new(Bytes::from(vec![b'x'; 17])));
/// let response = service.oneshot(too_big).await.unwrap();
/// assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Replay<S> {
    inner: S,
    limit: usize,
}

// ===== impl Replay =====

impl<S> Replay<S> {
    /// Wraps `inner`, collecting bodies of up to `limit` bytes.
    pub const fn new(inner: S, limit: usize) -> Self {
        Self { inner, limit }
    }

    /// The body limit, in bytes.
    pub const fn limit(&self) -> usize {
        self.limit
    }

    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, by value.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResBody> Service<Request<B>> for Replay<S>
where
    S: Service<Request<ReplayBody>, Response = Response<ResBody>> + Clone,
    B: Body,
    B::Error: Into<BoxError>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<B, S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Keep the readiness `poll_ready` obtained: the ready service goes
        // into the future, its clone stays here.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = request.into_parts();
        if exceeds(body.size_hint(), self.limit) {
            return ResponseFuture::too_large(self.limit);
        }
        ResponseFuture::collecting(parts, body, inner, self.limit)
    }
}

#[cfg(test)]
mod tests;
