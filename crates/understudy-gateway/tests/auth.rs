//! Caller keys end to end: the gateway on loopback with `[auth]`, a mock
//! provider behind it, and requests with and without keys on every
//! endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use understudy_mock::{MockProvider, WireFormat};
use understudy_observe::{LogFormat, subscriber};

mod support;
use support::{Reply, Served, mock};

const SEARCH: &str = "sk-caller-search-secret";
/// Configured by its digest: `printf %s sk-caller-batch-secret | sha256sum`.
const BATCH: &str = "sk-caller-batch-secret";
const BATCH_SHA256: &str = "52a0c533cff64a23b93cf828638520160204c20ee947065d6b4edd4a745312a3";
const LIMITED: &str = "sk-caller-limited-secret";
const METRICS: &str = "sk-metrics-reader-secret";
const PROVIDER: &str = "sk-provider-secret";

/// Every secret the gateway is given or shown.
const SECRETS: [&str; 5] = [SEARCH, BATCH, LIMITED, METRICS, PROVIDER];

/// Everything the gateways of this binary log, as JSON lines.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = subscriber(LogFormat::Json, "debug", move || Sink(sink.clone())).unwrap();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Harness {
    provider: MockProvider,
    served: Served,
}

async fn start() -> Harness {
    logs();
    let provider = mock(WireFormat::OpenAi, "primary").await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "primary"
kind = "openai"
base_url = "{}"
api_key_env = "PROVIDER_KEY"
direct_models = ["direct-model"]

[[routes]]
model = "chat"
targets = [{{ provider = "primary", model = "big" }}]

[[routes]]
model = "embed"
targets = [{{ provider = "primary", model = "embed-small" }}]

[[routes]]
model = "other"
targets = [{{ provider = "primary", model = "other-model" }}]

[retry]
max_retries = 0

[health]
probe_interval_secs = 0

[auth]
keys = [
  {{ name = "search", key_env = "SEARCH_KEY", routes = ["chat", "embed"], rpm = 600 }},
  {{ name = "batch", key_sha256 = "{BATCH_SHA256}", routes = ["*"] }},
  {{ name = "limited", key_env = "LIMITED_KEY", routes = ["*"], rpm = 2 }},
]
metrics_key_env = "METRICS_KEY"
"#,
        provider.base_url(),
    );
    let served = Served::start(&toml, |var| {
        let value = match var {
            "PROVIDER_KEY" => PROVIDER,
            "SEARCH_KEY" => SEARCH,
            "LIMITED_KEY" => LIMITED,
            "METRICS_KEY" => METRICS,
            _ => return None,
        };
        Some(value.to_owned())
    })
    .await;
    Harness { provider, served }
}

/// The endpoints that take a request body, and a body for each.
fn endpoints(model: &str) -> [(&'static str, Value); 3] {
    let messages = json!([{"role": "user", "content": "hi"}]);
    [
        (
            "/v1/chat/completions",
            json!({"model": model, "messages": messages}),
        ),
        (
            "/v1/embeddings",
            json!({"model": model, "input": ["one"], "dimensions": 4}),
        ),
        (
            "/v1/messages",
            json!({"model": model, "max_tokens": 16, "messages": messages}),
        ),
    ]
}

impl Harness {
    async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        self.served
            .send(Method::POST, path, headers, &body.to_string())
            .await
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.served.send(Method::GET, path, headers, "").await
    }

    async fn chat(&self, model: &str, headers: &[(&str, &str)]) -> Reply {
        let [(path, body), ..] = endpoints(model);
        self.post(path, &body, headers).await
    }

    fn requests_upstream(&self) -> u64 {
        self.provider.stats().requests
    }

    async fn stop(self) {
        self.served.stop_with([self.provider]).await;
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// The error's (type, code) in the endpoint's shape: OpenAI's `error.type`
/// and `error.code`, or Anthropic's `error.type` (no code).
fn error_of(path: &str, reply: &Reply) -> (String, String) {
    let body = reply.json();
    for secret in SECRETS {
        assert!(!reply.body.contains(secret), "{}", reply.body);
    }
    if path == "/v1/messages" {
        assert_eq!(body["type"], "error", "{}", reply.body);
        (
            body["error"]["type"].as_str().unwrap().to_owned(),
            String::new(),
        )
    } else {
        (
            body["error"]["type"].as_str().unwrap().to_owned(),
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_known_key_get_401_and_reach_no_provider() {
    let h = start().await;
    let unknown = bearer("sk-caller-unknown-secret");
    let basic = format!("Basic {SEARCH}");
    let refused: [&[(&str, &str)]; 5] = [
        &[],
        &[("authorization", &unknown)],
        &[("authorization", &basic)],
        &[("authorization", SEARCH)],
        &[("x-api-key", "sk-caller-unknown-secret")],
    ];
    for (path, body) in endpoints("chat") {
        for headers in refused {
            let reply = h.post(path, &body, headers).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path} {headers:?}");
            let expected = if path == "/v1/messages" {
                ("authentication_error".to_owned(), String::new())
            } else {
                (
                    "invalid_request_error".to_owned(),
                    "invalid_api_key".to_owned(),
                )
            };
            assert_eq!(error_of(path, &reply), expected, "{path} {headers:?}");
            assert!(!reply.body.contains("sk-caller-unknown-secret"));
        }
    }
    // `x-api-key` is the Messages endpoint's form only.
    let reply = h.chat("chat", &[("x-api-key", SEARCH)]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(h.requests_upstream(), 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_key_is_served_and_never_forwarded() {
    let h = start().await;
    let search = bearer(SEARCH);
    let batch = bearer(BATCH);
    let forms: [&[(&str, &str)]; 2] = [&[("authorization", &search)], &[("x-api-key", SEARCH)]];
    for (path, body) in endpoints("embed") {
        let headers = if path == "/v1/messages" {
            forms[1]
        } else {
            forms[0]
        };
        let body = if path == "/v1/embeddings" {
            body
        } else {
            endpoints("chat")
                .into_iter()
                .find(|(p, _)| *p == path)
                .unwrap()
                .1
        };
        let reply = h.post(path, &body, headers).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        let sent = h.provider.last_request().unwrap();
        // The provider's key replaces the caller's, in every form.
        assert_eq!(sent.headers["authorization"], bearer(PROVIDER));
        assert!(!sent.headers.contains_key("x-api-key"), "{path}");
        for (name, value) in &sent.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            assert!(!value.contains("sk-caller"), "{path}: {name}: {value}");
        }
    }
    // Both headers on the Messages endpoint, and a key given by its digest.
    let [_, _, (path, body)] = endpoints("other");
    let reply = h
        .post(
            path,
            &body,
            &[("x-api-key", BATCH), ("authorization", &search)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = h.chat("other", &[("authorization", &batch)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(h.requests_upstream(), 5);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_the_key_may_not_use_gets_403_and_reaches_no_provider() {
    let h = start().await;
    let search = bearer(SEARCH);
    for (path, body) in endpoints("other") {
        let reply = h.post(path, &body, &[("authorization", &search)]).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            reply.body
        );
        let expected = if path == "/v1/messages" {
            ("permission_error".to_owned(), String::new())
        } else {
            (
                "invalid_request_error".to_owned(),
                "route_not_allowed".to_owned(),
            )
        };
        assert_eq!(error_of(path, &reply), expected, "{path}");
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains("`search`") && message.contains("`other`"),
            "{message}"
        );
    }
    // A model addressed directly is a route like any other.
    let direct = h
        .chat("primary/direct-model", &[("authorization", &search)])
        .await;
    assert_eq!(direct.status, StatusCode::FORBIDDEN, "{}", direct.body);
    assert!(
        direct.body.contains("`primary/direct-model`"),
        "{}",
        direct.body
    );
    assert_eq!(h.requests_upstream(), 0);
    let direct = h
        .chat("primary/direct-model", &[("authorization", &bearer(BATCH))])
        .await;
    assert_eq!(direct.status, StatusCode::OK, "{}", direct.body);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rpm_gets_429_with_retry_after_and_reaches_no_provider() {
    let h = start().await;
    let limited = bearer(LIMITED);
    for _ in 0..2 {
        let reply = h.chat("chat", &[("authorization", &limited)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    for (path, body) in endpoints("chat") {
        let reply = h.post(path, &body, &[("authorization", &limited)]).await;
        assert_eq!(
            reply.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{path}: {}",
            reply.body
        );
        let expected = if path == "/v1/messages" {
            ("rate_limit_error".to_owned(), String::new())
        } else {
            (
                "rate_limit_error".to_owned(),
                "rate_limit_exceeded".to_owned(),
            )
        };
        assert_eq!(error_of(path, &reply), expected, "{path}");
        // Two a minute: the next one in at most 30 s, in whole seconds.
        let wait: u64 = reply.header("retry-after").parse().unwrap();
        assert!((1..=30).contains(&wait), "{path}: {wait}");
    }
    assert_eq!(h.requests_upstream(), 2);
    // Another key has its own rate.
    let reply = h.chat("chat", &[("authorization", &bearer(BATCH))]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_only_what_the_key_may_use() {
    let h = start().await;
    let ids = |reply: &Reply| -> Vec<String> {
        reply.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|model| model["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let anonymous = h.get("/v1/models", &[]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["error"]["code"], "invalid_api_key");

    let search = h
        .get("/v1/models", &[("authorization", &bearer(SEARCH))])
        .await;
    assert_eq!(search.status, StatusCode::OK, "{}", search.body);
    assert_eq!(ids(&search), ["chat", "embed"]);
    let batch = h
        .get("/v1/models", &[("authorization", &bearer(BATCH))])
        .await;
    assert_eq!(ids(&batch), ["chat", "embed", "other"]);

    // Anthropic's SDK: `x-api-key` and its shapes.
    let version = ("anthropic-version", "2023-06-01");
    let listed = h.get("/v1/models", &[version, ("x-api-key", SEARCH)]).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(ids(&listed), ["chat", "embed"]);
    assert_eq!(listed.json()["last_id"], "embed");
    let refused = h.get("/v1/models", &[version]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["error"]["type"], "authentication_error");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_their_key_and_label_requests_by_key_name() {
    let h = start().await;
    let reply = h.chat("embed", &[("authorization", &bearer(SEARCH))]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let refused = h.chat("chat", &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    for headers in [vec![], vec![("authorization", bearer(SEARCH))]] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply = h.get("/metrics", &headers).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert!(!reply.body.contains("understudy_requests_total"));
    }
    let health = h.get("/health", &[]).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);

    let metrics = h
        .get("/metrics", &[("authorization", &bearer(METRICS))])
        .await;
    assert_eq!(metrics.status, StatusCode::OK);
    let requests = |key: &str, route: &str| {
        metrics.body.lines().any(|line| {
            line.starts_with("understudy_requests_total{")
                && line.contains(&format!("key=\"{key}\""))
                && line.contains(&format!("route=\"{route}\""))
        })
    };
    assert!(requests("search", "embed"), "{}", metrics.body);
    // The refused request was counted, with no key name.
    assert!(requests("", "unknown"), "{}", metrics.body);
    for secret in SECRETS {
        assert!(
            !metrics.body.contains(secret),
            "{secret} in\n{}",
            metrics.body
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_needs_the_metrics_key_as_bearer_or_basic_password() {
    use base64::Engine as _;

    let h = start().await;
    let basic = |user_and_password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_and_password)
        )
    };
    for path in ["/status", "/status.json"] {
        for refused in [
            String::new(),
            bearer(SEARCH),
            basic(&format!("ops:{SEARCH}")),
            basic("ops:"),
            "Basic !!!".to_owned(),
        ] {
            let headers: Vec<(&str, &str)> = if refused.is_empty() {
                vec![]
            } else {
                vec![("authorization", refused.as_str())]
            };
            let reply = h.get(path, &headers).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path} {refused}");
            assert!(
                reply.header("www-authenticate").starts_with("Basic realm="),
                "a browser is asked for the key: {:?}",
                reply.headers
            );
            assert!(!reply.body.contains("providers"), "{}", reply.body);
        }
        for admitted in [
            bearer(METRICS),
            basic(&format!("ops:{METRICS}")),
            basic(&format!(":{METRICS}")),
        ] {
            let reply = h.get(path, &[("authorization", &admitted)]).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        }
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_name_the_key_and_hold_no_secret() {
    let h = start().await;
    let search = bearer(SEARCH);
    let reply = h.chat("chat", &[("authorization", &search)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let forbidden = h.chat("other", &[("authorization", &search)]).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let unknown = h
        .chat(
            "chat",
            &[("authorization", "Bearer sk-caller-unknown-secret")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    h.stop().await;

    let logs = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    let finished: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["event"] == "request_finished")
        .collect();
    assert!(
        finished
            .iter()
            .any(|line| line["span"]["key"] == "search" && line["span"]["route"] == "chat"),
        "{logs}"
    );
    assert!(
        finished
            .iter()
            .any(|line| line["span"]["key"] == "search" && line["span"]["status"] == 403),
        "{logs}"
    );
    for secret in SECRETS.iter().chain(&["sk-caller-unknown-secret"]) {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}
