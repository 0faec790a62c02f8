//! What the gateway shows of its providers as they serve: `/status.json`,
//! the `/status` page, and the time-to-first-content histogram. Real
//! sockets, mock providers on port 0, the gateway in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, StatusCode};
use serde_json::Value;
use understudy_mock::{MockProvider, WireFormat};

mod support;
use support::{Reply, Served, fault, mock};

struct Harness {
    primary: MockProvider,
    backup: MockProvider,
    served: Served,
}

/// A primary and a backup mock behind route `route`, which asks the
/// primary for `primary_model` and the backup for `backup_model`.
async fn start(route: &str, primary_model: &str, backup_model: &str) -> Harness {
    let primary = mock(WireFormat::OpenAi, "primary").await;
    let backup = mock(WireFormat::OpenAi, "backup").await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "primary"
kind = "openai"
base_url = "{}"
api_key_env = "PRIMARY_KEY"

[[providers]]
name = "backup"
kind = "openai"
base_url = "{}"
api_key_env = "BACKUP_KEY"

[[routes]]
model = "{route}"
targets = [
  {{ provider = "primary", model = "{primary_model}" }},
  {{ provider = "backup", model = "{backup_model}" }},
]

[retry]
max_retries = 0
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
        primary,
        backup,
        served,
    }
}

impl Harness {
    async fn get(&self, path: &str) -> Reply {
        self.served.send(Method::GET, path, &[], "").await
    }

    async fn chat(&self, model: &str, stream: bool) -> Reply {
        let body = format!(
            r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        self.served
            .send(
                Method::POST,
                "/v1/chat/completions",
                &[("authorization", "Bearer caller-token")],
                &body,
            )
            .await
    }

    async fn status(&self) -> Value {
        let reply = self.get("/status.json").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert!(
            reply.header("content-type").starts_with("application/json"),
            "{}",
            reply.header("content-type")
        );
        reply.json()
    }

    async fn stop(self) {
        self.served.stop_with([self.primary, self.backup]).await;
    }
}

fn provider<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no provider {name} in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_shows_the_providers_then_a_fallback_and_the_primary_error() {
    let h = start("chat", "big-model", "small-model").await;

    let before = h.status().await;
    let names: Vec<&str> = before["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["backup", "primary"], "{before}");
    for name in names {
        let p = provider(&before, name);
        assert_eq!(p["state"], "healthy", "{p}");
        assert!(p["until_ms"].is_null(), "{p}");
        assert!(p["last_error"].is_null(), "{p}");
        assert_eq!(p["requests_per_min"], 0, "{p}");
        assert!(p["ttfc_p50_ms"].is_null(), "{p}");
    }
    assert_eq!(before["fallbacks"], Value::Array(Vec::new()), "{before}");
    assert!(before["generated_at"].as_u64().unwrap() > 1_600_000_000_000);

    h.primary.set_fault(fault("status:503"));
    let reply = h.chat("chat", false).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-understudy-provider"), "backup");

    let after = h.status().await;
    let fallbacks = after["fallbacks"].as_array().unwrap();
    assert_eq!(fallbacks.len(), 1, "{after}");
    let fallback = &fallbacks[0];
    assert_eq!(fallback["route"], "chat");
    assert_eq!(fallback["from"], "primary");
    assert_eq!(fallback["to"], "backup");
    assert_eq!(fallback["reason"], "overloaded");
    let at = fallback["at"].as_u64().unwrap();
    assert!(at <= after["generated_at"].as_u64().unwrap(), "{after}");

    let primary = provider(&after, "primary");
    assert_eq!(primary["last_error"]["kind"], "overloaded", "{primary}");
    assert_eq!(primary["last_error"]["status"], 503, "{primary}");
    assert_eq!(primary["requests_per_min"], 1, "{primary}");
    assert_eq!(primary["failures_per_min"], 1, "{primary}");
    assert!(primary["ttfc_p50_ms"].is_null(), "{primary}");
    let backup = provider(&after, "backup");
    assert_eq!(backup["requests_per_min"], 1, "{backup}");
    assert_eq!(backup["failures_per_min"], 0, "{backup}");
    assert!(backup["last_error"].is_null(), "{backup}");
    let p50 = backup["ttfc_p50_ms"].as_f64().unwrap();
    let p95 = backup["ttfc_p95_ms"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= p95, "{backup}");
    // Nothing the provider sent, and no key, is on the board.
    assert!(!after.to_string().contains("sk-"), "{after}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_is_one_self_contained_html_document() {
    let h = start("page", "big-model", "small-model").await;

    let page = h.get("/status").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    let policy = page.header("content-security-policy");
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    assert!(page.body.starts_with("<!doctype html>"), "{}", page.body);
    assert!(page.body.contains("status.json"));
    for asset in ["http://", "https://", "//cdn", "<link", "src="] {
        assert!(!page.body.contains(asset), "{asset} in the page");
    }
    // Data is set as text, never parsed as markup.
    assert!(!page.body.contains("innerHTML"));
    assert!(page.body.contains("textContent"));

    // Both paths are named where an unknown one is refused.
    let unknown = h.get("/statuz").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let message = unknown.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("GET /status") && message.contains("GET /status.json"),
        "{message}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_to_first_content_is_a_histogram_by_provider_and_model() {
    let h = start("ttfc", "ttfc-primary-model", "ttfc-backup-model").await;
    h.primary.set_fault(fault("status:503"));

    let reply = h.chat("ttfc", true).await;
    reply.assert_event_stream();
    assert_eq!(reply.header("x-understudy-provider"), "backup");

    let metrics = h.get("/metrics").await.body;
    let series = |suffix: &str, model: &str| {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "understudy_time_to_first_content_seconds{suffix}{{"
                )) && l.contains(&format!("model=\"{model}\""))
            })
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let count = series("_count", "ttfc-backup-model");
    assert_eq!(count.len(), 1, "{metrics}");
    assert!(count[0].contains("provider=\"backup\""), "{}", count[0]);
    assert!(count[0].ends_with(" 1"), "{}", count[0]);
    let inf = series("_bucket", "ttfc-backup-model")
        .into_iter()
        .find(|l| l.contains("le=\"+Inf\""))
        .unwrap_or_else(|| panic!("no +Inf bucket in\n{metrics}"));
    assert!(inf.ends_with(" 1"), "{inf}");
    assert!(
        metrics.contains("# TYPE understudy_time_to_first_content_seconds histogram"),
        "{metrics}"
    );
    // The primary failed: no time to first content for it.
    assert!(
        series("_count", "ttfc-primary-model").is_empty(),
        "{metrics}"
    );
    h.stop().await;
}
