//! The fallback story, unattended: a primary provider fails in three ways,
//! every request is still answered (by the backup), and traffic returns to
//! the primary once it recovers.
//!
//! ```text
//! cargo run --example fallback_demo
//! ```
//!
//! Two mock providers start on loopback, and the gateway (built from a TOML
//! string, exactly as the `understudy` binary builds it) starts in front of
//! them on port 0, routing model `chat` to the primary, then the backup.
//! Then, phase by phase:
//!
//! 1. healthy: the primary serves;
//! 2. the primary refuses connections;
//! 3. the primary accepts requests and never answers (the 300 ms attempt
//!    timeout gives up on it);
//! 4. the primary answers 503; its fifth failure in a row ejects it, and
//!    later requests skip it without waiting;
//! 5. the primary recovers; the active probe (`GET /v1/models` every
//!    second while ejected) restores it, and it serves again.
//!
//! The `fallback`, `provider_ejected` and `provider_restored` log lines
//! show as they happen; a table sums up each phase. The process exits
//! non-zero if any request failed.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use understudy::core::BoxError;
use understudy::health::HealthEventKind;
use understudy_gateway::config::Config;
use understudy_gateway::gateway::Gateway;
use understudy_mock::{Fault, MockConfig, MockProvider};

/// How long one request may take, all attempts included, before the demo
/// counts it as failed.
const REQUEST_LIMIT: Duration = Duration::from_secs(5);
/// How long the demo waits for the probe to restore the primary.
const RESTORE_LIMIT: Duration = Duration::from_secs(10);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// What one phase came to.
#[derive(Debug, Default)]
struct Phase {
    name: &'static str,
    requests: u32,
    ok: u32,
    by_primary: u32,
    by_backup: u32,
    /// Answered by the backup after a failed attempt on the primary.
    fell_over: u32,
    /// Answered by the backup without trying the ejected primary.
    skipped_primary: u32,
}

impl Phase {
    fn failed(&self) -> u32 {
        self.requests - self.ok
    }
}

/// Runs the demo on its own runtime; `ExitCode::FAILURE` if any request
/// failed or the demo could not run.
pub fn main() -> ExitCode {
    // Warnings and above from Understudy (fallbacks, provider failures,
    // ejections) plus its INFO health transitions (restored).
    // The mocks' and the gateway's own start-up lines are left out.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn,understudy=info,understudy_mock=warn,understudy_gateway=warn")
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_target(false)
        .compact()
        .try_init();

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
        Ok(phases) => {
            print_report(&phases);
            if phases.iter().all(|phase| phase.failed() == 0) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("the demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn config(primary: &str, backup: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
request_timeout_ms = 5000
drain_timeout_ms = 1000

[[providers]]
name = "primary"
kind = "openai"
base_url = "{primary}"
timeout_ms = 300
first_chunk_timeout_ms = 300

[[providers]]
name = "backup"
kind = "openai"
base_url = "{backup}"
timeout_ms = 2000
first_chunk_timeout_ms = 2000

[[routes]]
model = "chat"
targets = [
  {{ provider = "primary", model = "demo-large" }},
  {{ provider = "backup", model = "demo-small" }},
]

[retry]
max_retries = 0

[health]
consecutive_failures = 5
base_ejection_secs = 2
probe_interval_secs = 1
"#
    )
}

async fn run() -> Result<Vec<Phase>, BoxError> {
    let primary = MockProvider::start(MockConfig::openai().name("primary").seed(7)).await?;
    let backup = MockProvider::start(MockConfig::openai().name("backup").seed(7)).await?;
    let config = Config::from_toml(&config(&primary.base_url(), &backup.base_url()))?;
    let gateway = Gateway::new(&config, |_| None)?;
    let registry = gateway.registry().clone();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));
    println!("primary mock at {}", primary.base_url());
    println!("backup mock at  {}", backup.base_url());
    println!("gateway at      http://{addr}  (model `chat`: primary, then backup)\n");

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);

    let mut phases = Vec::new();
    phases.push(phase(&client, addr, "healthy", 3).await);

    // Three ways to be unavailable. Five failures in a row eject the
    // primary: two refused, two hanging, and the first 503.
    primary.set_fault(Fault::Refuse);
    phases.push(phase(&client, addr, "primary refuses", 2).await);
    primary.set_fault(Fault::Hang);
    phases.push(phase(&client, addr, "primary hangs", 2).await);
    primary.set_fault(Fault::Status(503));
    phases.push(phase(&client, addr, "primary answers 503", 4).await);

    // Recovery: the next successful probe restores the primary.
    let mut events = registry.subscribe();
    primary.clear_faults();
    let restored = tokio::time::timeout(RESTORE_LIMIT, async {
        while let Some(event) = events.recv().await {
            if &*event.provider == "primary" && event.kind == HealthEventKind::Restored {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !restored {
        println!("the primary was not restored within {RESTORE_LIMIT:?}");
    }
    phases.push(phase(&client, addr, "primary recovered", 3).await);

    drop(client);
    let _ = stop.send(());
    let served = server.await;
    primary.shutdown().await;
    backup.shutdown().await;
    served??;
    if !restored {
        return Err("the probe did not restore the primary".into());
    }
    Ok(phases)
}

/// Sends `requests` chat requests one after the other.
async fn phase(client: &HttpClient, addr: SocketAddr, name: &'static str, requests: u32) -> Phase {
    println!("-- {name}");
    let mut phase = Phase {
        name,
        requests,
        ..Phase::default()
    };
    for _ in 0..requests {
        match tokio::time::timeout(REQUEST_LIMIT, chat(client, addr)).await {
            Ok(Ok(answer)) if answer.status == StatusCode::OK => {
                phase.ok += 1;
                match (answer.provider.as_str(), answer.attempts.as_str()) {
                    ("primary", _) => phase.by_primary += 1,
                    ("backup", "1") => {
                        phase.by_backup += 1;
                        phase.skipped_primary += 1;
                    }
                    ("backup", _) => {
                        phase.by_backup += 1;
                        phase.fell_over += 1;
                    }
                    _ => {}
                }
            }
            Ok(Ok(answer)) => println!("request failed: {} {}", answer.status, answer.body),
            Ok(Err(error)) => println!("request failed: {error}"),
            Err(_) => println!("request failed: no answer within {REQUEST_LIMIT:?}"),
        }
    }
    phase
}

struct Answer {
    status: StatusCode,
    provider: String,
    attempts: String,
    body: String,
}

async fn chat(client: &HttpClient, addr: SocketAddr) -> Result<Answer, BoxError> {
    let request = Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"chat","messages":[{"role":"user","content":"Say hello."}]}"#,
        )))?;
    let response = client.request(request).await?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (status, provider, attempts) = (
        response.status(),
        header("x-understudy-provider"),
        header("x-understudy-attempts"),
    );
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        provider,
        attempts,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn print_report(phases: &[Phase]) {
    println!();
    println!(
        "{:<22} {:>8} {:>4} {:>8} {:>7} {:>10} {:>16}",
        "phase", "requests", "ok", "primary", "backup", "fell over", "skipped primary"
    );
    for p in phases {
        println!(
            "{:<22} {:>8} {:>4} {:>8} {:>7} {:>10} {:>16}",
            p.name, p.requests, p.ok, p.by_primary, p.by_backup, p.fell_over, p.skipped_primary
        );
    }
    let requests: u32 = phases.iter().map(|p| p.requests).sum();
    let failed: u32 = phases.iter().map(Phase::failed).sum();
    println!("\n{requests} requests, {failed} failed");
}
