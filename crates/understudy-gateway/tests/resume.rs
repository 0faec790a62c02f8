//! Resuming a stream that broke after its commit on the route's next
//! target, over loopback: every break kind, an Anthropic backup, the
//! Messages endpoint, what is not resumed, and the default (off).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use understudy_mock::{MockConfig, MockProvider, WireFormat};

use support::{Reply, Served, fault};

/// Every mock's answer: a known sentence, so that a prefix from one and
/// the continuation from another make it whole.
const SENTENCE: &str = "The quick brown fox jumps over the lazy dog.";

struct Harness {
    primary: MockProvider,
    backup: MockProvider,
    served: Served,
}

/// A primary (OpenAI format) with `primary_fault`, a backup in
/// `backup_format`, and a route `chat` with `route_extra` settings.
async fn start(primary_fault: &str, backup_format: WireFormat, route_extra: &str) -> Harness {
    let mock = |format: WireFormat, name: &str| {
        MockProvider::start(
            MockConfig::new()
                .format(format)
                .name(name)
                .text(SENTENCE)
                .stream_chunks(8),
        )
    };
    let primary = mock(WireFormat::OpenAi, "primary").await.unwrap();
    let backup = mock(backup_format, "backup").await.unwrap();
    primary.set_fault(fault(primary_fault));
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "primary"
kind = "openai"
base_url = "{}"
first_chunk_timeout_ms = 500

[[providers]]
name = "backup"
kind = "{}"
base_url = "{}"
api_key_env = "BACKUP_KEY"

[[routes]]
model = "chat"
targets = [{{ provider = "primary", model = "big" }}, {{ provider = "backup", model = "small" }}]
{route_extra}

[retry]
max_retries = 0
"#,
        primary.base_url(),
        backup_format.name(),
        backup.base_url(),
    );
    let served = Served::start(&toml, |var| {
        (var == "BACKUP_KEY").then(|| "sk-backup".to_owned())
    })
    .await;
    Harness {
        primary,
        backup,
        served,
    }
}

impl Harness {
    async fn chat(&self, body: &Value) -> Reply {
        self.served
            .send(Method::POST, "/v1/chat/completions", &[], &body.to_string())
            .await
    }

    async fn stream(&self) -> Reply {
        self.chat(&json!({
            "model": "chat",
            "stream": true,
            "messages": [{"role": "user", "content": "Say the sentence."}],
        }))
        .await
    }

    async fn stop(self) {
        self.served.stop_with([self.primary, self.backup]).await;
    }
}

/// The chunks of a chat stream, `[DONE]` excluded.
fn chunks(reply: &Reply) -> Vec<Value> {
    reply
        .data()
        .into_iter()
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}")))
        .collect()
}

fn text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// The content the caller had before the stream resumed.
fn prefix(reply: &Reply) -> String {
    let (before, _) = reply
        .body
        .split_once(": resumed from primary to backup\n")
        .unwrap_or_else(|| panic!("no resume mark in {}", reply.body));
    let before = Reply {
        status: reply.status,
        headers: reply.headers.clone(),
        body: before.to_owned(),
    };
    text(&chunks(&before))
}

/// One coherent stream: one id, one `created`, one role chunk, choice 0,
/// one finish, `[DONE]` last, no error, and the whole sentence.
fn assert_one_coherent_stream(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK);
    reply.assert_event_stream();
    assert!(!reply.body.contains("error"), "{}", reply.body);
    assert_eq!(reply.data().last(), Some(&"[DONE]"), "{}", reply.body);
    let chunks = chunks(reply);
    let ids: Vec<&Value> = chunks.iter().map(|c| &c["id"]).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(chunks.iter().all(|c| c["created"] == chunks[0]["created"]));
    assert!(chunks.iter().all(|c| c["choices"][0]["index"] == 0));
    let roles = chunks
        .iter()
        .filter(|c| !c["choices"][0]["delta"]["role"].is_null())
        .count();
    assert_eq!(roles, 1, "{}", reply.body);
    let finishes: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, [&json!("stop")]);
    assert_eq!(text(&chunks), SENTENCE);
}

/// The backup's last request ended with `prefix` as an assistant turn
/// (then, for an OpenAI-compatible backup without a prefill form, the
/// instruction to continue).
fn assert_asked_to_continue(backup: &MockProvider, prefix: &str, instruction: bool) {
    let request = backup.last_request().unwrap().json().unwrap();
    let messages = request["messages"].as_array().unwrap();
    let (assistant, last) = if instruction {
        (&messages[messages.len() - 2], messages.last().unwrap())
    } else {
        (messages.last().unwrap(), messages.last().unwrap())
    };
    assert_eq!(assistant["role"], "assistant", "{request}");
    let content = match &assistant["content"] {
        Value::String(text) => text.clone(),
        blocks => blocks[0]["text"].as_str().unwrap().to_owned(),
    };
    assert_eq!(content, prefix, "{request}");
    if instruction {
        assert_eq!(last["role"], "user");
        assert!(last["content"].as_str().unwrap().starts_with("Continue"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_after_three_chunks_resumes_on_the_backup() {
    let h = start("cut-after-chunks:3", WireFormat::OpenAi, "resume = true").await;
    let reply = h.stream().await;
    assert_one_coherent_stream(&reply);
    let prefix = prefix(&reply);
    assert_eq!(
        prefix.chars().count(),
        18,
        "three of eight chunks: {prefix:?}"
    );
    assert!(SENTENCE.starts_with(&prefix));
    assert_asked_to_continue(&h.backup, &prefix, true);
    assert_eq!(reply.header("x-understudy-provider"), "primary");

    let metrics = h.served.send(Method::GET, "/metrics", &[], "").await.body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("understudy_resumes_total")
                && l.contains(r#"from="primary""#)
                && l.contains(r#"to="backup""#)
                && l.contains(r#"reason="cut""#)),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_past_the_idle_timeout_resumes() {
    let h = start(
        "stall-after-chunks:3:10000",
        WireFormat::OpenAi,
        "resume = true",
    )
    .await;
    let reply = h.stream().await;
    assert_one_coherent_stream(&reply);
    assert_asked_to_continue(&h.backup, &prefix(&reply), true);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_event_in_the_stream_resumes_and_counts_against_health() {
    let h = start(
        "error-event-after-chunks:3",
        WireFormat::OpenAi,
        "resume = true",
    )
    .await;
    let reply = h.stream().await;
    assert_one_coherent_stream(&reply);
    assert_asked_to_continue(&h.backup, &prefix(&reply), true);
    let metrics = h.served.send(Method::GET, "/metrics", &[], "").await.body;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("understudy_streams_broken_after_commit_total")
                && l.contains(r#"provider="primary""#)
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("understudy_resumes_total")
                && l.contains(r#"reason="error_event""#)),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_primary_resumes_on_an_anthropic_backup_by_prefill() {
    let h = start("cut-after-chunks:3", WireFormat::Anthropic, "resume = true").await;
    let reply = h.stream().await;
    assert_one_coherent_stream(&reply);
    // Anthropic continues a trailing assistant turn itself; it refuses
    // trailing whitespace there, so that is trimmed.
    let prefix = prefix(&reply);
    assert_asked_to_continue(&h.backup, prefix.trim_end(), false);
    assert_eq!(h.backup.last_request().unwrap().path, "/v1/messages");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_messages_endpoint_resumes_in_anthropics_shape() {
    let h = start("cut-after-chunks:3", WireFormat::OpenAi, "resume = true").await;
    let body = json!({
        "model": "chat",
        "max_tokens": 64,
        "stream": true,
        "messages": [{"role": "user", "content": "Say the sentence."}],
    });
    let reply = h
        .served
        .send(
            Method::POST,
            "/v1/messages",
            &[("anthropic-version", "2023-06-01")],
            &body.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(!reply.body.contains("error"), "{}", reply.body);
    let events: Vec<Value> = reply
        .data()
        .into_iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let starts = events
        .iter()
        .filter(|e| e["type"] == "message_start")
        .count();
    assert_eq!(starts, 1, "{}", reply.body);
    assert_eq!(events.last().unwrap()["type"], "message_stop");
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, SENTENCE);
    assert_eq!(h.backup.stats().chat_requests, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_inside_a_tool_call_is_not_resumed() {
    let h = start("cut-after-chunks:1", WireFormat::OpenAi, "resume = true").await;
    let reply = h
        .chat(&json!({
            "model": "chat",
            "stream": true,
            "messages": [{"role": "user", "content": "Weather?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        }))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("tool_calls"), "{}", reply.body);
    let last: Value = serde_json::from_str(reply.data().last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_broken", "{}", reply.body);
    assert!(!reply.body.contains(": resumed"));
    assert_eq!(h.backup.stats().chat_requests, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_resume_past_max_resume_bytes_nor_when_off() {
    for extra in ["resume = true\nmax_resume_bytes = 10", ""] {
        let h = start("cut-after-chunks:3", WireFormat::OpenAi, extra).await;
        let reply = h.stream().await;
        assert_eq!(reply.status, StatusCode::OK);
        let last: Value = serde_json::from_str(reply.data().last().unwrap()).unwrap();
        assert_eq!(
            last["error"]["code"], "stream_broken",
            "{extra}: {}",
            reply.body
        );
        assert!(!reply.body.contains(": resumed"));
        assert_eq!(h.backup.stats().chat_requests, 0, "{extra}");
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_reported_once_for_the_resumed_stream() {
    let h = start("cut-after-chunks:3", WireFormat::OpenAi, "resume = true").await;
    let reply = h
        .chat(&json!({
            "model": "chat",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Say the sentence."}],
        }))
        .await;
    let chunks = chunks(&reply);
    let usages: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["usage"])
        .filter(|u| !u.is_null())
        .collect();
    assert_eq!(usages.len(), 1, "{}", reply.body);
    assert!(usages[0]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(text(&chunks), SENTENCE);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_stream_whose_caller_did_not_ask_carries_no_usage() {
    let h = start("cut-after-chunks:3", WireFormat::OpenAi, "resume = true").await;

    let reply = h.stream().await;

    assert_one_coherent_stream(&reply);
    assert_eq!(text(&chunks(&reply)), SENTENCE);
    assert!(!reply.body.contains("usage"), "{}", reply.body);
    // Both upstreams were asked for their usage, for the counters.
    for mock in [&h.primary, &h.backup] {
        let sent = mock.last_request().unwrap().json().unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], true, "{sent}");
    }
    h.stop().await;
}
