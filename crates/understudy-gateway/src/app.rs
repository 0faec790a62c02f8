//! The HTTP surface: `POST /v1/chat/completions`, `GET /v1/models`,
//! `GET /health`, `GET /metrics`, and OpenAI-shaped errors for everything
//! else.

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
use tower::util::BoxCloneSyncService;
use understudy_core::{OpenAiError, ProviderState, ResponseBody};
use understudy_health::{HealthRegistry, ProviderSnapshot};
use understudy_shared_health::SharedHealth;

/// The chat-completions stack, as the app serves it.
pub type ChatService = BoxCloneSyncService<Request<Body>, http::Response<ResponseBody>, Infallible>;

/// What the non-chat endpoints read.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Provider health, for `/health`.
    pub registry: HealthRegistry,
    /// The route names, for `/v1/models`.
    pub models: Arc<[String]>,
    /// The Prometheus exporter, for `/metrics`; `None` answers 404.
    pub metrics: Option<PrometheusHandle>,
    /// Health shared with other replicas, for `/health`; `None` when
    /// health stays in this process.
    pub shared: Option<Arc<SharedHealth>>,
}

/// The gateway's router.
pub fn router(chat: ChatService, state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post_service(chat))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

fn error(error: &OpenAiError) -> Response {
    error.to_response::<Body>().into_response()
}

async fn not_found(request: Request<Body>) -> Response {
    unknown_path(request.uri().path())
}

fn unknown_path(path: &str) -> Response {
    error(
        &OpenAiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "unknown path `{path}`; the gateway serves POST /v1/chat/completions, GET /v1/models, GET /health and GET /metrics"
            ),
        )
        .with_code("unknown_url"),
    )
}

async fn method_not_allowed() -> Response {
    error(&OpenAiError::method_not_allowed())
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

async fn models(State(state): State<AppState>) -> Response {
    let list = ModelList {
        object: "list",
        data: state
            .models
            .iter()
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

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => unknown_path("/metrics"),
    }
}
