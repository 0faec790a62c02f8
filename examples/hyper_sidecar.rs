//! A sidecar with no web framework: hyper-util's server serves the
//! failover stack directly.
//!
//! ```text
//! cargo run --example hyper_sidecar
//! ```
//!
//! The same stack as `axum_app` (observe → replay → fallback over two
//! target stacks), handed to `hyper_util::server::conn::auto::Builder`
//! through `TowerToHyperService`. Every accepted connection gets
//! `TCP_NODELAY` before it is served. Every path is the chat endpoint: a
//! sidecar has one job.
//!
//! The providers are mock providers started in-process (the primary refuses
//! connections, so the backup serves). The example sends one chat request
//! through itself, prints the answer and who served it, and exits.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use understudy::core::{BoxError, ReplayLayer, ResponseBody};
use understudy::fallback::Fallback;
use understudy::health::{HealthConfig, HealthRegistry};
use understudy::observe::{ObserveLayer, Telemetry};
use understudy::provider::{ClientConfig, HttpClient, ProviderService};
use understudy::retry::RetryConfig;
use understudy::stack::TargetStack;
use understudy_mock::{Fault, MockConfig, MockProvider};

/// The whole stack, as hyper serves it.
type ChatStack = BoxCloneSyncService<Request<Incoming>, Response<ResponseBody>, Infallible>;

/// Serves one connection, HTTP/1.1 (or HTTP/2 when the client speaks it),
/// until the client closes it.
async fn serve_connection(tcp: TcpStream, stack: ChatStack) {
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(stack))
        .await;
}

/// Runs the example; an error ends it with a non-zero status.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn main() -> Result<(), BoxError> {
    let primary =
        MockProvider::start(MockConfig::openai().name("primary").fault(Fault::Refuse)).await?;
    let backup = MockProvider::start(MockConfig::openai().name("backup")).await?;

    let observer = Telemetry::new().into_shared();
    let registry = HealthRegistry::with_observer(
        HealthConfig::builder().consecutive_failures(3).build()?,
        observer.clone(),
    );
    let client = HttpClient::new(ClientConfig::new().connect_timeout(Duration::from_secs(2)))?;
    // Each target: retry (once) → health → a 10 s attempt timeout → the
    // commit point (5 s to the first chunk) → attempt telemetry → the
    // provider. `None`: no API key; a real provider gets
    // `Some(ApiKey::new(key))`.
    let target = |name: &str, base_url: &str, model: &str| -> Result<_, BoxError> {
        let upstream = ProviderService::openai(client.clone(), base_url, None, model)?;
        Ok(TargetStack::new(name, model, upstream)
            .retry(RetryConfig::default().max_retries(1))
            .health(&registry)
            .timeout(Duration::from_secs(10))
            .first_chunk(Duration::from_secs(5))
            .telemetry(&observer)
            .build())
    };
    let fallback = Fallback::builder()
        .target(target("primary", &primary.base_url(), "big-model")?)
        .target(target("backup", &backup.base_url(), "small-model")?)
        .availability(registry.clone())
        .observer(observer.clone())
        .build();
    // hyper hands the service a `Request<hyper::body::Incoming>`;
    // ReplayLayer collects it into the replayable body Fallback needs.
    let stack = ChatStack::new(
        ServiceBuilder::new()
            .layer(ObserveLayer::new())
            .layer(ReplayLayer::new(1 << 20))
            .service(fallback),
    );

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("sidecar listening on http://{addr}");
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _peer)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(serve_connection(tcp, stack.clone()));
        }
    });

    // The self-check: one chat request through the sidecar.
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

    // Closing the client's connections ends their tasks; aborting the
    // accept loop stops the server.
    drop(client);
    server.abort();
    primary.shutdown().await;
    backup.shutdown().await;

    if !parts.status.is_success() || content != "Hello from backup." {
        return Err(format!("unexpected answer: {} {content:?}", parts.status).into());
    }
    Ok(())
}
