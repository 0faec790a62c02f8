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
use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use tower::util::Oneshot;
use tower::{Service, ServiceExt};
use understudy_core::{Operation, ReplayBody, ResponseBody};

use crate::auth::{Auth, unauthorized};
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

    /// The current generation, borrowed: cheaper than
    /// [`current`](Self::current) (no reference count touched) for a look
    /// that ends before the next await.
    pub fn peek(&self) -> arc_swap::Guard<Arc<Generation>> {
        self.0.load()
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
/// `Arc<Generation>` request extension, put there by the auth layer when
/// it checked the request's key), or else the current one, which must then
/// have no keys: a request admitted by a generation without keys while a
/// reload brought some in is answered 401, never served unchecked.
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
    type Future = Either<
        Ready<Result<Response<ResponseBody>, Infallible>>,
        Oneshot<ModelRouter<RouteService>, Request<ReplayBody>>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReplayBody>) -> Self::Future {
        let router = if let Some(generation) = request.extensions().get::<Arc<Generation>>() {
            generation.router.clone()
        } else {
            let generation = self.live.peek();
            if generation.auth.is_some() {
                // Admitted while the configuration had no keys, and keys
                // came in since: the request was never checked.
                let operation = Operation::of(request.extensions());
                return Either::Left(ready(Ok(unauthorized(operation))));
            }
            generation.router.clone()
        };
        Either::Right(router.oneshot(request))
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Config;
    use crate::gateway::auth_of;

    fn generation(auth: bool) -> Generation {
        let mut text = "[[providers]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n[[routes]]\nmodel = \"chat\"\ntargets = [{ provider = \"p\", model = \"m\" }]\n".to_owned();
        if auth {
            text.push_str(
                "\n[auth]\nkeys = [{ name = \"k\", key_env = \"K\", routes = [\"*\"] }]\n",
            );
        }
        let config = Config::from_toml(&text).unwrap();
        Generation {
            router: ModelRouter::new(Vec::<(String, RouteService)>::new()),
            models: Arc::from(Vec::new()),
            auth: auth_of(&config, |_| Some("sk-k".to_owned())).unwrap(),
        }
    }

    #[tokio::test]
    async fn a_request_no_key_checked_is_refused_once_keys_came_in() {
        let live = Live::new(generation(false));
        let request = || Request::new(ReplayBody::from(r#"{"model":"chat"}"#));
        // Without keys: routed (here, to no route).
        let routed = LiveRouter::new(live.clone())
            .oneshot(request())
            .await
            .unwrap();
        assert_eq!(routed.status(), StatusCode::NOT_FOUND);
        // A reload brought keys while the request was on its way.
        live.replace(generation(true));
        let refused = LiveRouter::new(live).oneshot(request()).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
}
