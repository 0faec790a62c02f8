//! The configuration requests are served with, swapped whole on reload.
//!
//! A [`Generation`] is everything one configuration file builds for
//! routing: the model router with its routes' target stacks, the model
//! list and the caller keys. [`Live`] holds the current one (`arc-swap`: a read is a couple of
//! atomic operations, never a lock). A request takes the current generation
//! once and keeps it to its end, so a reload never changes the routes,
//! targets or settings of a request in flight, stream or not: the old
//! generation lives until its last request ends.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::{Request, Response};
use tower::util::Oneshot;
use tower::{Service, ServiceExt};
use understudy_core::{ReplayBody, ResponseBody};

use crate::auth::Auth;
use crate::router::ModelRouter;
use crate::stack::RouteService;

/// What one configuration builds for routing requests.
pub struct Generation {
    /// Routes by the request's `model`.
    pub router: ModelRouter<RouteService>,
    /// The route names, sorted, for `/v1/models`.
    pub models: Arc<[String]>,
    /// The caller keys (`[auth]`); `None` serves anyone.
    pub auth: Option<Arc<Auth>>,
}

impl fmt::Debug for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generation")
            .field("models", &self.models)
            .field("auth", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

/// The current [`Generation`], shared by every endpoint; cheap to clone.
#[derive(Clone)]
pub struct Live(Arc<ArcSwap<Generation>>);

impl Live {
    /// Starts with `generation`.
    pub fn new(generation: Generation) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(generation)))
    }

    /// The current generation.
    pub fn current(&self) -> Arc<Generation> {
        self.0.load_full()
    }

    /// Makes `generation` the current one; requests already holding the
    /// previous one keep it.
    pub fn replace(&self, generation: Generation) {
        self.0.store(Arc::new(generation));
    }
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Live").field(&*self.0.load()).finish()
    }
}

/// Routes each request with the generation it carries (an
/// `Arc<Generation>` request extension, put there by a layer above that
/// needed it first), or else the current one.
#[derive(Clone, Debug)]
pub struct LiveRouter {
    live: Live,
}

impl LiveRouter {
    /// Routes with `live`.
    pub const fn new(live: Live) -> Self {
        Self { live }
    }
}

impl Service<Request<ReplayBody>> for LiveRouter {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Oneshot<ModelRouter<RouteService>, Request<ReplayBody>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReplayBody>) -> Self::Future {
        let generation = request
            .extensions()
            .get::<Arc<Generation>>()
            .cloned()
            .unwrap_or_else(|| self.live.current());
        generation.router.clone().oneshot(request)
    }
}
