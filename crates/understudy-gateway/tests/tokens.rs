//! Token counters from the usage of the answers served: whole bodies, and
//! a stream's usage chunk.
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

/// An OpenAI primary (`big-{name}`) and an Anthropic backup
/// (`small-{name}`) behind the route `tokens`, and `primary/<any model>`
/// addressed directly; `plain` is the primary's server with
/// `stream_usage = false`. Tests share one metrics recorder: each names its
/// models its own way.
async fn start(name: &str) -> Harness {
    let primary = mock(WireFormat::OpenAi, "primary").await;
    let backup = mock(WireFormat::Anthropic, "backup").await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
direct_addressing = true

[[providers]]
name = "primary"
kind = "openai"
base_url = "{}"

[[providers]]
name = "plain"
kind = "openai"
base_url = "{}"
stream_usage = false

[[providers]]
name = "backup"
kind = "anthropic"
base_url = "{}"
api_key_env = "BACKUP_KEY"

[[routes]]
model = "tokens"
targets = [
  {{ provider = "primary", model = "big-{name}" }},
  {{ provider = "backup", model = "small-{name}" }},
]

[retry]
max_retries = 0

[health]
consecutive_failures = 1000
min_requests = 1000
probe_interval_secs = 0
"#,
        primary.base_url(),
        primary.base_url(),
        backup.base_url()
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
    async fn chat(&self, model: &str, stream: &str) -> Reply {
        let body = format!(
            r#"{{"model":"{model}",{stream}"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let reply = self
            .served
            .send(Method::POST, "/v1/chat/completions", &[], &body)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply
    }

    /// `understudy_tokens_total` for `provider`, `model` and `direction`,
    /// 0 when absent.
    async fn tokens(&self, provider: &str, model: &str, direction: &str) -> u64 {
        let metrics = self
            .served
            .send(Method::GET, "/metrics", &[], "")
            .await
            .body;
        let labels = [
            format!("provider=\"{provider}\""),
            format!("model=\"{model}\""),
            format!("direction=\"{direction}\""),
        ];
        metrics
            .lines()
            .filter(|line| line.starts_with("understudy_tokens_total{"))
            .find(|line| labels.iter().all(|label| line.contains(label.as_str())))
            .map_or(0, |line| line.rsplit(' ').next().unwrap().parse().unwrap())
    }

    async fn stop(self) {
        self.served.stop_with([self.primary, self.backup]).await;
    }
}

/// The usage an OpenAI-shaped answer reports.
fn usage(reply: &Reply) -> (u64, u64) {
    let usage = &reply.json()["usage"];
    (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    )
}

/// The usage chunk of a stream, if the caller got one.
fn usage_chunk(reply: &Reply) -> Option<(u64, u64)> {
    reply.data().into_iter().find_map(|data| {
        let chunk: Value = serde_json::from_str(data).ok()?;
        let usage = chunk.get("usage").filter(|usage| usage.is_object())?;
        Some((
            usage["prompt_tokens"].as_u64()?,
            usage["completion_tokens"].as_u64()?,
        ))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_answers_count_their_usage_by_provider_and_model() {
    let h = start("whole").await;

    let first = h.chat("tokens", "").await;
    let (input, output) = usage(&first);
    assert!(input > 0 && output > 0);
    let second = h.chat("tokens", "").await;
    assert_eq!(usage(&second), (input, output));
    assert_eq!(h.tokens("primary", "big-whole", "input").await, 2 * input);
    assert_eq!(h.tokens("primary", "big-whole", "output").await, 2 * output);

    // The backup's translated answer counts for the backup.
    h.primary.set_fault(fault("status:503"));
    let translated = h.chat("tokens", "").await;
    assert_eq!(translated.header("x-understudy-provider"), "backup");
    let (input, output) = usage(&translated);
    assert_eq!(h.tokens("backup", "small-whole", "input").await, input);
    assert_eq!(h.tokens("backup", "small-whole", "output").await, output);
    // The failed attempt's error counts nothing.
    assert_eq!(
        h.tokens("primary", "big-whole", "input").await,
        2 * usage(&first).0
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_counts_its_usage_chunk() {
    let h = start("stream").await;

    let reply = h
        .chat(
            "tokens",
            r#""stream":true,"stream_options":{"include_usage":true},"#,
        )
        .await;

    reply.assert_event_stream();
    let (input, output) = usage_chunk(&reply).expect("the caller asked for the usage chunk");
    assert_eq!(h.tokens("primary", "big-stream", "input").await, input);
    assert_eq!(h.tokens("primary", "big-stream", "output").await, output);
    // What the caller asked for passes as the provider sent it: one usage
    // chunk, and `"usage": null` on every other chunk.
    let data = reply.data();
    let usages = data.iter().filter(|d| d.contains(r#""usage":{"#)).count();
    assert_eq!(usages, 1, "{}", reply.body);
    let nulls = data
        .iter()
        .filter(|d| d.contains(r#""usage":null"#))
        .count();
    assert_eq!(nulls, data.len() - 2, "{}", reply.body);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_caller_did_not_ask_is_counted_and_keeps_its_bytes() {
    let h = start("unasked").await;

    let reply = h.chat("tokens", r#""stream":true,"#).await;

    reply.assert_event_stream();
    // The provider was asked for the usage on the caller's behalf…
    let sent = h.primary.last_request().unwrap().json().unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true, "{sent}");
    // …and it counts.
    let input = h.tokens("primary", "big-unasked", "input").await;
    let output = h.tokens("primary", "big-unasked", "output").await;
    assert!(input > 0 && output > 0, "{input} {output}");
    // The caller sees no usage: no usage chunk, no `"usage": null`.
    assert!(!reply.body.contains("usage"), "{}", reply.body);
    assert!(reply.body.ends_with("data: [DONE]\n\n"), "{}", reply.body);

    // The same server not asked (`stream_usage = false`) sends the same
    // bytes, and nothing is counted.
    let plain = h.chat("plain/big-unasked", r#""stream":true,"#).await;
    let sent = h.primary.last_request().unwrap().json().unwrap();
    assert!(sent.get("stream_options").is_none(), "{sent}");
    assert_eq!(plain.body, reply.body);
    assert_eq!(h.tokens("plain", "*", "input").await, 0);
    assert_eq!(h.tokens("primary", "big-unasked", "input").await, input);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_translated_stream_is_counted_when_the_caller_did_not_ask() {
    let h = start("translated").await;
    h.primary.set_fault(fault("status:503"));

    let reply = h.chat("tokens", r#""stream":true,"#).await;

    reply.assert_event_stream();
    assert_eq!(reply.header("x-understudy-provider"), "backup");
    assert!(!reply.body.contains("usage"), "{}", reply.body);
    let input = h.tokens("backup", "small-translated", "input").await;
    let output = h.tokens("backup", "small-translated", "output").await;
    assert!(input > 0 && output > 0, "{input} {output}");

    // Asked, the same stream carries its usage chunk, counted once more.
    let asked = h
        .chat(
            "tokens",
            r#""stream":true,"stream_options":{"include_usage":true},"#,
        )
        .await;
    assert_eq!(usage_chunk(&asked), Some((input, output)));
    assert_eq!(
        h.tokens("backup", "small-translated", "input").await,
        2 * input
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_addressed_directly_counts_for_any_model() {
    let h = start("direct").await;

    let reply = h.chat("primary/whatever-the-caller-says", "").await;

    let (input, _) = usage(&reply);
    assert_eq!(h.tokens("primary", "*", "input").await, input);
    assert_eq!(
        h.tokens("primary", "whatever-the-caller-says", "input")
            .await,
        0
    );
    h.stop().await;
}
