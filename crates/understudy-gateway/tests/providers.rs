//! Fail-over across the five provider kinds, end to end: mocks speaking
//! Azure OpenAI's, Bedrock's (SigV4-signed, event-stream framed), Gemini's,
//! Anthropic's and OpenAI's real wire formats on loopback, the gateway
//! in-process in front, callers speaking OpenAI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use http::{Method, StatusCode};
use serde_json::Value;
use understudy_mock::{MockProvider, WireFormat};

mod support;
use support::{Reply, Served, fault, mock};

/// The secrets every provider is configured with; none may reach a caller.
const SECRETS: [&str; 5] = [
    "azure-secret-key",
    "AKIDUNDERSTUDYTEST",
    "aws-secret-access-key-value",
    "gemini-secret-key",
    "anthropic-secret-key",
];

fn lookup(var: &str) -> Option<String> {
    let value = match var {
        "AZURE_OPENAI_API_KEY" => SECRETS[0],
        "AWS_ACCESS_KEY_ID" => SECRETS[1],
        "AWS_SECRET_ACCESS_KEY" => SECRETS[2],
        "GEMINI_API_KEY" => SECRETS[3],
        "ANTHROPIC_API_KEY" => SECRETS[4],
        _ => return None,
    };
    Some(value.to_owned())
}

/// One mock per kind, named after it, and the gateway.
struct Chain {
    azure: MockProvider,
    bedrock: MockProvider,
    gemini: MockProvider,
    anthropic: MockProvider,
    served: Served,
}

/// The content of a streamed answer, chunk by chunk, checking that it is
/// OpenAI's SSE and ends with `[DONE]`.
fn streamed_text(reply: &Reply) -> String {
    reply.assert_event_stream();
    let mut text = String::new();
    let mut done = false;
    for data in reply.data() {
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk", "{data}");
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(piece);
        }
    }
    assert!(done, "the stream ended with [DONE]: {}", reply.body);
    text
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

impl Chain {
    async fn start() -> Self {
        let azure = mock(WireFormat::Azure, "azure").await;
        let bedrock = mock(WireFormat::Bedrock, "bedrock").await;
        let gemini = mock(WireFormat::Gemini, "gemini").await;
        let anthropic = mock(WireFormat::Anthropic, "anthropic").await;
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "azure"
kind = "azure"
base_url = "{}"
api_version = "2024-10-21"
api_key_env = "AZURE_OPENAI_API_KEY"

[[providers]]
name = "bedrock"
kind = "bedrock"
region = "us-east-1"
base_url = "{}"

[[providers]]
name = "gemini"
kind = "gemini"
base_url = "{}"
api_key_env = "GEMINI_API_KEY"

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{}"
api_key_env = "ANTHROPIC_API_KEY"

[[routes]]
model = "chain"
targets = [
  {{ provider = "azure", model = "gpt-4o-eu" }},
  {{ provider = "bedrock", model = "anthropic.claude-3-5-haiku-20241022-v1:0" }},
  {{ provider = "gemini", model = "gemini-2.0-flash" }},
  {{ provider = "anthropic", model = "claude-3-5-haiku-latest" }},
]

[[routes]]
model = "gemini-embed"
targets = [
  {{ provider = "bedrock", model = "amazon.titan-embed-text-v2:0" }},
  {{ provider = "gemini", model = "text-embedding-004" }},
]

[[routes]]
model = "filtered"
targets = [
  {{ provider = "azure", model = "gpt-4o-eu" }},
  {{ provider = "bedrock", model = "anthropic.claude-3-5-haiku-20241022-v1:0" }},
]
fallback_on = ["provider_failure", "content_filter"]

[[routes]]
model = "usage"
targets = [
  {{ provider = "azure", model = "gpt-4o-counted" }},
  {{ provider = "bedrock", model = "anthropic.claude-counted" }},
  {{ provider = "gemini", model = "gemini-counted" }},
  {{ provider = "anthropic", model = "claude-counted" }},
]

[[routes]]
model = "bedrock-first"
targets = [
  {{ provider = "bedrock", model = "anthropic.claude-3-5-haiku-20241022-v1:0" }},
  {{ provider = "gemini", model = "gemini-2.0-flash" }},
]

[retry]
max_retries = 0

[health]
probe_interval_secs = 0
"#,
            url(azure.addr(), "/openai"),
            url(bedrock.addr(), ""),
            url(gemini.addr(), "/v1beta"),
            url(anthropic.addr(), "/v1"),
        );
        let served = Served::start(&toml, lookup).await;
        Self {
            azure,
            bedrock,
            gemini,
            anthropic,
            served,
        }
    }

    async fn send(&self, method: Method, path: &str, body: &str) -> Reply {
        let caller = [("authorization", "Bearer caller-token")];
        self.served.send(method, path, &caller, body).await
    }

    async fn chat(&self, route: &str, stream: bool) -> Reply {
        let body = format!(
            r#"{{"model":"{route}","stream":{stream},"messages":[{{"role":"system","content":"Be brief."}},{{"role":"user","content":"hi"}}],"max_tokens":64}}"#
        );
        self.send(Method::POST, "/v1/chat/completions", &body).await
    }

    /// No secret in what a caller sees, nor in the metrics.
    async fn assert_no_secret(&self, reply: &Reply) {
        let metrics = self.send(Method::GET, "/metrics", "").await;
        for secret in SECRETS {
            assert!(!reply.body.contains(secret), "{secret} in {}", reply.body);
            assert!(
                reply.headers.values().all(|v| !v
                    .as_bytes()
                    .windows(secret.len())
                    .any(|w| w == secret.as_bytes())),
                "{secret} in the headers"
            );
            assert!(!metrics.body.contains(secret), "{secret} in the metrics");
        }
    }

    async fn stop(self) {
        let mocks = [self.azure, self.bedrock, self.gemini, self.anthropic];
        self.served.stop_with(mocks).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_429_is_served_by_bedrock_signed_with_sigv4() {
    let chain = Chain::start().await;
    chain.azure.set_fault(fault("status:429"));

    let reply = chain.chat("chain", false).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-understudy-provider"), "bedrock");
    let completion = reply.json();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "Hello from bedrock."
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert!(completion["usage"]["total_tokens"].as_u64() > Some(0));

    // Azure got its key as `api-key` at the deployment's path.
    let to_azure = chain.azure.last_request().unwrap();
    assert_eq!(
        to_azure.path,
        "/openai/deployments/gpt-4o-eu/chat/completions"
    );
    assert_eq!(to_azure.headers["api-key"], SECRETS[0]);
    assert!(!to_azure.headers.contains_key("authorization"));
    // Bedrock got a SigV4-signed Converse request, the model id encoded.
    let to_bedrock = chain.bedrock.last_request().unwrap();
    assert_eq!(
        to_bedrock.path,
        "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    let authorization = to_bedrock.headers["authorization"].to_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDUNDERSTUDYTEST/"),
        "{authorization}"
    );
    assert!(
        authorization.contains("/us-east-1/bedrock/aws4_request"),
        "{authorization}"
    );
    assert!(!authorization.contains(SECRETS[2]));
    let converse = to_bedrock.json().unwrap();
    assert_eq!(converse["system"][0]["text"], "Be brief.");
    assert_eq!(converse["messages"][0]["content"][0]["text"], "hi");
    assert_eq!(converse["inferenceConfig"]["maxTokens"], 64);
    chain.assert_no_secret(&reply).await;

    let streamed = chain.chat("chain", true).await;
    assert_eq!(streamed.status, StatusCode::OK, "{}", streamed.body);
    assert_eq!(streamed.header("x-understudy-provider"), "bedrock");
    assert_eq!(streamed_text(&streamed), "Hello from bedrock.");
    assert_eq!(
        chain.bedrock.last_request().unwrap().path,
        "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"
    );
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_bedrock_is_served_by_gemini() {
    let chain = Chain::start().await;
    chain.bedrock.set_fault(fault("status:429"));

    let reply = chain.chat("bedrock-first", false).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-understudy-provider"), "gemini");
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Hello from gemini."
    );
    let to_gemini = chain.gemini.last_request().unwrap();
    assert_eq!(
        to_gemini.path,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(to_gemini.headers["x-goog-api-key"], SECRETS[3]);
    let body = to_gemini.json().unwrap();
    assert_eq!(body["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(body["contents"][0]["role"], "user");
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 64);
    chain.assert_no_secret(&reply).await;

    // The throttled provider cools down: the stream goes to Gemini too.
    let streamed = chain.chat("bedrock-first", true).await;
    assert_eq!(streamed.header("x-understudy-provider"), "gemini");
    assert_eq!(streamed_text(&streamed), "Hello from gemini.");
    assert_eq!(
        chain.gemini.last_request().unwrap().path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    );
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_chain_fails_over_to_anthropic_streaming_and_not() {
    let chain = Chain::start().await;
    for failing in [&chain.azure, &chain.bedrock, &chain.gemini] {
        failing.set_fault(fault("status:500"));
    }
    let reply = chain.chat("chain", false).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-understudy-provider"), "anthropic");
    assert_eq!(reply.header("x-understudy-attempts"), "4");
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Hello from anthropic."
    );
    chain.assert_no_secret(&reply).await;

    let streamed = chain.chat("chain", true).await;
    assert_eq!(streamed.header("x-understudy-provider"), "anthropic");
    assert_eq!(streamed_text(&streamed), "Hello from anthropic.");

    // Each failing provider's error reached no caller: the answer is
    // Anthropic's, and every failed attempt was one of the chain's.
    for failing in [&chain.azure, &chain.bedrock, &chain.gemini] {
        assert!(failing.stats().chat_requests >= 2, "{:?}", failing.stats());
    }
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bedrock_exception_frame_before_content_fails_over_to_gemini() {
    let chain = Chain::start().await;
    chain.bedrock.set_fault(fault("error-event"));

    let streamed = chain.chat("bedrock-first", true).await;
    assert_eq!(streamed.status, StatusCode::OK, "{}", streamed.body);
    assert_eq!(streamed.header("x-understudy-provider"), "gemini");
    assert_eq!(streamed.header("x-understudy-attempts"), "2");
    assert_eq!(streamed_text(&streamed), "Hello from gemini.");
    assert_eq!(chain.bedrock.stats().chat_requests, 1);
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bedrock_stream_cut_after_content_ends_with_an_openai_error_event() {
    let chain = Chain::start().await;
    // messageStart and two content frames, then the cut.
    chain.bedrock.set_fault(fault("drop-after:3"));

    let streamed = chain.chat("bedrock-first", true).await;
    assert_eq!(streamed.status, StatusCode::OK, "{}", streamed.body);
    assert_eq!(streamed.header("x-understudy-provider"), "bedrock");
    let data: Vec<Value> = streamed
        .data()
        .into_iter()
        .map(|data| serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}")))
        .collect();
    let content: String = data
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!content.is_empty(), "{}", streamed.body);
    assert!("Hello from bedrock.".starts_with(&content), "{content}");
    let last = data.last().unwrap();
    assert!(last["error"]["message"].is_string(), "{}", streamed.body);
    assert_eq!(
        chain.gemini.stats().chat_requests,
        0,
        "no fallback after the commit"
    );
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_content_filter_fails_over_only_where_the_route_opts_in() {
    let chain = Chain::start().await;
    chain.azure.set_fault(fault("content-filter"));

    // The chain does not opt in: the caller gets Azure's refusal.
    let refused = chain.chat("chain", false).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(
        refused.json()["error"]["code"],
        "content_filter",
        "{}",
        refused.body
    );
    assert_eq!(chain.bedrock.stats().chat_requests, 0);

    // This route does: Bedrock serves.
    let reply = chain.chat("filtered", false).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-understudy-provider"), "bedrock");
    assert_eq!(reply.header("x-understudy-attempts"), "2");
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_serves_embeddings_translated_and_bedrock_is_skipped_for_them() {
    let chain = Chain::start().await;
    let body = r#"{"model":"gemini-embed","input":["one","two"],"dimensions":4,"encoding_format":"base64"}"#;
    let reply = chain.send(Method::POST, "/v1/embeddings", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-understudy-provider"), "gemini");
    assert_eq!(reply.header("x-understudy-attempts"), "1");
    let answer = reply.json();
    assert_eq!(answer["object"], "list");
    let data = answer["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    // Four little-endian f32s, base64: 16 bytes, 24 characters.
    assert_eq!(data[1]["embedding"].as_str().map(str::len), Some(24));
    let sent = chain.gemini.last_request().unwrap();
    assert_eq!(
        sent.path,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    let requests = &sent.json().unwrap()["requests"];
    assert_eq!(requests[1]["content"]["parts"][0]["text"], "two");
    assert_eq!(requests[0]["outputDimensionality"], 4);
    assert_eq!(chain.bedrock.stats().requests, 0);
    chain.stop().await;
}

/// `understudy_tokens_total` for `provider`, `model` and `direction`, 0
/// when absent.
async fn tokens(chain: &Chain, provider: &str, model: &str, direction: &str) -> u64 {
    let metrics = chain.send(Method::GET, "/metrics", "").await.body;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_counts_the_tokens_of_a_stream_whose_caller_did_not_ask() {
    let chain = Chain::start().await;
    let served = [
        ("azure", "gpt-4o-counted"),
        ("bedrock", "anthropic.claude-counted"),
        ("gemini", "gemini-counted"),
        ("anthropic", "claude-counted"),
    ];
    let mocks = [
        &chain.azure,
        &chain.bedrock,
        &chain.gemini,
        &chain.anthropic,
    ];
    for (i, (provider, model)) in served.into_iter().enumerate() {
        if let Some(previous) = i.checked_sub(1) {
            mocks[previous].set_fault(fault("status:503"));
        }

        let reply = chain.chat("usage", true).await;

        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.header("x-understudy-provider"), provider);
        assert!(
            !reply.body.contains(r#""usage""#),
            "{provider}: {}",
            reply.body
        );
        reply.assert_event_stream();
        assert_eq!(reply.data().last().copied(), Some("[DONE]"), "{provider}");
        let input = tokens(&chain, provider, model, "input").await;
        let output = tokens(&chain, provider, model, "output").await;
        assert!(input > 0 && output > 0, "{provider}: {input} {output}");
    }
    // Azure speaks OpenAI's wire: it was asked for the usage.
    let to_azure = chain.azure.last_request().unwrap().json().unwrap();
    assert_eq!(
        to_azure["stream_options"]["include_usage"], true,
        "{to_azure}"
    );
    chain.stop().await;
}
