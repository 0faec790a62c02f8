//! The response future of [`Fallback`](crate::Fallback).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use understudy_core::ResponseBody;

/// The response future of [`Fallback`](crate::Fallback): never fails, every
/// failure is an OpenAI-shaped error response.
pub struct ResponseFuture {
    pub(crate) inner:
        Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>,
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
