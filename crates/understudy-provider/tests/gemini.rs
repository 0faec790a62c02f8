//! The Gemini provider against a loopback server speaking the Gemini API
//! (`generateContent`, `streamGenerateContent?alt=sse`, Google's error
//! envelope).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use understudy_core::{ClassifiedError, ClientErrorKind, FailureKind, Operation, Outcome};
use understudy_provider::{ApiKey, DialectOptions, ProviderKind, ProviderService};

use support::{caller_request, client, data_lines, json, next_data, serve, sse, text, within};

const KEY: &str = "AIza-provider-key";

fn gemini(base_url: &str) -> ProviderService {
    ProviderService::with_options(
        client(),
        ProviderKind::Gemini,
        &DialectOptions::default(),
        base_url,
        Some(ApiKey::new(KEY)),
        "gemini-2.5-flash",
    )
    .unwrap()
}

const REQUEST: &str = r#"{
  "model": "chat",
  "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What's the weather in Boston?"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_abc123", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Boston, MA\"}"}}
    ]},
    {"role": "tool", "tool_call_id": "call_abc123", "content": "{\"temperature\": 22}"}
  ],
  "tools": [{"type": "function", "function": {
    "name": "get_current_weather",
    "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"], "additionalProperties": false}
  }}],
  "tool_choice": "auto",
  "max_tokens": 256,
  "temperature": 0.5,
  "user": "user-1234"
}"#;

fn expected_gemini_request() -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "You are a helpful assistant."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "What's the weather in Boston?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_current_weather", "args": {"location": "Boston, MA"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_current_weather", "response": {"temperature": 22}}}]}
        ],
        "tools": [{"functionDeclarations": [{
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING"}}, "required": ["location"]}
        }]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {"maxOutputTokens": 256, "temperature": 0.5}
    })
}

/// A `generateContent` answer shaped like the examples in Google's
/// reference.
const ANSWER: &str = r#"{
  "candidates": [{
    "content": {"parts": [{"text": "It is 22 degrees in Boston."}], "role": "model"},
    "finishReason": "STOP",
    "index": 0,
    "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
  }],
  "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 9, "totalTokenCount": 49,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 40}]},
  "modelVersion": "gemini-2.5-flash",
  "responseId": "mW1caLL9Jq2yxN8PqYvJgQI"
}"#;

#[tokio::test]
async fn translates_the_request_and_the_answer() {
    let mut server = serve(|_| async { json(200, ANSWER) }).await;
    let response = within(gemini(&server.base_url()).oneshot(caller_request(REQUEST)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.extensions().get::<Outcome>().is_none());
    let completion: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();

    let sent = server.request().await;
    assert_eq!(sent.method, http::Method::POST);
    assert_eq!(
        sent.uri.path(),
        "/v1/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(sent.uri.query(), None);
    assert_eq!(sent.json(), expected_gemini_request());
    assert_eq!(sent.headers["x-goog-api-key"], KEY);
    assert!(sent.headers.get("authorization").is_none());
    assert!(sent.headers.get("x-api-key").is_none());
    assert!(!sent.uri.to_string().contains(KEY));
    assert_eq!(sent.headers["content-type"], "application/json");

    assert_eq!(completion["id"], "chatcmpl-mW1caLL9Jq2yxN8PqYvJgQI");
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "gemini-2.5-flash");
    assert!(
        completion["created"]
            .as_u64()
            .is_some_and(|t| t > 1_700_000_000)
    );
    assert_eq!(
        completion["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "It is 22 degrees in Boston.", "refusal": null},
            "logprobs": null, "finish_reason": "stop"}])
    );
    assert_eq!(
        completion["usage"],
        json!({"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49})
    );
}

#[tokio::test]
async fn a_refused_field_is_a_400_before_anything_is_sent() {
    let mut server = serve(|_| async { json(200, ANSWER) }).await;
    let body = r#"{"model":"chat","logprobs":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(gemini(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    assert_eq!(
        body["error"]["message"],
        "`logprobs` is not supported by `gemini` targets"
    );
    // The next request the server sees is the next one sent, not the refused one.
    let fine = r#"{"model":"chat","logprobs":false,"messages":[{"role":"user","content":"next"}]}"#;
    let response = within(gemini(&server.base_url()).oneshot(caller_request(fine)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        server.request().await.json()["contents"][0]["parts"][0]["text"],
        "next"
    );
}

/// A stream as `streamGenerateContent?alt=sse` sends it: one whole
/// `GenerateContentResponse` per event, CRLF line endings.
const TEXT_STREAM: [&str; 3] = [
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The weather\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,\"candidatesTokenCount\": 2,\"totalTokenCount\": 10},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"stream-1\"}\r\n\r\n",
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" is sunny.\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,\"candidatesTokenCount\": 5,\"totalTokenCount\": 13},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"stream-1\"}\r\n\r\n",
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,\"candidatesTokenCount\": 6,\"thoughtsTokenCount\": 20,\"totalTokenCount\": 34},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"stream-1\"}\r\n\r\n",
];

fn streaming(
    events: &'static [&'static str],
) -> impl Fn(support::Captured) -> std::future::Ready<http::Response<support::TestBody>> + Clone {
    move |_| {
        let (tx, response) = sse();
        tokio::spawn(async move {
            for event in events {
                tx.send(Bytes::from_static(event.as_bytes())).await.unwrap();
            }
        });
        std::future::ready(response)
    }
}

#[tokio::test]
async fn translates_a_text_stream_with_usage() {
    let mut server = serve(streaming(&TEXT_STREAM)).await;
    let body = r#"{"model":"chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Weather?"}]}"#;
    let response = within(gemini(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let sse = text(response.into_body()).await;

    let sent = server.request().await;
    assert_eq!(
        sent.uri.path(),
        "/v1/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(sent.uri.query(), Some("alt=sse"));
    assert_eq!(sent.headers["x-goog-api-key"], KEY);
    assert!(sent.headers.get("authorization").is_none());
    assert_eq!(
        sent.json(),
        json!({"contents": [{"role": "user", "parts": [{"text": "Weather?"}]}]})
    );

    let events = data_lines(&sse);
    assert_eq!(events.len(), 6, "{sse}");
    assert_eq!(events[5], "[DONE]");
    let chunks: Vec<Value> = events[..5]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let created = &chunks[0]["created"];
    for chunk in &chunks {
        assert_eq!(chunk["id"], "chatcmpl-stream-1");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gemini-2.5-flash");
        assert_eq!(&chunk["created"], created);
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks[0]["usage"], Value::Null);
    assert_eq!(
        chunks[1]["choices"][0]["delta"],
        json!({"content": "The weather"})
    );
    assert_eq!(
        chunks[2]["choices"][0]["delta"],
        json!({"content": " is sunny."})
    );
    assert_eq!(chunks[3]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(
        chunks[4]["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 26, "total_tokens": 34,
            "completion_tokens_details": {"reasoning_tokens": 20}})
    );
}

const TOOL_STREAM: [&str; 1] = [
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"get_current_weather\",\"args\": {\"location\": \"Boston, MA\"}}}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 30,\"candidatesTokenCount\": 8,\"totalTokenCount\": 38},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"tool-1\"}\r\n\r\n",
];

#[tokio::test]
async fn translates_a_streamed_tool_call() {
    let server = serve(streaming(&TOOL_STREAM)).await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"Weather in Boston?"}],
        "tools":[{"type":"function","function":{"name":"get_current_weather","parameters":{"type":"object","properties":{"location":{"type":"string"}}}}}]}"#;
    let response = within(gemini(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    let sse = text(response.into_body()).await;
    assert!(!sse.contains("usage"));
    let events = data_lines(&sse);
    assert_eq!(events.len(), 4, "{sse}");
    let call: Value = serde_json::from_str(events[1]).unwrap();
    assert_eq!(
        call["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "id": "call_0", "type": "function",
            "function": {"name": "get_current_weather", "arguments": "{\"location\":\"Boston, MA\"}"}}])
    );
    let finish: Value = serde_json::from_str(events[2]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(events[3], "[DONE]");
}

#[tokio::test]
async fn a_stream_cut_before_its_finish_reason_is_broken() {
    let server = serve(streaming(&TEXT_STREAM[..2])).await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(gemini(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    let mut body = response.into_body();
    let mut seen = String::new();
    let error = loop {
        match within(body.frame())
            .await
            .expect("the stream ended without an error")
        {
            Ok(frame) => seen.push_str(std::str::from_utf8(&frame.into_data().unwrap()).unwrap()),
            Err(error) => break error,
        }
    };
    assert!(seen.contains(" is sunny."));
    assert!(!seen.contains("[DONE]"));
    let classified = error.downcast_ref::<ClassifiedError>().unwrap();
    assert_eq!(
        classified.outcome(),
        Outcome::Failure(FailureKind::StreamBroken)
    );
}

async fn error_answer(
    status: u16,
    body: &'static str,
) -> http::Response<understudy_core::ResponseBody> {
    let server = serve(move |_| async move { json(status, body) }).await;
    within(gemini(&server.base_url()).oneshot(caller_request(REQUEST)))
        .await
        .unwrap()
}

#[tokio::test]
async fn rate_limits_wait_for_googles_retry_delay() {
    let response = error_answer(
        429,
        r#"{"error": {"code": 429, "message": "You exceeded your current quota, please check your plan and billing details.", "status": "RESOURCE_EXHAUSTED",
          "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}
          ]}}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::Failure(FailureKind::RateLimited {
            retry_after: Some(Duration::from_secs(2))
        }))
    );
    let body: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}})
    );
}

#[tokio::test]
async fn unavailable_is_overloaded() {
    let response = error_answer(
        503,
        r#"{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::Failure(FailureKind::Overloaded))
    );
    let body: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    assert_eq!(
        body["error"]["message"],
        "The model is overloaded. Please try again later."
    );
    assert_eq!(body["error"]["code"], "overloaded");
}

#[tokio::test]
async fn invalid_argument_is_the_callers_error() {
    let response = error_answer(
        400,
        r#"{"error": {"code": 400, "message": "Invalid JSON payload received. Unknown name \"foo\": Cannot find field.", "status": "INVALID_ARGUMENT",
          "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"description": "Invalid JSON payload received. Unknown name \"foo\": Cannot find field."}]}]}}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::ClientError(ClientErrorKind::Rejected(
            StatusCode::BAD_REQUEST
        )))
    );
    let body: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON payload")
    );
}

#[tokio::test]
async fn an_invalid_key_is_the_gateways_credentials_not_the_callers_request() {
    let response = error_answer(
        400,
        r#"{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
          "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::Failure(FailureKind::Unauthorized(
            StatusCode::UNAUTHORIZED
        )))
    );
    let body = text(response.into_body()).await;
    assert!(body.contains("upstream_auth_failed"));
    assert!(!body.contains(KEY));
}

const BLOCKED: &str = r#"{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}, "modelVersion": "gemini-2.5-flash", "responseId": "blocked-1"}"#;

#[tokio::test]
async fn a_blocked_prompt_is_content_filtered() {
    let response = error_answer(200, BLOCKED).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::ClientError(ClientErrorKind::ContentFiltered))
    );
    let completion: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(completion["choices"][0]["finish_reason"], "content_filter");
}

const BLOCKED_STREAM: [&str; 1] = [
    "data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\"},\"usageMetadata\": {\"promptTokenCount\": 12,\"totalTokenCount\": 12},\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n",
];

#[tokio::test]
async fn a_blocked_streamed_prompt_fails_before_any_content() {
    let server = serve(streaming(&BLOCKED_STREAM)).await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(gemini(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    let mut body = response.into_body();
    let error = within(body.frame()).await.unwrap().unwrap_err();
    let classified = error.downcast_ref::<ClassifiedError>().unwrap();
    assert_eq!(
        classified.outcome(),
        Outcome::ClientError(ClientErrorKind::ContentFiltered)
    );
    assert!(within(body.frame()).await.is_none());
}

const ERROR_STREAM: [&str; 2] = [
    TEXT_STREAM[0],
    "data: {\"error\": {\"code\": 500, \"message\": \"An internal error has occurred.\", \"status\": \"INTERNAL\"}}\r\n\r\n",
];

#[tokio::test]
async fn an_error_event_is_classified_by_its_status() {
    let server = serve(streaming(&ERROR_STREAM)).await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(gemini(&server.base_url()).oneshot(caller_request(body)))
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = next_data(&mut body).await;
    assert!(std::str::from_utf8(&first).unwrap().contains("The weather"));
    let error = within(body.frame()).await.unwrap().unwrap_err();
    let classified = error.downcast_ref::<ClassifiedError>().unwrap();
    assert_eq!(
        classified.outcome(),
        Outcome::Failure(FailureKind::Server(StatusCode::INTERNAL_SERVER_ERROR))
    );
}

#[tokio::test]
async fn probe_lists_models_with_the_key_header() {
    let mut server = serve(|_| async { json(200, r#"{"models":[]}"#) }).await;
    assert!(within(gemini(&server.base_url()).probe()).await);
    let sent = server.request().await;
    assert_eq!(sent.method, http::Method::GET);
    assert_eq!(sent.uri.path(), "/v1/models");
    assert_eq!(sent.uri.query(), None);
    assert_eq!(sent.headers["x-goog-api-key"], KEY);
    assert!(sent.headers.get("authorization").is_none());
}

fn embedder(base_url: &str) -> ProviderService {
    ProviderService::with_options(
        client(),
        ProviderKind::Gemini,
        &DialectOptions::default(),
        base_url,
        Some(ApiKey::new(KEY)),
        "gemini-embedding-001",
    )
    .unwrap()
}

/// A caller's `POST /v1/embeddings`, as the gateway hands it on.
fn embeddings_request(body: &str) -> http::Request<understudy_core::ReplayBody> {
    let mut request = caller_request(body);
    request.extensions_mut().insert(Operation::Embeddings);
    request
}

/// A `batchEmbedContents` answer shaped like the example in Google's
/// reference.
const EMBEDDINGS: &str = r#"{
  "embeddings": [
    {"values": [0.013168523, -0.008711934, -0.046782676, 0.00069968984]},
    {"values": [-0.02379012, 0.0027765876, 0.02136011, -0.011303906]}
  ]
}"#;

const EMBEDDINGS_REQUEST: &str = r#"{"model": "embed", "input": ["The food was delicious", "The waiter was friendly"],
  "dimensions": 4, "user": "user-1234"}"#;

#[tokio::test]
async fn translates_an_embeddings_request_and_its_float_answer() {
    let mut server = serve(|_| async { json(200, EMBEDDINGS) }).await;
    let response =
        within(embedder(&server.base_url()).oneshot(embeddings_request(EMBEDDINGS_REQUEST)))
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.extensions().get::<Operation>(),
        Some(&Operation::Embeddings)
    );
    assert!(response.extensions().get::<Outcome>().is_none());
    let list: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();

    let sent = server.request().await;
    assert_eq!(sent.method, http::Method::POST);
    assert_eq!(
        sent.uri.path(),
        "/v1/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(sent.uri.query(), None);
    assert_eq!(sent.headers["x-goog-api-key"], KEY);
    assert!(sent.headers.get("authorization").is_none());
    assert_eq!(
        sent.json(),
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "The food was delicious"}]}, "outputDimensionality": 4},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "The waiter was friendly"}]}, "outputDimensionality": 4}
        ]})
    );

    // Gemini's values, as they came, in order.
    let answer: Value = serde_json::from_str(EMBEDDINGS).unwrap();
    assert_eq!(
        list,
        json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": answer["embeddings"][0]["values"]},
                {"object": "embedding", "index": 1, "embedding": answer["embeddings"][1]["values"]}
            ],
            "model": "gemini-embedding-001",
            "usage": {"prompt_tokens": 0, "total_tokens": 0}
        })
    );
    assert_eq!(list["data"][0]["embedding"][3], 0.000_699_689_84);
}

#[tokio::test]
async fn encodes_embeddings_as_base64_when_asked() {
    let mut server = serve(|_| async { json(200, EMBEDDINGS) }).await;
    let body = r#"{"model": "embed", "input": ["The food was delicious", "The waiter was friendly"], "encoding_format": "base64"}"#;
    let response = within(embedder(&server.base_url()).oneshot(embeddings_request(body)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let list: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    // Nothing about the encoding is sent to Gemini.
    assert_eq!(
        server.request().await.json()["requests"][0],
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "The food was delicious"}]}})
    );

    let answer: Value = serde_json::from_str(EMBEDDINGS).unwrap();
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (index, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], index);
        let bytes = STANDARD
            .decode(item["embedding"].as_str().unwrap())
            .unwrap();
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()))
            .collect();
        #[allow(clippy::cast_possible_truncation)]
        let expected: Vec<f32> = answer["embeddings"][index]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(decoded, expected);
    }
    assert_eq!(list["model"], "gemini-embedding-001");
}

#[tokio::test]
async fn token_inputs_are_a_400_before_anything_is_sent() {
    let mut server = serve(|_| async { json(200, EMBEDDINGS) }).await;
    let response = within(embedder(&server.base_url()).oneshot(embeddings_request(
        r#"{"model": "embed", "input": [[1234, 5678]]}"#,
    )))
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`input`")
    );
    // The next request the server sees is the next one sent.
    let response =
        within(embedder(&server.base_url()).oneshot(embeddings_request(r#"{"input": "next"}"#)))
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        server.request().await.json()["requests"][0]["content"]["parts"][0]["text"],
        "next"
    );
}

#[tokio::test]
async fn an_embeddings_answer_without_vectors_is_broken() {
    let server = serve(|_| async { json(200, r#"{"embeddings": []}"#) }).await;
    let error =
        within(embedder(&server.base_url()).oneshot(embeddings_request(EMBEDDINGS_REQUEST)))
            .await
            .unwrap_err();
    let classified = error.downcast_ref::<ClassifiedError>().unwrap();
    assert_eq!(
        classified.outcome(),
        Outcome::Failure(FailureKind::StreamBroken)
    );
}

#[tokio::test]
async fn an_embeddings_rate_limit_is_classified_and_shaped() {
    let server = serve(|_| async {
        json(
            429,
            r#"{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED",
              "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}}"#,
        )
    })
    .await;
    let response =
        within(embedder(&server.base_url()).oneshot(embeddings_request(EMBEDDINGS_REQUEST)))
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::Failure(FailureKind::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }))
    );
    let body: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "Resource has been exhausted (e.g. check quota).",
            "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}})
    );
}
