//! The response future of [`Replay`](super::Replay).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{CollectError, ReplayBody};
use crate::error::{BoxError, OpenAiError};

pin_project! {
    /// Collects the body, then calls the inner service.
    pub struct ResponseFuture<B, S>
    where
        B: Body,
        B::Error: Into<BoxError>,
        S: Service<Request<ReplayBody>>,
    {
        #[pin]
        state: State<B, S>,
        limit: usize,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<B, S>
    where
        B: Body,
        B::Error: Into<BoxError>,
        S: Service<Request<ReplayBody>>,
    {
        Collecting {
            #[pin]
            collect: Collect<Limited<B>>,
            parts: Option<Parts>,
            service: Option<S>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Refused {
            error: Option<OpenAiError>,
        },
    }
}

impl<B, S> ResponseFuture<B, S>
where
    B: Body,
    B::Error: Into<BoxError>,
    S: Service<Request<ReplayBody>>,
{
    pub(crate) fn collecting(parts: Parts, body: B, service: S, limit: usize) -> Self {
        Self {
            state: State::Collecting {
                collect: Limited::new(body, limit).collect(),
                parts: Some(parts),
                service: Some(service),
            },
            limit,
        }
    }

    pub(crate) fn too_large(limit: usize) -> Self {
        Self {
            state: State::Refused {
                error: Some(OpenAiError::payload_too_large(limit)),
            },
            limit,
        }
    }
}

impl<B, S, ResBody> Future for ResponseFuture<B, S>
where
    B: Body,
    B::Error: Into<BoxError>,
    S: Service<Request<ReplayBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Collecting {
                    collect,
                    parts,
                    service,
                } => {
                    let collected = ready!(collect.poll(cx));
                    let (Some(parts), Some(mut service)) = (parts.take(), service.take()) else {
                        return Poll::Ready(Ok(OpenAiError::internal(
                            "replay future polled after completion",
                        )
                        .to_response()));
                    };
                    match collected {
                        Ok(collected) => {
                            let body = ReplayBody::new(collected.to_bytes());
                            let future = service.call(Request::from_parts(parts, body));
                            this.state.set(State::Calling { future });
                        }
                        Err(error) => {
                            let error = match CollectError::from_limited(error, *this.limit) {
                                CollectError::TooLarge { limit } => {
                                    OpenAiError::payload_too_large(limit)
                                }
                                CollectError::Body(error) if timed_out(&*error) => {
                                    OpenAiError::new(
                                        http::StatusCode::REQUEST_TIMEOUT,
                                        "invalid_request_error",
                                        "the request body did not arrive in time",
                                    )
                                    .with_code("request_timeout")
                                }
                                CollectError::Body(_) => {
                                    OpenAiError::invalid_request("failed to read the request body")
                                }
                            };
                            this.state.set(State::Refused { error: Some(error) });
                        }
                    }
                }
                StateProj::Calling { future } => return future.poll(cx),
                StateProj::Refused { error } => {
                    let error = error.take().unwrap_or_else(|| {
                        OpenAiError::internal("replay future polled after completion")
                    });
                    return Poll::Ready(Ok(error.to_response()));
                }
            }
        }
    }
}

/// Did reading the body stop on a timeout (an `io::Error` of kind
/// `TimedOut` anywhere in the chain)?
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    crate::error::cause_ref::<std::io::Error>(error)
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
}

impl<B, S> std::fmt::Debug for ResponseFuture<B, S>
where
    B: Body,
    B::Error: Into<BoxError>,
    S: Service<Request<ReplayBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}
