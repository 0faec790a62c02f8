//! The Messages and embeddings endpoints end to end: the same routes,
//! fallback and headers as chat, answers in each endpoint's own shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, StatusCode};
use serde_json::{Value, json};
use understudy_mock::{MockProvider, WireFormat};

mod support;
use support::{Reply, Served, fault, mock};

struct Harness {
    primary: MockProvider,
    openai: MockProvider,
    anthropic: MockProvider,
    served: Served,
}

/// The `(event, data)` pairs of an Anthropic event stream.
fn events(reply: &Reply) -> Vec<(String, Value)> {
    reply
        .body
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = String::new();
            let mut data = Value::Null;
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    name.clone_into(&mut event);
                } else if let Some(json) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
                }
            }
            (event, data)
        })
        .collect()
}

async fn start() -> Harness {
    let primary = mock(WireFormat::OpenAi, "primary").await;
    let openai = mock(WireFormat::OpenAi, "openai").await;
    let anthropic = mock(WireFormat::Anthropic, "anthropic").await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "primary"
kind = "openai"
base_url = "{}"

[[providers]]
name = "openai"
kind = "openai"
base_url = "{}"

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{}"
api_key_env = "ANTHROPIC_API_KEY"

[[routes]]
model = "to-anthropic"
targets = [{{ provider = "primary", model = "big" }}, {{ provider = "anthropic", model = "claude-3-5-haiku-latest" }}]

[[routes]]
model = "to-openai"
targets = [{{ provider = "primary", model = "big" }}, {{ provider = "openai", model = "gpt-4o-mini" }}]

[[routes]]
model = "embed"
targets = [{{ provider = "anthropic", model = "claude" }}, {{ provider = "primary", model = "embed-large" }}, {{ provider = "openai", model = "embed-small" }}]

[retry]
max_retries = 0

[health]
probe_interval_secs = 0
"#,
        primary.base_url(),
        openai.base_url(),
        anthropic.base_url(),
    );
    let served = Served::start(&toml, |var| {
        (var == "ANTHROPIC_API_KEY").then(|| "sk-ant-secret".to_owned())
    })
    .await;
    Harness {
        primary,
        openai,
        anthropic,
        served,
    }
}

impl Harness {
    async fn send(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let body = body.to_string();
        self.served.send(Method::POST, path, headers, &body).await
    }

    async fn messages(&self, route: &str, stream: bool) -> Reply {
        let body = json!({
            "model": route,
            "max_tokens": 64,
            "stream": stream,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "hi"}],
        });
        self.send(
            "/v1/messages",
            &body,
            &[
                ("x-api-key", "caller-key"),
                ("anthropic-version", "2023-06-01"),
            ],
        )
        .await
    }

    async fn stop(self) {
        let mocks = [self.primary, self.openai, self.anthropic];
        self.served.stop_with(mocks).await;
    }
}

/// The text of an Anthropic message, whole or streamed.
fn text_of_stream(reply: &Reply) -> String {
    reply.assert_event_stream();
    let events = events(reply);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    assert!(names.contains(&"message_delta"), "{names:?}");
    events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .filter_map(|(_, data)| data["delta"]["text"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_fall_over_to_an_anthropic_provider_which_answers_natively() {
    let h = start().await;
    h.primary.set_fault(fault("status:503"));

    let reply = h.messages("to-anthropic", false).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-understudy-provider"), "anthropic");
    assert_eq!(reply.header("x-understudy-attempts"), "2");
    let message = reply.json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["content"][0]["text"], "Hello from anthropic.");
    // The Anthropic provider got the caller's body, `model` rewritten, and
    // the caller's version header; never the caller's key.
    let sent = h.anthropic.last_request().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    let body = sent.json().unwrap();
    assert_eq!(body["model"], "claude-3-5-haiku-latest");
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(sent.headers["x-api-key"], "sk-ant-secret");
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    // The primary got it as a chat completion.
    let to_primary = h.primary.last_request().unwrap().json().unwrap();
    assert_eq!(
        to_primary["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );

    let streamed = h.messages("to-anthropic", true).await;
    assert_eq!(streamed.header("x-understudy-provider"), "anthropic");
    assert_eq!(text_of_stream(&streamed), "Hello from anthropic.");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_fall_over_to_an_openai_provider_and_are_translated_back() {
    let h = start().await;
    h.primary.set_fault(fault("status:503"));

    let reply = h.messages("to-openai", false).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-understudy-provider"), "openai");
    let message = reply.json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "to-openai");
    assert_eq!(
        message["content"][0],
        json!({"type": "text", "text": "Hello from openai."})
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert!(message["usage"]["output_tokens"].as_u64() > Some(0));
    let sent = h.openai.last_request().unwrap().json().unwrap();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["max_tokens"], 64);

    let streamed = h.messages("to-openai", true).await;
    assert_eq!(streamed.status, StatusCode::OK, "{}", streamed.body);
    assert_eq!(text_of_stream(&streamed), "Hello from openai.");
    let delta = events(&streamed)
        .into_iter()
        .find(|(name, _)| name == "message_delta")
        .unwrap()
        .1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64() > Some(0));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_errors_are_in_anthropic_shape() {
    let h = start().await;
    let unknown = h.messages("no-such-route", false).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let error = unknown.json();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "not_found_error");

    h.primary.set_fault(fault("status:503"));
    h.openai.set_fault(fault("status:503"));
    let failed = h.messages("to-openai", false).await;
    let error = failed.json();
    assert_eq!(error["type"], "error", "{}", failed.body);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("primary"),
        "{}",
        failed.body
    );

    // After the commit point, a break ends the stream with Anthropic's error event.
    h.primary.clear_faults();
    h.primary.set_fault(fault("drop-after:3"));
    let cut = h.messages("to-openai", true).await;
    let events = events(&cut);
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "error", "{}", cut.body);
    assert_eq!(data["type"], "error");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_skip_a_provider_without_them_and_fall_over() {
    let h = start().await;
    h.primary.set_fault(fault("status:503"));
    let body = json!({"model": "embed", "input": ["one", "two"], "dimensions": 4});
    let reply = h.send("/v1/embeddings", &body, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-understudy-provider"), "openai");
    let answer = reply.json();
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);
    assert_eq!(answer["data"][0]["embedding"].as_array().unwrap().len(), 4);
    assert!(answer["usage"]["prompt_tokens"].as_u64() > Some(0));
    // The Anthropic provider, which has no embeddings, was never asked,
    // and its health did not suffer.
    assert_eq!(h.anthropic.stats().requests, 0);
    let sent = h.openai.last_request().unwrap();
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(sent.json().unwrap()["model"], "embed-small");
    h.stop().await;
}
