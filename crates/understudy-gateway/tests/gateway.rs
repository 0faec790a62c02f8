//! The gateway end to end: real sockets, mock providers on port 0, the
//! gateway in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use understudy_mock::{MockProvider, WireFormat};

mod support;
use support::{LIMIT, Reply, Served, fault, mock};

struct Harness {
    addr: SocketAddr,
    primary: MockProvider,
    backup: MockProvider,
    served: Served,
}

/// Starts a primary and a backup mock and a gateway routing `route` to
/// both, with `extra` appended to the config.
async fn start(route: &str, backup_format: WireFormat, extra: &str) -> Harness {
    start_with(route, backup_format, "", extra).await
}

/// As [`start`], with `server` appended to the `[server]` section.
async fn start_with(route: &str, backup_format: WireFormat, server: &str, extra: &str) -> Harness {
    let primary = mock(WireFormat::OpenAi, "primary").await;
    let backup = mock(backup_format, "backup").await;
    let kind = backup_format.name();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 4096
request_timeout_ms = 10000
{server}

[[providers]]
name = "primary"
kind = "openai"
base_url = "{}"
api_key_env = "PRIMARY_KEY"
timeout_ms = 500
first_chunk_timeout_ms = 500

[[providers]]
name = "backup"
kind = "{kind}"
base_url = "{}"
api_key_env = "BACKUP_KEY"

[[routes]]
model = "{route}"
targets = [
  {{ provider = "primary", model = "big-model" }},
  {{ provider = "backup", model = "small-model" }},
]

[retry]
max_retries = 0
{extra}
"#,
        primary.base_url(),
        backup.base_url()
    );
    let served = Served::start(&toml, |var| match var {
        "PRIMARY_KEY" => Some("sk-primary-secret".to_owned()),
        "BACKUP_KEY" => Some("sk-backup-secret".to_owned()),
        _ => None,
    })
    .await;
    Harness {
        addr: served.addr,
        primary,
        backup,
        served,
    }
}

impl Harness {
    async fn send(&self, method: Method, path: &str, body: &str) -> Reply {
        let caller = [
            ("authorization", "Bearer caller-token"),
            ("x-api-key", "caller-x-api-key"),
        ];
        self.served.send(method, path, &caller, body).await
    }

    async fn chat(&self, model: &str, stream: bool) -> Reply {
        let body = format!(
            r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}],"temperature":0.5}}"#
        );
        self.send(Method::POST, "/v1/chat/completions", &body).await
    }

    async fn stop(self) {
        self.served.stop_with([self.primary, self.backup]).await;
    }
}

fn assert_served_by_backup(reply: &Reply, attempts: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-understudy-provider"), "backup");
    assert_eq!(reply.header("x-understudy-model"), "small-model");
    assert_eq!(reply.header("x-understudy-attempts"), attempts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_primary_falls_back_and_the_backup_gets_the_same_request() {
    let h = start("chat", WireFormat::OpenAi, "").await;
    h.primary.set_fault(fault("status:503"));

    let reply = h.chat("chat", false).await;

    assert_served_by_backup(&reply, "2");
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Hello from backup."
    );
    let (to_primary, to_backup) = (
        h.primary.last_request().unwrap(),
        h.backup.last_request().unwrap(),
    );
    assert_eq!(to_primary.json().unwrap()["model"], "big-model");
    assert_eq!(to_backup.json().unwrap()["model"], "small-model");
    assert_eq!(to_backup.json().unwrap()["temperature"], 0.5);
    // The provider's key replaces the caller's credentials.
    assert_eq!(
        to_backup.headers["authorization"],
        "Bearer sk-backup-secret"
    );
    assert_eq!(
        to_primary.headers["authorization"],
        "Bearer sk-primary-secret"
    );
    // No form of the caller's credentials goes upstream.
    for sent in [&to_primary, &to_backup] {
        assert!(!sent.headers.contains_key("x-api-key"));
        for value in sent.headers.values() {
            assert!(!value.as_bytes().starts_with(b"caller-"), "{value:?}");
            assert!(!String::from_utf8_lossy(value.as_bytes()).contains("caller-"));
        }
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_primary_falls_back() {
    let h = start("chat", WireFormat::OpenAi, "").await;
    h.primary.set_fault(fault("refuse"));

    let reply = h.chat("chat", false).await;

    assert_served_by_backup(&reply, "2");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_primary_falls_back_after_its_timeout() {
    let h = start("chat", WireFormat::OpenAi, "").await;
    h.primary.set_fault(fault("hang"));

    let started = tokio::time::Instant::now();
    let reply = h.chat("chat", false).await;

    assert_served_by_backup(&reply, "2");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_falls_back_to_an_anthropic_backup_translated() {
    let h = start("chat", WireFormat::Anthropic, "").await;
    h.primary.set_fault(fault("error-event"));

    let reply = h.chat("chat", true).await;

    assert_served_by_backup(&reply, "2");
    assert!(
        reply
            .header("content-type")
            .starts_with("text/event-stream")
    );
    let events = reply.data();
    assert_eq!(events.last(), Some(&"[DONE]"), "{}", reply.body);
    let text: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "Hello from backup.");
    let to_backup = h.backup.last_request().unwrap();
    assert_eq!(to_backup.path, "/v1/messages");
    assert_eq!(to_backup.headers["x-api-key"], "sk-backup-secret");
    assert!(!to_backup.headers.contains_key("authorization"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_openai_shaped_errors() {
    let h = start("chat", WireFormat::OpenAi, "").await;

    let invalid = h
        .send(Method::POST, "/v1/chat/completions", "{not json")
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.json()["error"]["type"], "invalid_request_error");

    let unknown = h.chat("gpt-5-ultra", false).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("chat")
    );

    let missing = h
        .send(Method::POST, "/v1/chat/completions", r#"{"messages":[]}"#)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let big = format!(
        r#"{{"model":"chat","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(5000)
    );
    let too_large = h.send(Method::POST, "/v1/chat/completions", &big).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.json()["error"]["code"], "request_too_large");

    let wrong_method = h.send(Method::GET, "/v1/chat/completions", "").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.json()["error"]["message"].is_string());

    let nowhere = h.send(Method::GET, "/v2/everything", "").await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert_eq!(nowhere.json()["error"]["code"], "unknown_url");

    // None of it reached a provider.
    assert_eq!(
        h.primary.stats().chat_requests + h.backup.stats().chat_requests,
        0
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_is_addressed_directly_without_fallback() {
    let h = start_with("chat", WireFormat::OpenAi, "direct_addressing = true", "").await;
    h.primary.set_fault(fault("status:503"));

    let reply = h.chat("primary/exact-model", false).await;

    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    assert_eq!(
        h.primary.last_request().unwrap().json().unwrap()["model"],
        "exact-model"
    );
    assert_eq!(h.backup.stats().chat_requests, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_addressing_is_off_unless_configured_and_bounded() {
    let h = start("chat", WireFormat::OpenAi, "").await;
    let refused = h.chat("primary/exact-model", false).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "model_not_found");
    assert_eq!(h.primary.stats().chat_requests, 0);
    h.stop().await;

    // Open addressing keeps at most `direct_cache_size` stacks, and labels
    // them by provider only: inventing models grows no metric series.
    let h = start_with(
        "chat",
        WireFormat::OpenAi,
        "direct_addressing = true\ndirect_cache_size = 2",
        "",
    )
    .await;
    for i in 0..20 {
        let reply = h.chat(&format!("backup/invented-{i}"), false).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let metrics = h.send(Method::GET, "/metrics", "").await.body;
    assert!(
        !metrics.contains("invented-"),
        "caller strings in labels:\n{metrics}"
    );
    assert!(metrics.contains("route=\"backup/*\""), "{metrics}");

    // A model longer than 256 bytes is refused before any provider is called.
    let long = format!("backup/{}", "m".repeat(300));
    let before = h.backup.stats().chat_requests;
    let reply = h.chat(&long, false).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(h.backup.stats().chat_requests, before);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflects_an_ejection_and_models_lists_routes() {
    let h = start(
        "chat",
        WireFormat::OpenAi,
        "[health]\nconsecutive_failures = 2\nbase_ejection_secs = 60\nprobe_interval_secs = 60\n",
    )
    .await;
    h.primary.set_fault(fault("status:500"));
    // Two failures eject the primary; the third request skips it.
    for attempts in ["2", "2", "1"] {
        assert_served_by_backup(&h.chat("chat", false).await, attempts);
    }
    assert_eq!(
        h.primary.stats().chat_requests,
        2,
        "ejected after two failures, then skipped"
    );

    let health = h.send(Method::GET, "/health", "").await;
    assert_eq!(health.status, StatusCode::OK);
    let health = health.json();
    assert_eq!(health["status"], "degraded");
    let primary = health["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "primary")
        .unwrap();
    assert_eq!(primary["state"], "ejected");
    assert!(primary["until"].is_string());

    let models = h.send(Method::GET, "/v1/models", "").await.json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "chat");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_fallback() {
    let h = start("metrics-route", WireFormat::OpenAi, "").await;
    h.primary.set_fault(fault("status:502"));
    assert_served_by_backup(&h.chat("metrics-route", false).await, "2");

    let metrics = h.send(Method::GET, "/metrics", "").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let line = metrics
        .body
        .lines()
        .find(|l| {
            l.starts_with("understudy_fallbacks_total{") && l.contains("route=\"metrics-route\"")
        })
        .unwrap_or_else(|| panic!("no fallback counter in\n{}", metrics.body));
    assert!(
        line.contains("from=\"primary\"") && line.contains("to=\"backup\""),
        "{line}"
    );
    assert!(line.ends_with(" 1"), "{line}");
    assert!(!metrics.body.contains("sk-primary-secret"));

    // Durations are histograms with fixed buckets, which aggregate across
    // replicas, not per-process quantiles.
    let bucket = metrics
        .body
        .lines()
        .find(|l| {
            l.starts_with("understudy_request_duration_seconds_bucket{")
                && l.contains("route=\"metrics-route\"")
                && l.contains("le=\"+Inf\"")
        })
        .unwrap_or_else(|| panic!("no request duration buckets in\n{}", metrics.body));
    assert!(bucket.ends_with(" 1"), "{bucket}");
    assert!(
        metrics
            .body
            .contains("understudy_attempt_duration_seconds_bucket{"),
        "{}",
        metrics.body
    );
    assert!(!metrics.body.contains("quantile="), "{}", metrics.body);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_stream_in_flight_finish() {
    let mut h = start("chat", WireFormat::OpenAi, "").await;
    h.primary.set_fault(fault("drip:30"));
    let request = Request::post(format!("http://{}/v1/chat/completions", h.addr))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        )))
        .unwrap();
    let response = h.served.request(request).await;
    assert_eq!(response.headers()["x-understudy-provider"], "primary");
    let mut body = response.into_body();
    let first = tokio::time::timeout(LIMIT, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.is_data());

    // Stop accepting while the stream is still dripping.
    h.served.signal_stop();
    let rest = tokio::time::timeout(LIMIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert!(rest.ends_with(b"data: [DONE]\n\n"), "{rest:?}");
    let addr = h.addr;
    h.served.stop(LIMIT).await;
    // The listener is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_can_be_turned_off() {
    let h = start(
        "chat",
        WireFormat::OpenAi,
        "[health]\nprobe_interval_secs = 0\n",
    )
    .await;
    h.primary.set_fault(fault("status:503"));
    assert_served_by_backup(&h.chat("chat", false).await, "2");
    assert_eq!(h.primary.stats().models_requests, 0);
    h.stop().await;
}

/// A listener whose accept queue is full and never drained: a connection
/// attempt to it waits for ever (its SYN is dropped), as to a host that
/// does not answer.
async fn unanswering_listener() -> (tokio::net::TcpListener, Vec<tokio::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    // Fill the queue: connections that complete are queued, unaccepted.
    while let Ok(Ok(stream)) = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        fillers.push(stream);
    }
    (listener, fillers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_provider_connects_within_its_own_timeout() {
    let (dead, _fillers) = unanswering_listener().await;
    let backup = mock(WireFormat::OpenAi, "backup").await;
    let toml = format!(
        r#"
[[providers]]
name = "dead"
kind = "openai"
base_url = "http://{}/v1"
connect_timeout_ms = 200

[[providers]]
name = "patient"
kind = "openai"
base_url = "{}"
connect_timeout_ms = 10000

[[routes]]
model = "chat"
targets = [{{ provider = "dead", model = "m" }}, {{ provider = "patient", model = "m" }}]

[retry]
max_retries = 0
"#,
        dead.local_addr().unwrap(),
        backup.base_url()
    );
    let served = Served::start(&toml, |_| None).await;
    let addr = served.addr;
    let request = Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#,
        )))
        .unwrap();
    let started = tokio::time::Instant::now();
    let response = served.request(request).await;
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-understudy-provider"], "patient");
    // The dead provider's own 200 ms, not the longest timeout configured.
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    served.stop_with([backup]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_a_provider_lists_can_be_addressed_directly() {
    let upstream = mock(WireFormat::OpenAi, "upstream").await;
    let toml = format!(
        r#"
[[providers]]
name = "upstream"
kind = "openai"
base_url = "{}"
direct_models = ["listed-model"]

[[routes]]
model = "chat"
targets = [{{ provider = "upstream", model = "m" }}]
"#,
        upstream.base_url()
    );
    let served = Served::start(&toml, |_| None).await;
    let addr = served.addr;
    let ask = |model: &str| {
        Request::post(format!("http://{addr}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#
            ))))
            .unwrap()
    };
    let listed = served.request(ask("upstream/listed-model")).await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(
        upstream.last_request().unwrap().json().unwrap()["model"],
        "listed-model"
    );
    let other = served.request(ask("upstream/other-model")).await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    assert_eq!(upstream.stats().chat_requests, 1);
    served.stop_with([upstream]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_has_one_retry_budget_whatever_routes_use_it() {
    let sick = mock(WireFormat::OpenAi, "sick").await;
    sick.set_fault(fault("status:503"));
    // No share of traffic, a floor of 1 a second over a 10 s window: ten
    // retries for the provider, however many routes reach it.
    let toml = format!(
        r#"
[[providers]]
name = "sick"
kind = "openai"
base_url = "{}"

[[routes]]
model = "one"
targets = [{{ provider = "sick", model = "a" }}]

[[routes]]
model = "two"
targets = [{{ provider = "sick", model = "b" }}]

[retry]
max_retries = 1
base_delay_ms = 1
max_delay_ms = 2
budget_ratio = 0.0
budget_min_per_sec = 1

[health]
consecutive_failures = 1000
min_requests = 1000
probe_interval_secs = 0
"#,
        sick.base_url()
    );
    let served = Served::start(&toml, |_| None).await;
    let requests = 20;
    for i in 0..requests {
        let route = if i % 2 == 0 { "one" } else { "two" };
        let request = Request::post(format!("http://{}/v1/chat/completions", served.addr))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(
                r#"{{"model":"{route}","messages":[{{"role":"user","content":"hi"}}]}}"#
            ))))
            .unwrap();
        let response = served.request(request).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    }
    let attempts = sick.stats().chat_requests;
    let retries = attempts - requests;
    // One budget: its ten retries, spent by both routes. Two budgets would
    // have allowed twenty.
    assert_eq!(retries, 10, "{attempts} attempts for {requests} requests");
    served.stop_with([sick]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_has_an_id_that_reaches_the_provider_and_comes_back() {
    let h = start("chat", WireFormat::OpenAi, "").await;
    // None sent: one is made, returned, and sent upstream.
    let reply = h.chat("chat", false).await;
    let made = reply.header("x-request-id").to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let upstream = h.primary.last_request().unwrap();
    assert_eq!(upstream.headers.get("x-request-id").unwrap(), made.as_str());

    // A well-formed one is kept; a malformed one is replaced.
    for (sent, kept) in [("caller-id-42", true), (&*"x".repeat(500), false)] {
        let request = Request::post(format!("http://{}/v1/chat/completions", h.addr))
            .header("content-type", "application/json")
            .header("x-request-id", sent)
            .body(Full::new(Bytes::from_static(
                br#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#,
            )))
            .unwrap();
        let response = h.served.request(request).await;
        let returned = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(returned == sent, kept, "{returned}");
        assert_eq!(
            h.primary
                .last_request()
                .unwrap()
                .headers
                .get("x-request-id")
                .unwrap(),
            returned.as_str()
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_unless_origins_are_configured() {
    let preflight = |addr: SocketAddr| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri(format!("http://{addr}/v1/chat/completions"))
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let h = start("chat", WireFormat::OpenAi, "").await;
    let response = h.served.request(preflight(h.addr)).await;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    h.stop().await;

    let h = start_with(
        "chat",
        WireFormat::OpenAi,
        r#"cors_origins = ["https://app.example.com"]"#,
        "",
    )
    .await;
    let response = h.served.request(preflight(h.addr)).await;
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    h.stop().await;
}
