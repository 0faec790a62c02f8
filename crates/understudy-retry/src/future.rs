//! The response future of [`Retry`](crate::Retry).

use std::future::Future;
use std::pin::Pin;

use http::Response;
use understudy_core::BoxError;

/// The response future of [`Retry`](crate::Retry): the tries, the waits
/// between them and the last answer. Boxed: it is an `async` block that
/// holds the request to send again.
pub type ResponseFuture<B> = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;
