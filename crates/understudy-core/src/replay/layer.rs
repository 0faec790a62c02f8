use tower_layer::Layer;

use super::Replay;

/// Collects request bodies into [`ReplayBody`](super::ReplayBody), up to a
/// limit in bytes; see [`Replay`].
///
/// # Example
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use tower::{Layer, ServiceExt, service_fn};
/// use understudy_core::{ReplayBody, ReplayLayer, ResponseBody};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // The inner service sees a body it can clone and send again.
/// let echo = service_fn(|request: Request<ReplayBody>| async move {
///     let again = request.body().clone();
///     let bytes = again.collect().await.unwrap().to_bytes();
///     Ok::<_, std::convert::Infallible>(Response::new(ResponseBody::from(bytes)))
/// });
/// let service = ReplayLayer::new(16).layer(echo);
///
/// let ok = service.clone().oneshot(Request::new(Full::new(Bytes::from("{}")))).await.unwrap();
/// assert_eq!(ok.into_body().collect().await.unwrap().to_bytes(), "{}");
/// let too_big = service.oneshot(Request::new(Full::new(Bytes::from("x".repeat(17))))).await.unwrap();
/// assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ReplayLayer {
    limit: usize,
}

impl ReplayLayer {
    /// The default limit: 10 MiB, enough for long prompts with images.
    pub const DEFAULT_LIMIT: usize = 10 * 1024 * 1024;

    /// A layer that refuses bodies over `limit` bytes.
    pub const fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl Default for ReplayLayer {
    fn default() -> Self {
        Self::new(Self::DEFAULT_LIMIT)
    }
}

impl<S> Layer<S> for ReplayLayer {
    type Service = Replay<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Replay::new(inner, self.limit)
    }
}
