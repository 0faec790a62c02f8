//! The response body type the layers agree on.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

use crate::error::BoxError;

/// A boxed response body: what provider services return and what the layers
/// above pass along, whether a whole JSON answer or a live SSE stream.
///
/// One boxed type keeps target stacks nameable (`BoxCloneSyncService<Request<ReplayBody>,
/// Response<ResponseBody>, BoxError>`) at the cost of one allocation per
/// response.
///
/// # Example
///
/// ```
/// use http_body_util::BodyExt;
/// use understudy_core::ResponseBody;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let body = ResponseBody::from("{\"ok\":true}");
/// assert_eq!(body.collect().await.unwrap().to_bytes(), "{\"ok\":true}");
/// # }
/// ```
pub struct ResponseBody(UnsyncBoxBody<Bytes, BoxError>);

impl ResponseBody {
    /// Boxes any body of [`Bytes`]; a `ResponseBody` is passed on as it
    /// is, not boxed again.
    pub fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut body = Some(body);
        if let Some(same) = (&mut body as &mut dyn Any)
            .downcast_mut::<Option<Self>>()
            .and_then(Option::take)
        {
            return same;
        }
        match body {
            Some(body) => Self(body.map_err(Into::into).boxed_unsync()),
            // Only taken above, when `B` is `Self`.
            None => Self::empty(),
        }
    }

    /// A body with no bytes.
    pub fn empty() -> Self {
        Self::new(Empty::new().map_err(|never| match never {}))
    }

    /// A body with these bytes, in one frame.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::new(Full::new(bytes.into()).map_err(|never| match never {}))
    }
}

impl Default for ResponseBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        Self::full(bytes)
    }
}

impl From<String> for ResponseBody {
    fn from(text: String) -> Self {
        Self::full(text)
    }
}

impl From<&'static str> for ResponseBody {
    fn from(text: &'static str) -> Self {
        Self::full(Bytes::from_static(text.as_bytes()))
    }
}

impl From<Vec<u8>> for ResponseBody {
    fn from(bytes: Vec<u8>) -> Self {
        Self::full(bytes)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}
