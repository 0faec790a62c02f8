//! An existing axum app gains an OpenAI-compatible chat endpoint with
//! failover, built by hand from Understudy's layers.
//!
//! ```text
//! cargo run --example axum_app
//! ```
//!
//! The app has its own routes (`/`, `/api/users`) and its own middleware
//! (an `x-app-version` header on every response). One more route,
//! `POST /v1/chat/completions`, is served by this stack:
//!
//! ```text
//! ObserveLayer           llm.request span and request metrics
//! └─ ReplayLayer         the body read once, replayable for every attempt
//!    └─ Fallback         primary, then backup; skips ejected providers
//!       └─ per target:   RetryLayer → HealthLayer → Timeout → FirstChunkLayer
//!                        → AttemptLayer → ProviderService (HTTP to the provider)
//! ```
//!
//! So that it runs without API keys, the two providers are mock providers
//! started in-process, and the primary fails its first request with a 503.
//! The example serves on port 0, sends one chat request through itself,
//! prints the answer and who served it, and exits.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::Request as AxumRequest;
use axum::middleware::{self, Next};
use axum::response::Response as AxumResponse;
use axum::routing::{get, post_service};
use axum::serve::ListenerExt;
use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use understudy::core::events::SharedObserver;
use understudy::core::{BoxError, ReplayLayer};
use understudy::fallback::{Fallback, Target};
use understudy::health::{HealthConfig, HealthRegistry};
use understudy::observe::{ObserveLayer, Telemetry};
use understudy::provider::{ClientConfig, HttpClient, ProviderService};
use understudy::retry::RetryConfig;
use understudy::stack::{TargetService, TargetStack};
use understudy_mock::{Fault, FaultMode, FaultRule, MockConfig, MockProvider};

/// Runs the example on its own runtime.
pub fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("could not start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("axum_app failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One provider's stack: everything below `Fallback` for one target.
///
/// All targets share the HTTP client (one connection pool), the health
/// registry and the observer.
fn target(
    client: &HttpClient,
    registry: &HealthRegistry,
    observer: &SharedObserver,
    provider: &str,
    base_url: &str,
    model: &str,
) -> Result<Target<TargetService>, BoxError> {
    // `None`: no API key. A real provider gets `Some(ApiKey::new(key))`.
    let upstream = ProviderService::openai(client.clone(), base_url, None, model)?;
    Ok(TargetStack::new(provider, model, upstream)
        // Retries this target (here once) before Fallback moves on.
        .retry(RetryConfig::default().max_retries(1))
        // Refuses while the provider is ejected; records every outcome,
        // streams that break after the commit included.
        .health(registry)
        // One attempt's time limit: a hanging provider is a failure.
        .timeout(Duration::from_secs(10))
        // The commit point: bodies read whole, streams held until their
        // first content chunk, so a failure before it still fails over.
        .first_chunk(Duration::from_secs(5))
        // Retry and break events, an llm.attempt span and attempt metrics.
        .telemetry(observer)
        .build())
}

/// The app's own middleware: a header on every response, the chat route's
/// included.
async fn app_version(request: AxumRequest, next: Next) -> AxumResponse {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert("x-app-version", HeaderValue::from_static("1.4.2"));
    response
}

async fn run() -> Result<(), BoxError> {
    // Two providers. The primary answers its first chat request with a 503
    // (its retry gets a second 503), so the backup serves.
    let primary = MockProvider::start(MockConfig::openai().name("primary").fault(FaultRule {
        fault: Fault::Status(503),
        mode: FaultMode::Times(2),
    }))
    .await?;
    let backup = MockProvider::start(MockConfig::openai().name("backup")).await?;

    // Shared by every target: telemetry (logs, metrics, alerts), health,
    // and one pooled HTTP client.
    let observer = Telemetry::new().into_shared();
    let registry = HealthRegistry::with_observer(
        HealthConfig::builder().consecutive_failures(3).build()?,
        observer.clone(),
    );
    let client = HttpClient::new(ClientConfig::new().connect_timeout(Duration::from_secs(2)))?;

    let fallback = Fallback::builder()
        .target(target(
            &client,
            &registry,
            &observer,
            "primary",
            &primary.base_url(),
            "big-model",
        )?)
        .target(target(
            &client,
            &registry,
            &observer,
            "backup",
            &backup.base_url(),
            "small-model",
        )?)
        // Skip ejected providers.
        .availability(registry.clone())
        .observer(observer.clone())
        .build();
    // Fallback takes a `Request<ReplayBody>`; ReplayLayer turns axum's body
    // into one (up to 1 MiB, else 413). The stack is infallible, as axum
    // wants: failures are OpenAI-shaped error responses.
    let chat = ServiceBuilder::new()
        .layer(ObserveLayer::new())
        .layer(ReplayLayer::new(1 << 20))
        .service(fallback);

    // The app as it was, plus one route.
    let app = Router::new()
        .route("/", get(|| async { "Welcome to the app.\n" }))
        .route(
            "/api/users",
            get(|| async { axum::Json(serde_json::json!([{ "id": 1, "name": "Ada" }])) }),
        )
        .route("/v1/chat/completions", post_service(chat))
        .layer(middleware::from_fn(app_version));

    // TCP_NODELAY on accepted connections: without it, a response written
    // in two segments waits for the client's delayed ACK.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .into_future(),
    );
    println!("app listening on http://{addr}");

    // The self-check: one chat request through the app.
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let request = Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"chat","messages":[{"role":"user","content":"Say hello."}]}"#,
        )))?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request)).await??;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let answer: serde_json::Value = serde_json::from_slice(&body)?;
    let content = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    println!("status:      {}", parts.status);
    println!("answer:      {content}");
    println!(
        "served by:   {} ({}) after {} attempts",
        header("x-understudy-provider"),
        header("x-understudy-model"),
        header("x-understudy-attempts"),
    );
    println!("app header:  x-app-version: {}", header("x-app-version"));

    drop(client);
    let _ = stop.send(());
    server.await??;
    primary.shutdown().await;
    backup.shutdown().await;

    if !parts.status.is_success() || content != "Hello from backup." {
        return Err(format!("unexpected answer: {} {content:?}", parts.status).into());
    }
    Ok(())
}
