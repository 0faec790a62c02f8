//! The Azure OpenAI, Gemini and Bedrock formats over real loopback sockets:
//! their paths, answers, streams, errors and faults as those providers send
//! them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use understudy_mock::{Fault, FaultPlan, MockConfig, MockProvider, WireFormat};

use support::{get, json, read_events, send, send_full, within};

const AZURE_CHAT: &str = "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21";
const GEMINI_CHAT: &str = "/v1beta/models/gemini-2.0-flash:generateContent";
const GEMINI_STREAM: &str = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse";
const BEDROCK_MODEL: &str = "anthropic.claude-3-haiku-20240307-v1%3A0";

fn plan(spec: &str) -> FaultPlan {
    spec.parse().unwrap()
}

async fn start(config: MockConfig) -> MockProvider {
    MockProvider::start(config.name("alt").stream_chunks(4))
        .await
        .unwrap()
}

fn request(path: &str, headers: &[(&str, &str)], body: &Value) -> Request<Full<Bytes>> {
    let mut builder = Request::post(path)
        .header("host", "mock")
        .header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn azure(stream: bool) -> Request<Full<Bytes>> {
    azure_at(
        AZURE_CHAT,
        &json!({ "messages": [{"role": "user", "content": "hi"}], "stream": stream }),
    )
}

fn azure_at(path: &str, body: &Value) -> Request<Full<Bytes>> {
    request(path, &[("api-key", "azure-key")], body)
}

fn gemini_body() -> Value {
    json!({ "contents": [{ "role": "user", "parts": [{ "text": "hi" }] }] })
}

fn gemini(path: &str) -> Request<Full<Bytes>> {
    request(path, &[("x-goog-api-key", "gemini-key")], &gemini_body())
}

const SIGNED: [(&str, &str); 2] = [
    (
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=0123456789abcdef",
    ),
    ("x-amz-date", "20250101T000000Z"),
];

fn bedrock_body() -> Value {
    json!({ "messages": [{ "role": "user", "content": [{ "text": "hi" }] }] })
}

fn bedrock(operation: &str) -> Request<Full<Bytes>> {
    bedrock_with(operation, &bedrock_body())
}

fn bedrock_with(operation: &str, body: &Value) -> Request<Full<Bytes>> {
    request(
        &format!("/model/{BEDROCK_MODEL}/{operation}"),
        &SIGNED,
        body,
    )
}

/// Reads a body of event-stream frames, each checked (prelude and message
/// checksums) by the AWS decoder, until it ends, fails, or does not decode.
async fn read_frames(mut body: Incoming) -> (Vec<Message>, Option<String>) {
    let mut decoder = MessageFrameDecoder::new();
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    loop {
        match within(body.frame()).await {
            None => {
                let rest = (!buffer.is_empty()).then(|| format!("{} bytes left", buffer.len()));
                return (frames, rest);
            }
            Some(Err(error)) => return (frames, Some(error.to_string())),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    buffer.extend_from_slice(data);
                }
                loop {
                    match decoder.decode_frame(&mut buffer) {
                        Ok(DecodedFrame::Complete(message)) => frames.push(message),
                        Ok(DecodedFrame::Incomplete) => break,
                        Err(error) => return (frames, Some(error.to_string())),
                    }
                }
            }
        }
    }
}

fn frame_header(message: &Message, name: &str) -> String {
    let header = message
        .headers()
        .iter()
        .find(|header| header.name().as_str() == name)
        .unwrap_or_else(|| panic!("no {name} header"));
    header.value().as_string().unwrap().as_str().to_owned()
}

fn payload(message: &Message) -> Value {
    json(message.payload())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers[name].to_str().unwrap()
}

#[tokio::test]
async fn azure_answers_are_chat_completions_with_filter_results() {
    let mock = start(MockConfig::azure()).await;
    assert_eq!(mock.format(), WireFormat::Azure);
    assert_eq!(mock.base_url(), format!("http://{}", mock.addr()));
    let (status, headers, body) = send_full(mock.addr(), azure(false)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let body = json(&body);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt4o-prod");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from alt.");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["choices"][0]["content_filter_results"]["hate"]["filtered"],
        false
    );
    assert_eq!(body["prompt_filter_results"][0]["prompt_index"], 0);
    assert_eq!(body["usage"]["completion_tokens"], 4);
    let recorded = mock.last_request().unwrap();
    assert_eq!(
        recorded.path,
        "/openai/deployments/gpt4o-prod/chat/completions"
    );
    assert_eq!(recorded.headers["api-key"], "azure-key");
    assert_eq!(
        mock.stats().by_path["/openai/deployments/{deployment}/chat/completions"],
        1
    );

    let (status, _, body) =
        send_full(mock.addr(), get("/openai/models?api-version=2024-10-21")).await;
    assert_eq!(status, StatusCode::OK);
    let body = json(&body);
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["id"], "mock-model");
    assert_eq!(mock.stats().models_requests, 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn azure_streams_start_with_the_prompt_filter_chunk() {
    let mock = start(MockConfig::azure()).await;
    let body = json!({
        "messages": [], "stream": true, "stream_options": { "include_usage": true },
    });
    let response = within(send(mock.addr(), azure_at(AZURE_CHAT, &body)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (events, error) = read_events(response.into_body()).await;
    assert!(error.is_none());
    // prompt filter, role, four pieces, finish, usage, [DONE]
    assert_eq!(events.len(), 9);
    assert!(events[8].is_done());
    let chunks: Vec<_> = events[..8]
        .iter()
        .map(|e| json(e.data.as_bytes()))
        .collect();
    assert_eq!(chunks[0]["choices"], json!([]));
    assert!(chunks[0]["prompt_filter_results"].is_array());
    let text: String = chunks[1..7]
        .iter()
        .map(|c| {
            assert_eq!(c["model"], "gpt4o-prod");
            assert!(c["choices"][0]["content_filter_results"].is_object());
            c["choices"][0]["delta"]["content"].as_str().unwrap_or("")
        })
        .collect();
    assert_eq!(text, "Hello from alt.");
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[7]["usage"]["completion_tokens"], 4);
    mock.shutdown().await;
}

#[tokio::test]
async fn azure_needs_an_api_version() {
    let mock = start(MockConfig::azure()).await;
    for path in [
        "/openai/deployments/gpt4o-prod/chat/completions",
        "/openai/deployments/gpt4o-prod/chat/completions?api-version=",
        "/openai/models",
    ] {
        let request = if path.ends_with("models") {
            get(path)
        } else {
            azure_at(path, &json!({ "messages": [] }))
        };
        let (status, _, body) = send_full(mock.addr(), request).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            json(&body),
            json!({ "error": { "code": "404", "message": "Resource not found" } }),
            "{path}"
        );
    }
    let stats = mock.stats();
    assert_eq!((stats.chat_requests, stats.rejected), (0, 3));
    mock.shutdown().await;
}

#[tokio::test]
async fn azure_errors_carry_codes_and_retry_headers() {
    let mock = start(MockConfig::azure()).await;
    mock.set_fault(plan("rate-limit:3*1,status:429*1,status:503*1"));
    let (status, headers, body) = send_full(mock.addr(), azure(false)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&headers, "retry-after"), "3");
    assert_eq!(header(&headers, "retry-after-ms"), "3000");
    assert_eq!(header(&headers, "x-ratelimit-reset-requests"), "3");
    let body = json(&body);
    assert_eq!(body["error"]["code"], "429");
    assert!(body["error"]["message"].is_string());

    let (status, headers, _) = send_full(mock.addr(), azure(false)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&headers, "retry-after-ms"), "1000");
    assert_eq!(header(&headers, "x-ratelimit-reset-requests"), "1");

    let (status, headers, body) = send_full(mock.addr(), azure(false)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get("retry-after").is_none());
    assert_eq!(json(&body)["error"]["code"], "503");

    mock.set_fault(Fault::ErrorEvent);
    let response = within(send(mock.addr(), azure(true))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (events, error) = read_events(response.into_body()).await;
    assert!(error.is_none());
    assert_eq!(events.len(), 1);
    assert_eq!(json(events[0].data.as_bytes())["error"]["code"], "503");
    mock.shutdown().await;
}

#[tokio::test]
async fn gemini_answers_are_generate_content_responses() {
    let mock = start(MockConfig::gemini()).await;
    let (status, headers, body) = send_full(mock.addr(), gemini(GEMINI_CHAT)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let body = json(&body);
    let candidate = &body["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(candidate["content"]["parts"][0]["text"], "Hello from alt.");
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(body["modelVersion"], "gemini-2.0-flash");
    assert_eq!(body["usageMetadata"]["candidatesTokenCount"], 4);
    assert_eq!(body["usageMetadata"]["totalTokenCount"], 14);
    let recorded = mock.last_request().unwrap();
    assert_eq!(recorded.headers["x-goog-api-key"], "gemini-key");

    let (status, _, body) = send_full(mock.addr(), get("/v1beta/models")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["models"][0]["name"], "models/mock-model");

    // The body names no model and must hold `contents`.
    let bad = request(GEMINI_CHAT, &[], &json!({ "model": "x" }));
    let (status, _, body) = send_full(mock.addr(), bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json(&body)["error"]["status"], "INVALID_ARGUMENT");
    mock.shutdown().await;
}

#[tokio::test]
async fn gemini_streams_are_crlf_sse_events() {
    let mock = start(MockConfig::gemini()).await;
    let (status, headers, raw) = send_full(mock.addr(), gemini(GEMINI_STREAM)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    let raw = String::from_utf8(raw.to_vec()).unwrap();
    let events: Vec<_> = raw.split_terminator("\r\n\r\n").collect();
    assert_eq!(events.len(), 4, "{raw:?}");
    assert!(raw.ends_with("\r\n\r\n"));
    let chunks: Vec<_> = events
        .iter()
        .map(|event| json(event.strip_prefix("data: ").unwrap().as_bytes()))
        .collect();
    let text: String = chunks
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(text, "Hello from alt.");
    for chunk in &chunks[..3] {
        assert!(chunk["candidates"][0].get("finishReason").is_none());
        assert!(chunk.get("usageMetadata").is_none());
    }
    assert_eq!(chunks[3]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(chunks[3]["usageMetadata"]["candidatesTokenCount"], 4);
    assert_eq!(chunks[3]["modelVersion"], "gemini-2.0-flash");
    assert_eq!(
        mock.stats().by_path["/v1beta/models/{model}:streamGenerateContent"],
        1
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn gemini_errors_carry_google_statuses() {
    let mock = start(MockConfig::gemini()).await;
    mock.set_fault(plan("rate-limit:2*1,status:503*1"));
    let (status, _, body) = send_full(mock.addr(), gemini(GEMINI_CHAT)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let error = &json(&body)["error"];
    assert_eq!(error["code"], 429);
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(
        error["details"][0]["@type"],
        "type.googleapis.com/google.rpc.RetryInfo"
    );
    assert_eq!(error["details"][0]["retryDelay"], "2s");

    let (status, _, body) = send_full(mock.addr(), gemini(GEMINI_CHAT)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let error = &json(&body)["error"];
    assert_eq!(error["code"], 503);
    assert_eq!(error["status"], "UNAVAILABLE");
    assert!(error.get("details").is_none());

    mock.set_fault(Fault::ErrorEvent);
    let (status, _, raw) = send_full(mock.addr(), gemini(GEMINI_STREAM)).await;
    assert_eq!(status, StatusCode::OK);
    let raw = String::from_utf8(raw.to_vec()).unwrap();
    let data = raw
        .strip_prefix("data: ")
        .and_then(|rest| rest.strip_suffix("\r\n\r\n"))
        .unwrap();
    let error = &json(data.as_bytes())["error"];
    assert_eq!(error["status"], "UNAVAILABLE");
    assert_eq!(error["code"], 503);
    mock.shutdown().await;
}

#[tokio::test]
async fn bedrock_converse_answers_name_no_model() {
    let mock = start(MockConfig::bedrock()).await;
    let (status, headers, body) = send_full(mock.addr(), bedrock("converse")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.contains_key("x-amzn-requestid"));
    let body = json(&body);
    assert_eq!(
        body["output"]["message"],
        json!({ "role": "assistant", "content": [{ "text": "Hello from alt." }] })
    );
    assert_eq!(body["stopReason"], "end_turn");
    assert_eq!(
        body["usage"],
        json!({ "inputTokens": 10, "outputTokens": 4, "totalTokens": 14 })
    );
    assert!(body["metrics"]["latencyMs"].is_u64());
    let recorded = mock.last_request().unwrap();
    assert_eq!(
        recorded.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );

    let probe = Request::get("/foundation-models")
        .header("host", "mock")
        .header(SIGNED[0].0, SIGNED[0].1)
        .header(SIGNED[1].0, SIGNED[1].1)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = send_full(mock.addr(), probe).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["modelSummaries"][0]["modelId"], "mock-model");
    mock.shutdown().await;
}

#[tokio::test]
async fn bedrock_streams_are_checksummed_event_frames() {
    let mock = start(MockConfig::bedrock()).await;
    let response = within(send(mock.addr(), bedrock("converse-stream")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let (frames, error) = read_frames(response.into_body()).await;
    assert_eq!(error, None);
    let types: Vec<_> = frames
        .iter()
        .map(|f| frame_header(f, ":event-type"))
        .collect();
    assert_eq!(
        types,
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata",
        ]
    );
    for frame in &frames {
        assert_eq!(frame_header(frame, ":message-type"), "event");
        assert_eq!(frame_header(frame, ":content-type"), "application/json");
    }
    assert_eq!(payload(&frames[0]), json!({ "role": "assistant" }));
    let text: String = frames[1..5]
        .iter()
        .map(|f| {
            let delta = payload(f);
            assert_eq!(delta["contentBlockIndex"], 0);
            delta["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Hello from alt.");
    assert_eq!(payload(&frames[5]), json!({ "contentBlockIndex": 0 }));
    assert_eq!(payload(&frames[6]), json!({ "stopReason": "end_turn" }));
    assert_eq!(payload(&frames[7])["usage"]["outputTokens"], 4);
    assert!(payload(&frames[7])["metrics"]["latencyMs"].is_u64());
    assert_eq!(mock.stats().by_path["/model/{modelId}/converse-stream"], 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn bedrock_requires_a_sigv4_signature() {
    let mock = start(MockConfig::bedrock()).await;
    let unsigned = [
        vec![],
        vec![("authorization", "Bearer sk-test"), SIGNED[1]],
        vec![SIGNED[0]],
    ];
    for headers in unsigned {
        let path = format!("/model/{BEDROCK_MODEL}/converse");
        let (status, response_headers, body) =
            send_full(mock.addr(), request(&path, &headers, &bedrock_body())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(
            header(&response_headers, "x-amzn-errortype"),
            "MissingAuthenticationTokenException"
        );
        assert_eq!(
            json(&body),
            json!({ "message": "Missing Authentication Token" })
        );
    }
    let (status, _, _) = send_full(mock.addr(), get("/foundation-models")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A refused request does not spend a fault.
    mock.set_fault(plan("status:503*1"));
    let path = format!("/model/{BEDROCK_MODEL}/converse");
    let (status, _, _) = send_full(mock.addr(), request(&path, &[], &bedrock_body())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send_full(mock.addr(), bedrock("converse")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(mock.stats().rejected, 5);
    mock.shutdown().await;
}

#[tokio::test]
async fn bedrock_paths_decode_the_model_id() {
    let mock = start(MockConfig::bedrock()).await;
    let arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3";
    let path = format!("/model/{arn}/converse");
    let (status, _, _) = send_full(mock.addr(), request(&path, &SIGNED, &bedrock_body())).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/model/bad%zz/converse", "/model/m/invoke", "/model/m"] {
        let (status, headers, _) =
            send_full(mock.addr(), request(path, &SIGNED, &bedrock_body())).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(header(&headers, "x-amzn-errortype").starts_with("ResourceNotFoundException:"));
    }
    mock.shutdown().await;
}

#[tokio::test]
async fn bedrock_errors_are_named_in_a_header() {
    let mock = start(MockConfig::bedrock()).await;
    mock.set_fault(plan(
        "rate-limit:2*1,status:503*1,status:400*1,status:408*1",
    ));
    let expected = [
        (429, "ThrottlingException"),
        (503, "ServiceUnavailableException"),
        (400, "ValidationException"),
        (408, "ModelTimeoutException"),
    ];
    for (code, name) in expected {
        let (status, headers, body) = send_full(mock.addr(), bedrock("converse")).await;
        assert_eq!(status.as_u16(), code);
        assert_eq!(
            header(&headers, "x-amzn-errortype"),
            format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/")
        );
        let body = json(&body);
        assert!(body["message"].is_string());
        if code == 429 {
            assert_eq!(
                body["message"],
                "Too many requests, please wait before trying again."
            );
        }
    }
    mock.shutdown().await;
}

#[tokio::test]
async fn bedrock_stream_faults_are_frames() {
    let mock = start(MockConfig::bedrock()).await;
    mock.set_fault(plan("error-event*1,garbage*1,drop-after:2*1"));

    let response = within(send(mock.addr(), bedrock("converse-stream")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (frames, error) = read_frames(response.into_body()).await;
    assert_eq!(error, None);
    assert_eq!(frames.len(), 1);
    assert_eq!(frame_header(&frames[0], ":message-type"), "exception");
    assert_eq!(
        frame_header(&frames[0], ":exception-type"),
        "serviceUnavailableException"
    );
    assert!(payload(&frames[0])["message"].is_string());

    let response = within(send(mock.addr(), bedrock("converse-stream")))
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let (frames, error) = read_frames(response.into_body()).await;
    assert!(frames.is_empty());
    let error = error.expect("a broken frame");
    assert!(error.contains("checksum"), "{error}");

    let response = within(send(mock.addr(), bedrock("converse-stream")))
        .await
        .unwrap();
    let (frames, error) = read_frames(response.into_body()).await;
    assert_eq!(frames.len(), 2);
    assert!(error.is_some());
    mock.shutdown().await;
}

#[tokio::test]
async fn forced_tools_are_called_in_each_format() {
    // Azure
    let mock = start(MockConfig::azure()).await;
    let tool_choice = json!({ "type": "function", "function": { "name": "lookup" } });
    let body = json!({ "messages": [], "tool_choice": tool_choice });
    let (_, _, answer) = send_full(mock.addr(), azure_at(AZURE_CHAT, &body)).await;
    let answer = json(&answer);
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    let call = &answer["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "lookup");
    assert!(json(call["arguments"].as_str().unwrap().as_bytes()).is_object());
    let body = json!({ "messages": [], "tool_choice": tool_choice, "stream": true });
    let response = within(send(mock.addr(), azure_at(AZURE_CHAT, &body)))
        .await
        .unwrap();
    let (events, _) = read_events(response.into_body()).await;
    assert!(events.last().unwrap().is_done());
    let chunks: Vec<_> = events[1..events.len() - 1]
        .iter()
        .map(|e| json(e.data.as_bytes()))
        .collect();
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(json(arguments.as_bytes()).is_object());
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
    mock.shutdown().await;

    // Gemini
    let mock = start(MockConfig::gemini()).await;
    let mut body = gemini_body();
    body["toolConfig"] = json!({
        "functionCallingConfig": { "mode": "ANY", "allowedFunctionNames": ["lookup"] },
    });
    let (_, _, answer) = send_full(mock.addr(), request(GEMINI_CHAT, &[], &body)).await;
    let answer = json(&answer);
    let part = &answer["candidates"][0]["content"]["parts"][0];
    assert_eq!(part["functionCall"]["name"], "lookup");
    assert!(part["functionCall"]["args"].is_object());
    assert_eq!(answer["candidates"][0]["finishReason"], "STOP");
    let (_, _, raw) = send_full(mock.addr(), request(GEMINI_STREAM, &[], &body)).await;
    let raw = String::from_utf8(raw.to_vec()).unwrap();
    let data = raw.strip_prefix("data: ").unwrap().trim_end();
    assert_eq!(
        json(data.as_bytes())["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "lookup"
    );
    mock.shutdown().await;

    // Bedrock
    let mock = start(MockConfig::bedrock()).await;
    let mut body = bedrock_body();
    body["toolConfig"] = json!({
        "tools": [{ "toolSpec": { "name": "lookup", "inputSchema": { "json": {} } } }],
        "toolChoice": { "tool": { "name": "lookup" } },
    });
    let (_, _, answer) = send_full(mock.addr(), bedrock_with("converse", &body)).await;
    let answer = json(&answer);
    assert_eq!(answer["stopReason"], "tool_use");
    let tool_use = &answer["output"]["message"]["content"][0]["toolUse"];
    assert_eq!(tool_use["name"], "lookup");
    assert!(tool_use["input"].is_object() && tool_use["toolUseId"].is_string());
    let response = within(send(mock.addr(), bedrock_with("converse-stream", &body)))
        .await
        .unwrap();
    let (frames, error) = read_frames(response.into_body()).await;
    assert_eq!(error, None);
    let types: Vec<_> = frames
        .iter()
        .map(|f| frame_header(f, ":event-type"))
        .collect();
    assert_eq!(
        types,
        [
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata",
        ]
    );
    assert_eq!(payload(&frames[1])["start"]["toolUse"]["name"], "lookup");
    let input = payload(&frames[2])["delta"]["toolUse"]["input"].clone();
    assert!(json(input.as_str().unwrap().as_bytes()).is_object());
    assert_eq!(payload(&frames[4])["stopReason"], "tool_use");
    mock.shutdown().await;
}

#[tokio::test]
async fn forced_tools_are_called_in_openai_and_anthropic() {
    let mock = MockProvider::start(MockConfig::openai()).await.unwrap();
    let body = json!({
        "model": "gpt-4o",
        "messages": [],
        "tool_choice": { "type": "function", "function": { "name": "lookup" } },
    });
    let (_, _, answer) = send_full(mock.addr(), request("/v1/chat/completions", &[], &body)).await;
    let answer = json(&answer);
    assert_eq!(answer["model"], "gpt-4o");
    assert_eq!(
        answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );
    // "auto" forces nothing.
    let body = json!({ "model": "gpt-4o", "messages": [], "tool_choice": "auto" });
    let (_, _, answer) = send_full(mock.addr(), request("/v1/chat/completions", &[], &body)).await;
    assert_eq!(json(&answer)["choices"][0]["finish_reason"], "stop");
    mock.shutdown().await;

    let mock = MockProvider::start(MockConfig::anthropic()).await.unwrap();
    let body = json!({
        "model": "claude",
        "max_tokens": 10,
        "messages": [],
        "stream": true,
        "tool_choice": { "type": "tool", "name": "lookup" },
    });
    let response = within(send(mock.addr(), request("/v1/messages", &[], &body)))
        .await
        .unwrap();
    let (events, _) = read_events(response.into_body()).await;
    let names: Vec<_> = events.iter().map(|e| e.event.clone().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let start = json(events[1].data.as_bytes());
    assert_eq!(start["content_block"]["type"], "tool_use");
    assert_eq!(start["content_block"]["name"], "lookup");
    let delta = json(events[2].data.as_bytes());
    assert_eq!(delta["delta"]["type"], "input_json_delta");
    assert!(json(delta["delta"]["partial_json"].as_str().unwrap().as_bytes()).is_object());
    assert_eq!(
        json(events[4].data.as_bytes())["delta"]["stop_reason"],
        "tool_use"
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn slow_faults_apply_to_every_format() {
    for config in [
        MockConfig::azure(),
        MockConfig::gemini(),
        MockConfig::bedrock(),
    ] {
        let mock = start(config).await;
        mock.set_fault(plan("delay:30*1"));
        let request = match mock.format() {
            WireFormat::Azure => azure(false),
            WireFormat::Gemini => gemini(GEMINI_CHAT),
            _ => bedrock("converse"),
        };
        let started = tokio::time::Instant::now();
        let (status, _, _) = send_full(mock.addr(), request).await;
        assert_eq!(status, StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(30));
        mock.shutdown().await;
    }
}

#[tokio::test]
async fn content_filter_refuses_the_prompt_as_each_provider_does() {
    let mock = start(MockConfig::azure()).await;
    mock.set_fault(Fault::ContentFilter);
    for stream in [false, true] {
        let (status, _, body) = send_full(mock.addr(), azure(stream)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let error = &json(&body)["error"];
        assert_eq!(error["code"], "content_filter");
        assert_eq!(error["param"], "prompt");
        assert_eq!(error["status"], 400);
        assert_eq!(error["innererror"]["code"], "ResponsibleAIPolicyViolation");
        let results = &error["innererror"]["content_filter_result"];
        assert_eq!(results["violence"]["filtered"], true);
        assert_eq!(results["hate"]["filtered"], false);
    }
    assert_eq!(mock.stats().faulted, 2);
    mock.shutdown().await;

    let mock = MockProvider::start(MockConfig::openai()).await.unwrap();
    mock.set_fault(Fault::ContentFilter);
    let body = json!({ "model": "m", "messages": [] });
    let (status, _, answer) =
        send_full(mock.addr(), request("/v1/chat/completions", &[], &body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json(&answer)["error"]["code"], "content_policy_violation");
    mock.shutdown().await;

    let mock = start(MockConfig::gemini()).await;
    mock.set_fault(Fault::ContentFilter);
    let (status, _, body) = send_full(mock.addr(), gemini(GEMINI_CHAT)).await;
    assert_eq!(status, StatusCode::OK);
    let body = json(&body);
    assert_eq!(body["promptFeedback"]["blockReason"], "SAFETY");
    assert!(body.get("candidates").is_none());
    let (status, _, raw) = send_full(mock.addr(), gemini(GEMINI_STREAM)).await;
    assert_eq!(status, StatusCode::OK);
    let raw = String::from_utf8(raw.to_vec()).unwrap();
    let data = raw
        .strip_prefix("data: ")
        .unwrap()
        .strip_suffix("\r\n\r\n")
        .unwrap();
    assert_eq!(
        json(data.as_bytes())["promptFeedback"]["blockReason"],
        "SAFETY"
    );
    mock.shutdown().await;

    let mock = start(MockConfig::bedrock()).await;
    mock.set_fault(Fault::ContentFilter);
    let (status, _, body) = send_full(mock.addr(), bedrock("converse")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["stopReason"], "guardrail_intervened");
    let response = within(send(mock.addr(), bedrock("converse-stream")))
        .await
        .unwrap();
    let (frames, error) = read_frames(response.into_body()).await;
    assert_eq!(error, None);
    let stop = frames
        .iter()
        .find(|f| frame_header(f, ":event-type") == "messageStop")
        .unwrap();
    assert_eq!(payload(stop)["stopReason"], "guardrail_intervened");
    mock.shutdown().await;
}
