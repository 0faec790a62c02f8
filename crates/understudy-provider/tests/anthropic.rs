//! The Anthropic provider against a loopback server speaking the Messages
//! API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tower::ServiceExt;
use understudy_core::{
    ClassifiedError, Classify, ClientErrorKind, FailureKind, LlmClassifier, Outcome,
};
use understudy_provider::anthropic::{AnthropicStreamBody, AnthropicStreamTranslator};
use understudy_provider::{ApiKey, ProviderService};

use support::{
    assert_stream_error, caller_request, client, data_lines, json, next_data, serve, sse, text,
    within,
};

fn anthropic(base_url: &str) -> ProviderService {
    ProviderService::anthropic(
        client(),
        base_url,
        Some(ApiKey::new("sk-ant-provider")),
        "claude-sonnet-4-5",
        2048,
    )
    .unwrap()
}

/// An OpenAI request with every translated feature, shaped like the
/// examples in OpenAI's chat-completions reference.
const OPENAI_REQUEST: &str = r#"{
  "model": "chat",
  "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": [
      {"type": "text", "text": "What's in this image, and what's the weather there?"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
      {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/boardwalk.jpg"}}
    ]},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_abc123", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Boston, MA\"}"}},
      {"id": "call_def456", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Paris\", \"unit\": \"celsius\"}"}}
    ]},
    {"role": "tool", "tool_call_id": "call_abc123", "content": "{\"temperature\": 22}"},
    {"role": "tool", "tool_call_id": "call_def456", "content": [{"type": "text", "text": "18 degrees"}]},
    {"role": "assistant", "content": "Boston is 22F, Paris 18C."},
    {"role": "user", "content": "Thanks! Anything else?", "name": "alice"}
  ],
  "tools": [{"type": "function", "function": {
    "name": "get_current_weather",
    "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}
  }}],
  "tool_choice": "required",
  "parallel_tool_calls": false,
  "stop": ["\n\nHuman:", "END"],
  "temperature": 1.4,
  "top_p": 0.9,
  "n": 1,
  "seed": 7,
  "logprobs": false,
  "presence_penalty": 0.5,
  "frequency_penalty": 0.5,
  "response_format": {"type": "text"},
  "user": "user-1234",
  "x_unknown": true
}"#;

fn expected_anthropic_request() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "system": "You are a helpful assistant.",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What's in this image, and what's the weather there?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/boardwalk.jpg"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_abc123", "name": "get_current_weather", "input": {"location": "Boston, MA"}},
                {"type": "tool_use", "id": "call_def456", "name": "get_current_weather", "input": {"location": "Paris", "unit": "celsius"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_abc123", "content": "{\"temperature\": 22}"},
                {"type": "tool_result", "tool_use_id": "call_def456", "content": [{"type": "text", "text": "18 degrees"}]}
            ]},
            {"role": "assistant", "content": "Boston is 22F, Paris 18C."},
            {"role": "user", "content": "Thanks! Anything else?"}
        ],
        "tools": [{
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}
        }],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["\n\nHuman:", "END"],
        "temperature": 1.0,
        "top_p": 0.9,
        "max_tokens": 2048,
        "metadata": {"user_id": "user-1234"}
    })
}

/// A Messages API answer shaped like the examples in Anthropic's reference.
const ANTHROPIC_ANSWER: &str = r#"{
  "id": "msg_01Aq9w938a90dw8q",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-5-20250929",
  "content": [
    {"type": "text", "text": "I'll check the weather "},
    {"type": "text", "text": "for you."},
    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_current_weather", "input": {"location": "San Francisco, CA", "unit": "celsius"}}
  ],
  "stop_reason": "tool_use",
  "stop_sequence": null,
  "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100}
}"#;

#[tokio::test]
async fn translates_the_request_and_the_answer() {
    let mut server = serve(|_| async { json(200, ANTHROPIC_ANSWER) }).await;
    let response = within(anthropic(&server.base_url()).oneshot(caller_request(OPENAI_REQUEST)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let completion: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();

    let sent = server.request().await;
    assert_eq!(sent.uri.path(), "/v1/messages");
    assert_eq!(sent.json(), expected_anthropic_request());
    assert_eq!(sent.headers["x-api-key"], "sk-ant-provider");
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert_eq!(sent.headers["content-type"], "application/json");
    for name in ["authorization", "cookie", "accept-encoding"] {
        assert!(sent.headers.get(name).is_none(), "{name} was forwarded");
    }

    let created = completion["created"].as_u64().unwrap();
    assert!(created > 1_700_000_000);
    assert_eq!(
        completion,
        json!({
            "id": "msg_01Aq9w938a90dw8q",
            "object": "chat.completion",
            "created": created,
            "model": "claude-sonnet-4-5-20250929",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "I'll check the weather for you.",
                    "refusal": null,
                    "tool_calls": [{
                        "id": "toolu_01A09q90qw90lq917835lq9",
                        "type": "function",
                        "function": {
                            "name": "get_current_weather",
                            "arguments": "{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}"
                        }
                    }]
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            }],
            "usage": {
                "prompt_tokens": 2195,
                "completion_tokens": 503,
                "total_tokens": 2698,
                "prompt_tokens_details": {"cached_tokens": 100}
            }
        })
    );
}

#[tokio::test]
async fn the_callers_max_tokens_wins_over_the_default() {
    let mut server = serve(|_| async { json(200, ANTHROPIC_ANSWER) }).await;
    let body = r#"{"model":"chat","max_tokens":100,"max_completion_tokens":300,"messages":[{"role":"user","content":"hi"}]}"#;
    within(anthropic(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    assert_eq!(server.request().await.json()["max_tokens"], 300);
}

/// The event sequence of Anthropic's streaming reference: text, then a tool
/// call whose input arrives in pieces, pings between.
const STREAM: &[&str] = &[
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay, let's check\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" the weather:\\n\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"San Francisco, CA\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
];

#[tokio::test]
async fn translates_a_stream_with_text_and_a_tool_call() {
    let mut server = serve(|_| async {
        let (tx, response) = sse();
        tokio::spawn(async move {
            for event in STREAM {
                // Split each event in two writes, as a network might.
                let (head, tail) = event.as_bytes().split_at(event.len() / 2);
                tx.send(Bytes::copy_from_slice(head)).await.unwrap();
                tx.send(Bytes::copy_from_slice(tail)).await.unwrap();
            }
        });
        response
    })
    .await;
    let body = r#"{"model":"chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Weather in SF?"}]}"#;
    let response = within(anthropic(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    assert_eq!(server.request().await.json()["stream"], true);
    assert_eq!(response.headers()["content-type"], "text/event-stream");

    let sse = text(response.into_body()).await;
    let events = data_lines(&sse);
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    for chunk in &chunks {
        assert_eq!(chunk["id"], "msg_014p7gG3wDgGV9EUtLvnow3U");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "claude-sonnet-4-5-20250929");
        assert!(chunk["created"].is_u64());
    }
    let choices: Vec<Value> = chunks[..chunks.len() - 1]
        .iter()
        .map(|chunk| {
            assert_eq!(chunk["usage"], Value::Null);
            assert!(chunk.as_object().unwrap().contains_key("usage"));
            chunk["choices"][0].clone()
        })
        .collect();
    let deltas: Vec<(Value, Value)> = choices
        .iter()
        .map(|choice| (choice["delta"].clone(), choice["finish_reason"].clone()))
        .collect();
    assert_eq!(
        deltas,
        vec![
            (json!({"role": "assistant", "content": ""}), Value::Null),
            (json!({"content": "Okay, let's check"}), Value::Null),
            (json!({"content": " the weather:\n"}), Value::Null),
            (
                json!({"tool_calls": [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null
            ),
            (
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\":"}}]}),
                Value::Null
            ),
            (
                json!({"tool_calls": [{"index": 0, "function": {"arguments": " \"San Francisco, CA\"}"}}]}),
                Value::Null
            ),
            (json!({}), json!("tool_calls")),
        ]
    );
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561})
    );
}

#[tokio::test]
async fn without_include_usage_chunks_carry_no_usage() {
    let server = serve(|_| async {
        let (tx, response) = sse();
        tokio::spawn(async move {
            tx.send(Bytes::from(STREAM.concat())).await.unwrap();
        });
        response
    })
    .await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(anthropic(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    let sse = text(response.into_body()).await;
    let events = data_lines(&sse);
    assert_eq!(events.len(), 8);
    assert!(!sse.contains("usage"));
    assert_eq!(events[7], "[DONE]");
}

#[tokio::test]
async fn first_chunk_arrives_before_the_provider_sends_the_rest() {
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release = Arc::new(Mutex::new(Some(release_rx)));
    let server = serve(move |_| {
        let release = release.lock().unwrap().take().unwrap();
        async move {
            let (tx, response) = sse();
            tokio::spawn(async move {
                tx.send(Bytes::from(STREAM[..4].concat())).await.unwrap();
                release.await.unwrap();
                tx.send(Bytes::from(STREAM[4..].concat())).await.unwrap();
            });
            response
        }
    })
    .await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(anthropic(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = next_data(&mut body).await;
    let first = std::str::from_utf8(&first).unwrap();
    assert!(first.contains("Okay, let's check"), "{first}");
    assert!(!first.contains("weather"));

    release_tx.send(()).unwrap();
    let rest = text(body).await;
    assert!(rest.contains("get_weather"));
    assert!(rest.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn overloaded_529_is_classified_and_answered_in_the_openai_shape() {
    let server = serve(|_| async {
        let mut response = json(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011"}"#,
        );
        response
            .headers_mut()
            .insert("request-id", "req_011".parse().unwrap());
        response
    })
    .await;
    let response = within(anthropic(&server.base_url()).oneshot(caller_request(OPENAI_REQUEST)))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 529);
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::Failure(FailureKind::Overloaded))
    );
    assert_eq!(
        LlmClassifier::new().classify_response(&response),
        Outcome::Failure(FailureKind::Overloaded)
    );
    assert_eq!(response.headers()["request-id"], "req_011");
    let body: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "Overloaded", "type": "overloaded_error", "param": null, "code": "overloaded"}})
    );
}

#[tokio::test]
async fn anthropic_errors_keep_their_classification() {
    let cases: [(u16, &str, Outcome); 4] = [
        (
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
            Outcome::Failure(FailureKind::RateLimited {
                retry_after: Some(std::time::Duration::from_secs(30)),
            }),
        ),
        (
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#,
            Outcome::ClientError(ClientErrorKind::ContextLengthExceeded),
        ),
        (
            401,
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
            Outcome::Failure(FailureKind::Unauthorized(StatusCode::UNAUTHORIZED)),
        ),
        (
            500,
            r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
            Outcome::Failure(FailureKind::Server(StatusCode::INTERNAL_SERVER_ERROR)),
        ),
    ];
    for (status, body, want) in cases {
        let server = serve(move |_| async move {
            let mut response = json(status, body);
            response
                .headers_mut()
                .insert("retry-after", "30".parse().unwrap());
            response.headers_mut().insert(
                "anthropic-ratelimit-requests-remaining",
                "0".parse().unwrap(),
            );
            response
        })
        .await;
        let service = anthropic(&server.base_url()).with_rate_limit_headers(true);
        let response = within(service.oneshot(caller_request(OPENAI_REQUEST)))
            .await
            .unwrap();
        // A rejected key is the gateway's failure, not the caller's.
        let answered = if status == 401 { 502 } else { status };
        assert_eq!(response.status().as_u16(), answered);
        assert_eq!(
            response.extensions().get::<Outcome>(),
            Some(&want),
            "{body}"
        );
        assert_eq!(response.headers()["retry-after"], "30");
        assert_eq!(
            response.headers()["anthropic-ratelimit-requests-remaining"],
            "0"
        );
        let headers = response.headers().clone();
        let translated = text(response.into_body()).await;
        let openai: Value = serde_json::from_str(&translated).unwrap();
        assert!(openai["error"]["message"].is_string());
        // The OpenAI-shaped body says the same thing to a classifier.
        assert_eq!(
            LlmClassifier::new().classify_parts(
                StatusCode::from_u16(status).unwrap(),
                &headers,
                Some(translated.as_bytes())
            ),
            want,
            "{translated}"
        );
    }
}

#[tokio::test]
async fn an_error_as_the_first_event_is_a_classified_body_error() {
    let server = serve(|_| async {
        let (tx, response) = sse();
        tokio::spawn(async move {
            tx.send(Bytes::from_static(
                b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            ))
            .await
            .unwrap();
        });
        response
    })
    .await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(anthropic(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let error = within(body.frame()).await.unwrap().unwrap_err();
    assert_stream_error(
        &error,
        Outcome::Failure(FailureKind::Overloaded),
        "overloaded_error",
    );
    assert_eq!(
        LlmClassifier::new().classify_error(&*error),
        Outcome::Failure(FailureKind::Overloaded)
    );
    assert!(within(body.frame()).await.is_none());
}

#[tokio::test]
async fn an_error_mid_stream_follows_the_chunks_before_it() {
    let server = serve(|_| async {
        let (tx, response) = sse();
        tokio::spawn(async move {
            let mut events = STREAM[..4].concat();
            events.push_str("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}\n\n");
            tx.send(Bytes::from(events)).await.unwrap();
        });
        response
    })
    .await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(anthropic(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = next_data(&mut body).await;
    assert!(
        std::str::from_utf8(&first)
            .unwrap()
            .contains("Okay, let's check")
    );
    let error = within(body.frame()).await.unwrap().unwrap_err();
    assert_eq!(
        LlmClassifier::new().classify_error(&*error),
        Outcome::Failure(FailureKind::StreamBroken)
    );
}

#[tokio::test]
async fn a_stream_that_ends_without_message_stop_is_broken() {
    let server = serve(|_| async {
        let (tx, response) = sse();
        tokio::spawn(async move {
            tx.send(Bytes::from(STREAM[..4].concat())).await.unwrap();
        });
        response
    })
    .await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(anthropic(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    let error = within(response.into_body().collect()).await.unwrap_err();
    assert_eq!(
        LlmClassifier::new().classify_error(&*error),
        Outcome::Failure(FailureKind::StreamBroken)
    );
}

#[tokio::test]
async fn a_malformed_request_is_refused_before_sending() {
    let server = serve(|_| async { json(200, ANTHROPIC_ANSWER) }).await;
    let response = within(
        anthropic(&server.base_url())
            .oneshot(caller_request(r#"{"model":"chat","messages":"hi"}"#)),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::ClientError(ClientErrorKind::Rejected(
            StatusCode::BAD_REQUEST
        )))
    );
    let body: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    assert_eq!(body["error"]["message"], "`messages` must be an array");
}

#[tokio::test]
async fn a_stream_flag_that_is_not_a_boolean_is_refused_before_sending() {
    let server = serve(|_| async { json(200, ANTHROPIC_ANSWER) }).await;
    for (body, message) in [
        (
            r#"{"model":"chat","stream":"yes","messages":[{"role":"user","content":"hi"}]}"#,
            "`stream` must be a boolean",
        ),
        (
            r#"{"model":"chat","stream":true,"stream_options":"usage","messages":[{"role":"user","content":"hi"}]}"#,
            "`stream_options` must be an object",
        ),
    ] {
        let response = within(anthropic(&server.base_url()).oneshot(caller_request(body)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
        assert_eq!(body["error"]["message"], message);
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn probe_sends_the_anthropic_headers() {
    let mut server = serve(|_| async { json(200, r#"{"data":[],"has_more":false}"#) }).await;
    assert!(within(anthropic(&server.base_url()).probe()).await);
    let sent = server.request().await;
    assert_eq!(sent.uri.path(), "/v1/models");
    assert_eq!(sent.headers["x-api-key"], "sk-ant-provider");
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
}

/// An Anthropic upstream that answers a stream with `head`, then sends
/// `piece` over and over, as fast as the connection takes it, until the
/// client goes away.
async fn evil(head: &'static [u8], piece: Bytes) -> support::Server {
    serve(move |_| {
        let piece = piece.clone();
        async move {
            let (tx, response) = sse();
            tokio::spawn(async move {
                if tx.send(Bytes::from_static(head)).await.is_err() {
                    return;
                }
                while tx.send(piece.clone()).await.is_ok() {}
            });
            response
        }
    })
    .await
}

const MESSAGE_START: &[u8] = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n";

/// Reads a body until it ends or fails; the data frames and the error.
async fn drain(
    mut body: understudy_core::ResponseBody,
) -> (usize, Option<understudy_core::BoxError>) {
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(_) => frames += 1,
            Err(error) => return (frames, Some(error)),
        }
    }
    (frames, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_line_breaks_the_stream() {
    let mut head = MESSAGE_START.to_vec();
    head.extend_from_slice(b"event: content_block_delta\ndata: ");
    let server = evil(head.leak(), Bytes::from(vec![b'x'; 16 * 1024])).await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(anthropic(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (frames, error) = within(drain(response.into_body())).await;
    // The role chunk, then the error once the line passed 1 MiB.
    assert_eq!(frames, 1);
    let error = error.unwrap();
    assert_eq!(
        LlmClassifier::new().classify_error(&*error),
        Outcome::Failure(FailureKind::StreamBroken)
    );
    let classified = error.downcast_ref::<ClassifiedError>().unwrap();
    let source = std::error::Error::source(classified).unwrap();
    assert_eq!(
        source.downcast_ref::<understudy_core::sse::SseError>(),
        Some(&understudy_core::sse::SseError::EventTooLarge {
            limit: understudy_core::sse::DEFAULT_MAX_EVENT_BYTES
        })
    );
}

const PINGS: &[u8] = b"event: ping\ndata: {\"type\": \"ping\"}\n\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_pings_break_the_stream_past_the_bound_before_content() {
    let server = evil(MESSAGE_START, Bytes::from(PINGS.repeat(256))).await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(anthropic(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    let (frames, error) = within(drain(response.into_body())).await;
    assert_eq!(frames, 1);
    let error = error.unwrap();
    assert_eq!(
        LlmClassifier::new().classify_error(&*error),
        Outcome::Failure(FailureKind::StreamBroken)
    );
    let classified = error.downcast_ref::<ClassifiedError>().unwrap();
    let source = std::error::Error::source(classified).unwrap();
    assert!(
        source
            .to_string()
            .contains("bytes of stream before any content"),
        "{source}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_pings_let_a_timeout_in_the_same_task_fire() {
    let server = evil(MESSAGE_START, Bytes::from(PINGS.repeat(256))).await;
    // The upstream body straight from a client, translated without a
    // bound before content: only the timeout can end the read.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let upstream = within(client.get(format!("{}/messages", server.base_url()).parse().unwrap()))
        .await
        .unwrap();
    let translated =
        AnthropicStreamBody::new(upstream.into_body(), AnthropicStreamTranslator::new(false))
            .max_bytes_before_content(usize::MAX);
    let mut body = std::pin::pin!(translated);
    // The role chunk comes first; then nothing but pings.
    assert!(within(body.frame()).await.unwrap().is_ok());
    let started = tokio::time::Instant::now();
    let read = tokio::time::timeout(std::time::Duration::from_millis(300), body.frame()).await;
    assert!(
        read.is_err(),
        "the read ended: {:?}",
        read.map(|f| f.map(|f| f.is_ok()))
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the timeout fired after {:?}",
        started.elapsed()
    );
}

/// A caller's structured-output request: a schema, and a tool of its own.
const STRUCTURED_REQUEST: &str = r#"{
  "model": "chat",
  "messages": [{"role": "user", "content": "Weather in Paris, as JSON."}],
  "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
  "response_format": {"type": "json_schema", "json_schema": {
    "name": "weather",
    "description": "The weather in one city.",
    "strict": true,
    "schema": {"type": "object", "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}}, "required": ["city", "celsius"]}
  }}
}"#;

/// What Anthropic must be sent for [`STRUCTURED_REQUEST`]: the schema as a
/// forced tool beside the caller's.
fn assert_forced_tool(sent: &Value) {
    assert_eq!(
        sent["tools"],
        json!([
            {"name": "lookup", "input_schema": {"type": "object"}},
            {
                "name": "json_response",
                "description": "The weather in one city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}}, "required": ["city", "celsius"]}
            }
        ])
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "json_response", "disable_parallel_tool_use": true})
    );
    assert!(sent.get("response_format").is_none());
}

#[tokio::test]
async fn structured_output_is_a_forced_tool_whose_input_is_the_content() {
    let mut server = serve(|_| async {
        json(
            200,
            r#"{"id":"msg_01S","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
              "content":[{"type":"tool_use","id":"toolu_01S","name":"json_response","input":{"city":"Paris","celsius":18}}],
              "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":40,"output_tokens":12}}"#,
        )
    })
    .await;
    let response =
        within(anthropic(&server.base_url()).oneshot(caller_request(STRUCTURED_REQUEST)))
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_forced_tool(&server.request().await.json());

    let completion: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    let choice = &completion["choices"][0];
    let content: Value =
        serde_json::from_str(choice["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"city": "Paris", "celsius": 18}));
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(choice["finish_reason"], "stop");
}

#[tokio::test]
async fn streamed_structured_output_arrives_as_content_deltas() {
    const EVENTS: &[&str] = &[
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01T\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":40,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T\",\"name\":\"json_response\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Paris\\\", \"}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"celsius\\\": 18}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":12}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ];
    let mut server = serve(|_| async {
        let (tx, response) = sse();
        tokio::spawn(async move {
            for event in EVENTS {
                tx.send(Bytes::from_static(event.as_bytes())).await.unwrap();
            }
        });
        response
    })
    .await;
    let body = STRUCTURED_REQUEST.replacen('{', r#"{"stream": true,"#, 1);
    let response = within(anthropic(&server.base_url()).oneshot(caller_request(&body)))
        .await
        .unwrap();
    let sent = server.request().await.json();
    assert_eq!(sent["stream"], true);
    assert_forced_tool(&sent);
    assert_eq!(response.headers()["content-type"], "text/event-stream");

    let sse = text(response.into_body()).await;
    let events = data_lines(&sse);
    assert_eq!(events.last(), Some(&"[DONE]"));
    let choices: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|data| serde_json::from_str::<Value>(data).unwrap()["choices"][0].clone())
        .collect();
    assert!(
        choices
            .iter()
            .all(|c| c["delta"].get("tool_calls").is_none())
    );
    let content: String = choices
        .iter()
        .filter_map(|c| c["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&content).unwrap(),
        json!({"city": "Paris", "celsius": 18})
    );
    let finishes: Vec<&Value> = choices
        .iter()
        .map(|c| &c["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, vec![&json!("stop")]);
}

#[tokio::test]
async fn a_field_anthropic_cannot_express_is_refused_by_name() {
    let server = serve(|_| async { json(200, ANTHROPIC_ANSWER) }).await;
    for (body, message) in [
        (
            r#"{"model":"chat","n":3,"messages":[{"role":"user","content":"hi"}]}"#,
            "`n` other than 1 is not supported by `anthropic` targets",
        ),
        (
            r#"{"model":"chat","logprobs":true,"messages":[{"role":"user","content":"hi"}]}"#,
            "`logprobs` is not supported by `anthropic` targets",
        ),
    ] {
        let response = within(anthropic(&server.base_url()).oneshot(caller_request(body)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
        assert_eq!(body["error"]["message"], message);
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}
