//! The HTTP surface: `POST /v1/chat/completions`, `POST /v1/messages`
//! (Anthropic's Messages API), `POST /v1/embeddings`, `GET /v1/models`,
//! `GET /health`, `GET /metrics`, `GET /status` and `GET /status.json` (see
//! [`status`]), and OpenAI-shaped errors for everything
//! else (Anthropic-shaped on `/v1/messages`).
//!
//! Every operation goes through the same stack: the endpoint only marks the
//! request with its [`Operation`], which the providers, the commit point
//! and the telemetry read.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post_service};
use http::{Request, StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use understudy_core::{OpenAiError, Operation, ProviderState, ResponseBody};
use understudy_health::{HealthRegistry, ProviderSnapshot};
use understudy_provider::messages::to_messages_error;
use understudy_shared_health::SharedHealth;

use crate::auth;
use crate::live::Live;
use crate::reload::{ReloadError, Reloader};
use crate::stack::Edge;
use crate::status::{self, StatusBoard};

/// The chat-completions stack, as the app serves it.
pub type ChatService = BoxCloneSyncService<Request<Body>, http::Response<ResponseBody>, Infallible>;

/// What the non-chat endpoints read.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Provider health, for `/health`.
    pub registry: HealthRegistry,
    /// The configuration served: its routes for `/v1/models`, its caller
    /// keys (`[auth]`) for `/v1/models`, `/metrics` and `/admin/reload`.
    pub live: Live,
    /// Reloads the configuration, for `POST /admin/reload`.
    pub reloader: Reloader,
    /// The Prometheus exporter, for `/metrics`; `None` answers 404.
    pub metrics: Option<PrometheusHandle>,
    /// Health shared with other replicas, for `/health`; `None` when
    /// health stays in this process.
    pub shared: Option<Arc<SharedHealth>>,
    /// The providers' last minute, for `/status` and `/status.json`.
    pub status: Arc<StatusBoard>,
}

/// `service` with each request marked as `operation` (not boxed again: a
/// box costs an allocation per request for its clone and one for its
/// future).
fn marked(
    service: ChatService,
    operation: Operation,
) -> tower::util::MapRequest<ChatService, impl FnMut(Request<Body>) -> Request<Body> + Clone> {
    service.map_request(move |mut request: Request<Body>| {
        request.extensions_mut().insert(operation);
        request
    })
}

/// The Messages endpoint: marked, and every error it answers in
/// Anthropic's shape (the layers above the translation answer OpenAI's).
fn messages_endpoint(service: ChatService) -> ChatService {
    ChatService::new(
        marked(service, Operation::Messages).then(|result| async move {
            match result {
                Ok(response) => Ok(to_messages_error(response).await),
                Err(never) => match never {},
            }
        }),
    )
}

/// The gateway's router.
pub fn router(endpoints: Edge, state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            post_service(marked(endpoints.chat.clone(), Operation::ChatCompletions)),
        )
        .route(
            "/v1/embeddings",
            post_service(marked(endpoints.chat, Operation::Embeddings)),
        )
        .route(
            "/v1/messages",
            post_service(messages_endpoint(endpoints.messages)),
        )
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/admin/reload", axum::routing::post(admin_reload))
        .merge(status::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

fn error_response(error: &OpenAiError) -> Response {
    error.to_response::<Body>().into_response()
}

async fn not_found(request: Request<Body>) -> Response {
    unknown_path(request.uri().path())
}

fn unknown_path(path: &str) -> Response {
    error_response(
        &OpenAiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "unknown path `{path}`; the gateway serves POST /v1/chat/completions, POST /v1/messages, POST /v1/embeddings, GET /v1/models, GET /health, GET /metrics, GET /status, GET /status.json and POST /admin/reload (with [auth])"
            ),
        )
        .with_code("unknown_url"),
    )
}

async fn method_not_allowed() -> Response {
    error_response(&OpenAiError::method_not_allowed())
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

/// A model in Anthropic's list shape.
#[derive(Serialize)]
struct AnthropicModel<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    display_name: &'a str,
    created_at: &'static str,
}

/// Anthropic's model list: one page holding every route.
#[derive(Serialize)]
struct AnthropicModelList<'a> {
    data: Vec<AnthropicModel<'a>>,
    has_more: bool,
    first_id: Option<&'a str>,
    last_id: Option<&'a str>,
}

/// The route names, in OpenAI's list shape, or in Anthropic's when the
/// caller sends `anthropic-version` (Anthropic's SDKs always do).
async fn models(State(state): State<AppState>, headers: http::HeaderMap) -> Response {
    let generation = state.live.current();
    let anthropic = headers.contains_key("anthropic-version");
    let allowed: Vec<&str> = match &generation.auth {
        None => generation.models.iter().map(String::as_str).collect(),
        Some(keys) => {
            let Some(caller) = keys.identify(&headers, anthropic) else {
                let refused = auth::unauthorized(Operation::ChatCompletions);
                return if anthropic {
                    to_messages_error(refused).await.into_response()
                } else {
                    refused.into_response()
                };
            };
            generation
                .models
                .iter()
                .map(String::as_str)
                .filter(|model| caller.may_use(model))
                .collect()
        }
    };
    if anthropic {
        let ids = allowed.iter().copied();
        let list = AnthropicModelList {
            data: ids
                .clone()
                .map(|id| AnthropicModel {
                    kind: "model",
                    id,
                    display_name: id,
                    created_at: "1970-01-01T00:00:00Z",
                })
                .collect(),
            has_more: false,
            first_id: ids.clone().next(),
            last_id: allowed.last().copied(),
        };
        return axum::Json(list).into_response();
    }
    let list = ModelList {
        object: "list",
        data: allowed
            .into_iter()
            .map(|id| Model {
                id,
                object: "model",
                created: 0,
                owned_by: "understudy",
            })
            .collect(),
    };
    axum::Json(list).into_response()
}

#[derive(Serialize)]
struct HealthReport {
    status: &'static str,
    /// Health shared with other replicas: `connected`, `disconnected` (the
    /// store does not answer; this replica serves on its own) or `off`.
    shared: &'static str,
    providers: Vec<ProviderReport>,
}

#[derive(Serialize)]
struct ProviderReport {
    #[serde(flatten)]
    snapshot: ProviderSnapshot,
    /// When the ejection or cooldown ends, as an HTTP date.
    until: Option<String>,
}

async fn health(State(state): State<AppState>) -> Response {
    let snapshots = state.registry.snapshot();
    let available = snapshots
        .iter()
        .filter(|s| matches!(s.state, ProviderState::Healthy | ProviderState::Probing))
        .count();
    let status = if available == snapshots.len() {
        "ok"
    } else if available > 0 {
        "degraded"
    } else {
        "down"
    };
    let now = SystemTime::now();
    let report = HealthReport {
        status,
        shared: match &state.shared {
            None => "off",
            Some(shared) if shared.is_connected() => "connected",
            Some(_) => "disconnected",
        },
        providers: snapshots
            .into_iter()
            .map(|snapshot| ProviderReport {
                until: snapshot
                    .until_ms
                    .and_then(|ms| now.checked_add(Duration::from_millis(ms)))
                    .map(httpdate::fmt_http_date),
                snapshot,
            })
            .collect(),
    };
    let code = if status == "down" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, axum::Json(report)).into_response()
}

/// The Prometheus text; with `[auth] metrics_key_env`, only for a
/// request bearing that key.
async fn metrics(State(state): State<AppState>, headers: http::HeaderMap) -> Response {
    if let Some(auth) = &state.live.current().auth
        && !auth.may_read_metrics(&headers)
    {
        return auth::unauthorized(Operation::ChatCompletions).into_response();
    }
    match state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => unknown_path("/metrics"),
    }
}

#[derive(Serialize)]
struct ReloadReport<'a> {
    result: &'static str,
    routes: usize,
    restart_needed: &'a [&'static str],
    health_reset: &'a [String],
}

/// `POST /admin/reload`: reads the configuration file again, as `SIGHUP`
/// does. Served only with `[auth]` and an `admin_key_env`, to a request
/// bearing that key; answers what the reload did, or why the running
/// configuration stays (a 422 naming the key at fault).
async fn admin_reload(State(state): State<AppState>, headers: http::HeaderMap) -> Response {
    let Some(auth) = state.live.current().auth.clone() else {
        return unknown_path("/admin/reload");
    };
    if !auth.has_admin() {
        return unknown_path("/admin/reload");
    }
    if !auth.is_admin(&headers) {
        return auth::unauthorized(Operation::ChatCompletions).into_response();
    }
    // Building runs briefly on this thread, as a start does.
    match state.reloader.reload() {
        Ok(reloaded) => axum::Json(ReloadReport {
            result: "ok",
            routes: reloaded.routes,
            restart_needed: &reloaded.restart_needed,
            health_reset: &reloaded.reset,
        })
        .into_response(),
        Err(error) => {
            let status = match error {
                ReloadError::NoFile => StatusCode::CONFLICT,
                ReloadError::Config { .. } | ReloadError::Build(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
            };
            error_response(
                &OpenAiError::new(
                    status,
                    "invalid_request_error",
                    format!("the configuration was not reloaded; the running one stays: {error}"),
                )
                .with_code("reload_failed"),
            )
        }
    }
}
