//! The response future of [`FirstChunk`](crate::FirstChunk).

use std::future::Future;
use std::pin::Pin;

use http::Response;
use understudy_core::{BoxError, ResponseBody};

/// The response future of [`FirstChunk`](crate::FirstChunk): the answer,
/// released at its commit point. Boxed: it is an `async` block that reads
/// the body up to its first content.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, BoxError>> + Send>>;
