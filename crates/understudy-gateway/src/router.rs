//! Picks the route for a chat request from its `model` field.
//!
//! `model` is either a route's name (`"chat"`: the route's targets, with
//! fallback) or `provider/model` (`"openai/gpt-4o"`: that one provider,
//! without fallback), when the configuration allows that model to be
//! addressed directly. The body is parsed once here, which also rejects
//! invalid JSON, and a `model` longer than
//! [`MAX_MODEL_BYTES`](crate::config::MAX_MODEL_BYTES) or holding other than
//! printable ASCII, before any provider sees it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use serde::Deserialize;
use tower::Service;
use tower::ServiceExt;
use tower::util::Oneshot;
use understudy_core::{OpenAiError, ReplayBody, ResponseBody, RouteName};

use crate::config::check_model_name;

/// What the router reads of a chat request.
#[derive(Debug, Deserialize)]
struct ChatHead<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
}

/// Gives the route name (for labels: never the caller's string unless the
/// configuration lists it) and the service for a `provider/model` addressed
/// directly, or `None` when it may not be addressed so.
pub type DirectTargets<S> = Arc<dyn Fn(&str, &str) -> Option<(RouteName, S)> + Send + Sync>;

/// Routes chat requests by `model`; see the module docs.
///
/// Readiness: like axum's router, `poll_ready` is always ready, and the
/// chosen route's service is cloned and driven to readiness inside the
/// response future, so one route never blocks another.
pub struct ModelRouter<S> {
    routes: Arc<HashMap<String, (RouteName, S)>>,
    direct: Option<DirectTargets<S>>,
    known: Arc<[String]>,
}

impl<S> Clone for ModelRouter<S> {
    fn clone(&self) -> Self {
        Self {
            routes: self.routes.clone(),
            direct: self.direct.clone(),
            known: self.known.clone(),
        }
    }
}

impl<S> fmt::Debug for ModelRouter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelRouter")
            .field("routes", &self.known)
            .field("direct", &self.direct.is_some())
            .finish()
    }
}

// ===== impl ModelRouter =====

impl<S> ModelRouter<S> {
    /// A router over named routes.
    pub fn new(routes: impl IntoIterator<Item = (String, S)>) -> Self {
        let routes: HashMap<String, (RouteName, S)> = routes
            .into_iter()
            .map(|(name, service)| {
                let route = RouteName::new(name.as_str());
                (name, (route, service))
            })
            .collect();
        let mut known: Vec<String> = routes.keys().cloned().collect();
        known.sort_unstable();
        Self {
            routes: Arc::new(routes),
            direct: None,
            known: known.into(),
        }
    }

    /// Also answers `provider/model`, building the service with `direct`.
    #[must_use]
    pub fn with_direct(mut self, direct: DirectTargets<S>) -> Self {
        self.direct = Some(direct);
        self
    }

    /// The route names, sorted.
    pub fn route_names(&self) -> &[String] {
        &self.known
    }

    fn not_found(&self, model: &str) -> Response<ResponseBody> {
        let known: Vec<&str> = self.known.iter().map(String::as_str).collect();
        OpenAiError::model_not_found(model, &known).to_response()
    }
}

impl<S> Service<Request<ReplayBody>> for ModelRouter<S>
where
    S: Service<Request<ReplayBody>, Response = Response<ResponseBody>, Error = Infallible> + Clone,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future =
        Either<Ready<Result<Response<ResponseBody>, Infallible>>, Oneshot<S, Request<ReplayBody>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<ReplayBody>) -> Self::Future {
        let answer = |response| Either::Left(ready(Ok(response)));
        let head: ChatHead<'_> = match serde_json::from_slice(request.body().bytes()) {
            Ok(head) => head,
            Err(error) => {
                return answer(
                    OpenAiError::invalid_request(format!(
                        "the request body is not valid JSON: {error}"
                    ))
                    .to_response(),
                );
            }
        };
        if let Some(model) = head.model.as_deref().filter(|m| !m.is_empty()) {
            if let Err(reason) = check_model_name(model) {
                return answer(
                    OpenAiError::invalid_request(format!("`model` {reason}"))
                        .with_param("model")
                        .to_response(),
                );
            }
            // The request (its `llm.request` span and its log lines, from
            // the observe layer) gets the model the caller asked for, which
            // only the body tells.
            understudy_observe::record_model(model);
        }
        let Some(model) = head.model.as_deref().filter(|m| !m.is_empty()) else {
            return answer(
                OpenAiError::new(
                    http::StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    format!(
                        "the request names no `model`; known models: {}",
                        self.known.join(", ")
                    ),
                )
                .with_param("model")
                .with_code("model_not_found")
                .to_response(),
            );
        };
        let (route, service) = if let Some((route, service)) = self.routes.get(model) {
            (route.clone(), service.clone())
        } else if let (Some(direct), Some((provider, upstream))) =
            (&self.direct, model.split_once('/'))
        {
            match direct(provider, upstream) {
                Some(found) => found,
                None => return answer(self.not_found(model)),
            }
        } else {
            return answer(self.not_found(model));
        };
        if let Some(refused) = crate::auth::refusal(request.extensions(), &route) {
            return answer(refused);
        }
        understudy_observe::record_route(route.as_str());
        request.extensions_mut().insert(route);
        Either::Right(service.oneshot(request))
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use http_body_util::BodyExt;
    use tower::service_fn;

    use super::*;

    type Echo =
        tower::util::BoxCloneSyncService<Request<ReplayBody>, Response<ResponseBody>, Infallible>;

    fn echo(name: &'static str) -> Echo {
        Echo::new(service_fn(move |request: Request<ReplayBody>| async move {
            let route = request.extensions().get::<RouteName>().cloned();
            Ok(Response::new(ResponseBody::from(format!(
                "{name}:{}",
                route.map(|r| r.to_string()).unwrap_or_default()
            ))))
        }))
    }

    fn router() -> ModelRouter<Echo> {
        ModelRouter::new([
            ("chat".to_owned(), echo("chat")),
            ("fast".to_owned(), echo("fast")),
        ])
        .with_direct(Arc::new(|provider: &str, model: &str| {
            (provider == "openai" && model != "secret-model")
                .then(|| (RouteName::new(format!("{provider}/*")), echo("direct")))
        }))
    }

    async fn send(body: &'static str) -> (StatusCode, String) {
        let response = router()
            .oneshot(Request::new(ReplayBody::from(body)))
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn routes_by_model_and_names_the_route() {
        assert_eq!(
            send(r#"{"model":"fast","messages":[]}"#).await,
            (StatusCode::OK, "fast:fast".into())
        );
        assert_eq!(
            send(r#"{"messages":[],"model":"chat","stream":true}"#).await,
            (StatusCode::OK, "chat:chat".into())
        );
    }

    #[tokio::test]
    async fn provider_slash_model_goes_direct() {
        assert_eq!(
            send(r#"{"model":"openai/gpt-4o"}"#).await,
            (StatusCode::OK, "direct:openai/*".into())
        );
        let (status, _) = send(r#"{"model":"openai/secret-model"}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn overlong_or_odd_models_are_refused_before_routing() {
        let long = format!(r#"{{"model":"openai/{}"}}"#, "x".repeat(300));
        let response = router()
            .oneshot(Request::new(ReplayBody::from(long)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("longer than 256 bytes"), "{body}");
        assert!(
            !body.contains("xxxxxxxx"),
            "the model is not echoed: {body}"
        );

        let (status, body) = send("{\"model\":\"chat\\nINFO forged log line\"}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    #[tokio::test]
    async fn bad_input_gets_openai_errors() {
        let (status, body) = send(r#"{"model":"chat","messages":["#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("invalid_request_error"), "{body}");

        let (status, body) = send(r#"{"model":"gpt-9"}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("known models: chat, fast"), "{body}");
        assert!(body.contains("model_not_found"));

        let (status, body) = send(r#"{"messages":[]}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body.contains("names no `model`; known models: chat, fast"),
            "{body}"
        );

        let (status, _) = send(r#"{"model":"nobody/gpt-4o"}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    /// Collects the values recorded into spans, as `name=value` strings.
    #[derive(Clone, Default)]
    struct Recorded(Arc<std::sync::Mutex<Vec<String>>>);

    impl tracing::field::Visit for Recorded {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{}={value:?}", field.name()));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorded {
        fn on_record(
            &self,
            _span: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            _ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            values.record(&mut self.clone());
        }
    }

    #[tokio::test]
    async fn the_request_span_learns_the_requested_model() {
        use tracing_subscriber::layer::SubscriberExt;

        let recorded = Recorded::default();
        let subscriber = tracing_subscriber::registry().with(recorded.clone());
        let _guard = tracing::subscriber::set_default(subscriber);
        let span = tracing::info_span!(
            "llm.request",
            model = tracing::field::Empty,
            stream = tracing::field::Empty
        );
        let request = Request::new(ReplayBody::from(r#"{"model":"chat","stream":true}"#));
        let response = tracing::Instrument::instrument(router().oneshot(request), span)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let values = recorded.0.lock().unwrap().clone();
        assert_eq!(values, ["model=\"chat\""]);
    }
}
