//! The chaos matrix: every fault the mock provider can inject, streaming
//! and not, with only the primary failing and with both providers failing,
//! through the real gateway over loopback sockets. Plus health ejection and
//! restoration, the streaming commit point, retries, and a short soak with
//! the primary flapping at random.
//!
//! Every request is bounded by a deadline well above the attempt timeouts;
//! every case tears its gateway, client and mocks down and checks that no
//! connection and no task outlives them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use understudy::core::ProviderState;
use understudy::health::{HealthEventKind, HealthRegistry};
use understudy_gateway::config::Config;
use understudy_gateway::gateway::Gateway;
use understudy_mock::{FaultPlan, MockConfig, MockProvider};

/// Attempt timeout and first-chunk timeout of both providers.
const ATTEMPT_TIMEOUT_MS: u64 = 300;
/// No request may take longer than this, whatever fails (two attempts of
/// at most 300 ms each, plus slack for a loaded 2-core machine).
const REQUEST_DEADLINE: Duration = Duration::from_secs(3);
/// How long teardown may take to close every connection and end every task.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// Every fault of the matrix, each past the timeouts where it has a time.
const FAULTS: [&str; 12] = [
    "status:503",
    "status:500",
    "rate-limit:1",
    "refuse",
    "reset",
    "hang",
    "delay:800",
    "first-chunk-delay:800",
    "drop-after:1",
    "drip:800",
    "garbage",
    "error-event",
];

type TestClient = Client<HttpConnector, Full<Bytes>>;

/// Gateway settings a test varies.
#[derive(Clone, Copy)]
struct Settings {
    max_retries: u32,
    consecutive_failures: u32,
    min_requests: u32,
    base_ejection_secs: u64,
    probe_interval_secs: u64,
}

impl Settings {
    /// The matrix: no retries, and health that never ejects, so each case
    /// sees exactly the fault it sets.
    const MATRIX: Self = Self {
        max_retries: 0,
        consecutive_failures: 1000,
        min_requests: 1000,
        base_ejection_secs: 30,
        probe_interval_secs: 60,
    };
}

/// Mocks and a gateway in front of them, on loopback.
struct Harness {
    addr: SocketAddr,
    primary: MockProvider,
    backup: MockProvider,
    registry: HealthRegistry,
    client: TestClient,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |value| value.to_str().unwrap())
    }

    fn json(&self) -> Result<Value, String> {
        serde_json::from_str(&self.body).map_err(|e| format!("not JSON ({e}): {}", self.body))
    }

    /// The streamed text, if the body is an SSE stream ending in `[DONE]`.
    fn streamed_text(&self) -> Result<String, String> {
        let data: Vec<&str> = self
            .body
            .split("\n\n")
            .filter_map(|event| event.trim().strip_prefix("data: "))
            .collect();
        if data.last() != Some(&"[DONE]") {
            return Err(format!("the stream does not end in [DONE]: {}", self.body));
        }
        let mut text = String::new();
        for event in &data[..data.len() - 1] {
            let chunk: Value =
                serde_json::from_str(event).map_err(|e| format!("bad event ({e}): {event}"))?;
            if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
                text.push_str(piece);
            }
        }
        Ok(text)
    }
}

fn config(primary: &str, backup: &str, settings: Settings) -> Config {
    let Settings {
        max_retries,
        consecutive_failures,
        min_requests,
        base_ejection_secs,
        probe_interval_secs,
    } = settings;
    Config::from_toml(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
request_timeout_ms = 10000
drain_timeout_ms = 2000

[[providers]]
name = "primary"
kind = "openai"
base_url = "{primary}"
connect_timeout_ms = 500
timeout_ms = {ATTEMPT_TIMEOUT_MS}
first_chunk_timeout_ms = {ATTEMPT_TIMEOUT_MS}

[[providers]]
name = "backup"
kind = "openai"
base_url = "{backup}"
connect_timeout_ms = 500
timeout_ms = {ATTEMPT_TIMEOUT_MS}
first_chunk_timeout_ms = {ATTEMPT_TIMEOUT_MS}

[[routes]]
model = "chat"
targets = [
  {{ provider = "primary", model = "big-model" }},
  {{ provider = "backup", model = "small-model" }},
]

[retry]
max_retries = {max_retries}
base_delay_ms = 10
max_delay_ms = 50

[health]
consecutive_failures = {consecutive_failures}
min_requests = {min_requests}
base_ejection_secs = {base_ejection_secs}
max_ejection_secs = 300
probe_interval_secs = {probe_interval_secs}
"#
    ))
    .unwrap()
}

async fn start(settings: Settings) -> Harness {
    let primary = MockProvider::start(MockConfig::openai().name("primary").seed(7))
        .await
        .unwrap();
    let backup = MockProvider::start(MockConfig::openai().name("backup").seed(7))
        .await
        .unwrap();
    let config = config(&primary.base_url(), &backup.base_url(), settings);
    let gateway = Gateway::new(&config, |_| None).unwrap();
    let registry = gateway.registry().clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Harness {
        addr,
        primary,
        backup,
        registry,
        client: Client::builder(TokioExecutor::new()).build(connector),
        stop,
        server,
    }
}

impl Harness {
    /// One chat request, which must be answered within [`REQUEST_DEADLINE`].
    async fn chat(&self, stream: bool) -> Result<Reply, String> {
        let body = format!(
            r#"{{"model":"chat","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let request = Request::post(format!("http://{}/v1/chat/completions", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let started = Instant::now();
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("body failed: {e}"))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        tokio::time::timeout(REQUEST_DEADLINE, exchange)
            .await
            .map_err(|_| format!("no answer within {REQUEST_DEADLINE:?}"))?
            .map_err(|e: String| format!("{e} after {:?}", started.elapsed()))
    }

    /// Tears everything down: the client's connections, the gateway (which
    /// drops its connection pool and probes), then the mocks, once the
    /// gateway's connections to them are gone.
    async fn stop(self) -> Result<(), String> {
        let Self {
            primary,
            backup,
            client,
            stop,
            server,
            registry,
            ..
        } = self;
        drop(client);
        drop(registry);
        let _ = stop.send(());
        tokio::time::timeout(SETTLE_LIMIT, server)
            .await
            .map_err(|_| "the gateway did not drain in time".to_owned())?
            .unwrap()
            .map_err(|e| format!("the gateway failed: {e}"))?;
        let settled = tokio::time::timeout(SETTLE_LIMIT, async {
            while primary.stats().open_connections + backup.stats().open_connections > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let open = (
            primary.stats().open_connections,
            backup.stats().open_connections,
        );
        primary.shutdown().await;
        backup.shutdown().await;
        settled.map_err(|_| format!("connections left open (primary, backup): {open:?}"))
    }
}

/// Waits, bounded, for the runtime's live tasks to come back to `baseline`.
async fn assert_tasks_settle(baseline: usize) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let settled = tokio::time::timeout(SETTLE_LIMIT, async {
        while metrics.num_alive_tasks() > baseline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "tasks leaked: {} alive, {baseline} before",
        metrics.num_alive_tasks()
    );
}

fn plan(spec: &str) -> FaultPlan {
    spec.parse().unwrap()
}

fn served_by_backup(reply: &Reply, stream: bool, attempts: &str) -> Result<(), String> {
    let context = || format!("{} {}", reply.status, reply.body);
    if reply.status != StatusCode::OK {
        return Err(format!("expected 200 from the backup, got {}", context()));
    }
    if reply.header("x-understudy-provider") != "backup"
        || reply.header("x-understudy-model") != "small-model"
    {
        return Err(format!("not served by the backup: {:?}", reply.headers));
    }
    if reply.header("x-understudy-attempts") != attempts {
        return Err(format!(
            "attempts {:?}, expected {attempts}",
            reply.header("x-understudy-attempts")
        ));
    }
    let text = if stream {
        if !reply
            .header("content-type")
            .starts_with("text/event-stream")
        {
            return Err(format!("not a stream: {:?}", reply.headers));
        }
        reply.streamed_text()?
    } else {
        let json = reply.json()?;
        if json["object"] != "chat.completion" {
            return Err(format!("not a chat completion: {}", context()));
        }
        json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    if text != "Hello from backup." {
        return Err(format!("wrong content {text:?}: {}", context()));
    }
    Ok(())
}

fn clean_error(reply: &Reply, rate_limited: bool) -> Result<(), String> {
    let expected = if rate_limited {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::BAD_GATEWAY
    };
    if reply.status != expected {
        return Err(format!(
            "expected {expected}, got {} {}",
            reply.status, reply.body
        ));
    }
    if rate_limited && reply.header("retry-after").is_empty() {
        return Err(format!("no Retry-After: {:?}", reply.headers));
    }
    if !reply.header("content-type").starts_with("application/json") {
        return Err(format!("error is not JSON: {:?}", reply.headers));
    }
    let json = reply.json()?;
    if !json["error"]["message"].is_string() || !json["error"]["type"].is_string() {
        return Err(format!("not an OpenAI error: {}", reply.body));
    }
    if reply.header("x-understudy-attempts") != "2" {
        return Err(format!(
            "attempts {:?}, expected 2",
            reply.header("x-understudy-attempts")
        ));
    }
    Ok(())
}

/// One matrix case on its own gateway and mocks.
async fn case(fault: &'static str, stream: bool, both_fail: bool) -> Result<(), String> {
    let h = start(Settings::MATRIX).await;
    h.primary.set_fault(plan(fault));
    if both_fail {
        h.backup.set_fault(plan(fault));
    }
    let outcome = match h.chat(stream).await {
        Ok(reply) if both_fail => clean_error(&reply, fault.starts_with("rate-limit")),
        Ok(reply) => served_by_backup(&reply, stream, "2"),
        Err(error) => Err(error),
    };
    let teardown = h.stop().await;
    outcome.and(teardown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_streaming_or_not_primary_or_both() {
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let started = Instant::now();
    let mut cases = JoinSet::new();
    for fault in FAULTS {
        for stream in [false, true] {
            for both_fail in [false, true] {
                cases.spawn(async move {
                    let label = format!(
                        "{fault} {} {}",
                        if stream { "streaming" } else { "non-streaming" },
                        if both_fail {
                            "both fail"
                        } else {
                            "primary fails"
                        }
                    );
                    (label, case(fault, stream, both_fail).await)
                });
            }
        }
    }
    let mut failures = Vec::new();
    let mut ran = 0;
    while let Some(joined) = cases.join_next().await {
        let (label, outcome) = joined.unwrap();
        ran += 1;
        if let Err(error) = outcome {
            failures.push(format!("{label}: {error}"));
        }
    }
    assert_eq!(ran, FAULTS.len() * 4);
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_tasks_settle(baseline).await;
    assert!(
        started.elapsed() < Duration::from_mins(1),
        "{:?}",
        started.elapsed()
    );
}

/// Waits, bounded, for `provider` to reach `state`.
async fn await_state(registry: &HealthRegistry, provider: &str, state: ProviderState) {
    tokio::time::timeout(SETTLE_LIMIT, async {
        loop {
            let current = registry
                .snapshot()
                .into_iter()
                .find(|s| s.name == provider)
                .map(|s| s.state);
            if current == Some(state) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{provider} never became {state:?}"));
}

/// The primary fails with `fault` until ejected, then recovers; the probe
/// restores it and traffic returns to it.
async fn ejection_and_restoration(fault: &str) {
    let h = start(Settings {
        max_retries: 0,
        consecutive_failures: 3,
        min_requests: 1000,
        // Long enough that only the active probe can restore it in time.
        base_ejection_secs: 60,
        probe_interval_secs: 1,
    })
    .await;
    assert_eq!(
        h.chat(false).await.unwrap().header("x-understudy-provider"),
        "primary"
    );

    h.primary.set_fault(plan(fault));
    for _ in 0..3 {
        served_by_backup(&h.chat(false).await.unwrap(), false, "2").unwrap();
    }
    await_state(&h.registry, "primary", ProviderState::Ejected).await;
    let chat_requests = h.primary.stats().chat_requests;
    // Ejected: skipped without an attempt.
    served_by_backup(&h.chat(false).await.unwrap(), false, "1").unwrap();
    assert_eq!(h.primary.stats().chat_requests, chat_requests);

    // The probe sees the primary down before it recovers (a refused
    // connection leaves no trace in the mock to wait for).
    if fault != "refuse" {
        tokio::time::timeout(SETTLE_LIMIT, async {
            while h.primary.stats().models_requests == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the primary was probed while ejected");
        assert_eq!(h.registry.snapshot()[1].state, ProviderState::Ejected);
    }

    let mut events = h.registry.subscribe();
    h.primary.clear_faults();
    tokio::time::timeout(SETTLE_LIMIT, async {
        while let Some(event) = events.recv().await {
            if &*event.provider == "primary" && event.kind == HealthEventKind::Restored {
                return;
            }
        }
        panic!("the registry went away");
    })
    .await
    .expect("the probe restored the primary");

    let reply = h.chat(false).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-understudy-provider"), "primary");
    assert_eq!(reply.header("x-understudy-attempts"), "1");
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ejects_a_refusing_primary_and_the_probe_restores_it() {
    ejection_and_restoration("refuse").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ejects_a_failing_primary_and_the_probe_restores_it() {
    ejection_and_restoration("status:503").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ejects_a_hanging_primary_and_the_probe_restores_it() {
    ejection_and_restoration("hang").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_after_its_first_content_ends_with_an_error_event_and_no_fallback() {
    let h = start(Settings::MATRIX).await;
    // Role, then two content chunks, then the cut.
    h.primary.set_fault(plan("drop-after:3"));

    let reply = h.chat(true).await.unwrap();

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-understudy-provider"), "primary");
    assert_eq!(reply.header("x-understudy-attempts"), "1");
    let data: Vec<&str> = reply
        .body
        .split("\n\n")
        .filter_map(|event| event.trim().strip_prefix("data: "))
        .collect();
    assert!(!data.contains(&"[DONE]"), "{}", reply.body);
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{}", reply.body);
    assert!(last["error"]["type"].is_string(), "{}", reply.body);
    // Content reached the caller before the cut.
    assert!(
        data.iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .any(|chunk| chunk["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())),
        "{}",
        reply.body
    );
    assert_eq!(
        h.backup.stats().chat_requests,
        0,
        "no fallback after the commit"
    );
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_the_primary_then_the_backup_makes_three_attempts() {
    let h = start(Settings {
        max_retries: 1,
        ..Settings::MATRIX
    })
    .await;
    h.primary.set_fault(plan("status:503"));

    for stream in [false, true] {
        served_by_backup(&h.chat(stream).await.unwrap(), stream, "3").unwrap();
    }
    assert_eq!(h.primary.stats().chat_requests, 4);
    assert_eq!(h.backup.stats().chat_requests, 2);
    h.stop().await.unwrap();
}

/// A small seeded generator (xorshift64*), so the soak is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_a_flapping_primary_always_tried_has_no_caller_visible_failures() {
    // Health never ejects: every request meets the flapping primary first.
    soak(Settings {
        max_retries: 0,
        consecutive_failures: 1_000_000,
        min_requests: 1_000_000,
        base_ejection_secs: 1,
        probe_interval_secs: 1,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_a_flapping_primary_and_ejection_has_no_caller_visible_failures() {
    // Health ejects after three failures in a row; ejections, probes and
    // trials interleave with the flapping.
    soak(Settings {
        max_retries: 0,
        consecutive_failures: 3,
        min_requests: 20,
        base_ejection_secs: 1,
        probe_interval_secs: 1,
    })
    .await;
}

/// Requests at concurrency 64, a fifth of them streaming, while the primary
/// switches faults at random every few milliseconds and the backup stays
/// healthy: every request must succeed.
async fn soak(settings: Settings) {
    const REQUESTS: u64 = 2500;
    const CONCURRENCY: u64 = 64;
    const FLAPS: [&str; 5] = ["none", "status:500", "reset", "refuse", "hang"];

    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let started = Instant::now();
    let h = Arc::new(start(settings).await);

    // The primary switches faults at random every few milliseconds.
    let done = Arc::new(AtomicBool::new(false));
    let flapper = {
        let (h, done) = (h.clone(), done.clone());
        tokio::spawn(async move {
            let mut rng = Rng(0x5eed_1234_abcd_9876);
            let mut flaps = 0_u64;
            while !done.load(Ordering::Relaxed) {
                h.primary
                    .set_fault(plan(FLAPS[usize::try_from(rng.below(5)).unwrap()]));
                flaps += 1;
                tokio::time::sleep(Duration::from_millis(2 + rng.below(8))).await;
            }
            flaps
        })
    };

    let next = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (h, next) = (h.clone(), next.clone());
        workers.spawn(async move {
            let mut failures = Vec::new();
            let mut by_primary = 0_u64;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= REQUESTS {
                    break;
                }
                let stream = n % 5 == 0;
                let outcome = match h.chat(stream).await {
                    Ok(reply) if reply.status == StatusCode::OK => {
                        let who = reply.header("x-understudy-provider").to_owned();
                        let text = if stream {
                            reply.streamed_text()
                        } else {
                            reply.json().map(|json| {
                                json["choices"][0]["message"]["content"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_owned()
                            })
                        };
                        match text {
                            Ok(text) if text == format!("Hello from {who}.") => {
                                by_primary += u64::from(who == "primary");
                                Ok(())
                            }
                            Ok(text) => Err(format!("wrong content {text:?} from {who}")),
                            Err(error) => Err(error),
                        }
                    }
                    Ok(reply) => Err(format!("{} {}", reply.status, reply.body)),
                    Err(error) => Err(error),
                };
                if let Err(error) = outcome {
                    failures.push(format!("request {n} (stream: {stream}): {error}"));
                }
            }
            (failures, by_primary)
        });
    }
    let mut failures = Vec::new();
    let mut by_primary = 0;
    while let Some(joined) = workers.join_next().await {
        let (mut worker_failures, worker_by_primary) = joined.unwrap();
        failures.append(&mut worker_failures);
        by_primary += worker_by_primary;
    }
    done.store(true, Ordering::Relaxed);
    let flaps = flapper.await.unwrap();
    let took = started.elapsed();
    println!(
        "soak: {REQUESTS} requests in {took:?}, {flaps} flaps, {by_primary} served by the primary; primary {:?}; health {:?}",
        h.primary.stats(),
        h.registry.snapshot()
    );

    assert!(
        failures.is_empty(),
        "{} of {REQUESTS} requests failed, e.g.:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    assert!(flaps > 20, "the primary flapped only {flaps} times");
    if settings.consecutive_failures > 1000 {
        assert!(by_primary > 0, "the primary never served");
    }
    assert!(
        h.backup.stats().chat_requests > 0,
        "the backup never served"
    );

    let h = Arc::into_inner(h).expect("every worker is done");
    h.stop().await.unwrap();
    assert_tasks_settle(baseline).await;
    assert!(took < Duration::from_mins(1), "the soak took {took:?}");
}
