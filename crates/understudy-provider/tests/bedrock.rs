//! The Bedrock provider against a loopback server speaking the Converse
//! API: JSON answers, `application/vnd.amazon.eventstream` streams, Bedrock
//! errors, and a `SigV4` verifier of its own checking every signature.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fmt::Write;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use understudy_core::{ClassifiedError, ClientErrorKind, FailureKind, Outcome};
use understudy_provider::{AwsCredentials, DialectOptions, ProviderKind, ProviderService};

use support::{
    Captured, TestBody, assert_stream_error, caller_request, client, data_lines, json, serve, text,
    within,
};

const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLETOKEN//////////wEaCXVzLWVhc3QtMSJH";
const REGION: &str = "us-east-1";
const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

fn bedrock(base_url: &str, session_token: Option<&str>) -> ProviderService {
    let credentials = AwsCredentials::new(ACCESS_KEY_ID, SECRET, session_token.map(str::to_owned));
    ProviderService::with_options(
        client(),
        ProviderKind::Bedrock,
        &DialectOptions::default()
            .region(REGION)
            .aws_credentials(credentials),
        base_url,
        None,
        MODEL,
    )
    .unwrap()
}

// ===== An independent SigV4 verifier =====

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn uri_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The canonical URI of a path as received: every segment encoded once
/// more (for every service but S3, `SigV4` signs the encoded path
/// encoded again).
fn canonical_uri(path: &str) -> String {
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

fn canonical_query(query: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (uri_encode(name), uri_encode(value))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// What the `authorization` header says.
struct Authorization {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Result<Authorization, String> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=').ok_or("malformed part")?;
        match name {
            "Credential" => credential = Some(value.to_owned()),
            "SignedHeaders" => signed = Some(value.to_owned()),
            "Signature" => signature = Some(value.to_owned()),
            _ => return Err(format!("unknown part {name}")),
        }
    }
    let credential = credential.ok_or("no Credential")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(format!("bad credential scope {credential}"));
    };
    Ok(Authorization {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed
            .ok_or("no SignedHeaders")?
            .split(';')
            .map(str::to_owned)
            .collect(),
        signature: signature.ok_or("no Signature")?,
    })
}

/// Verifies a request's `SigV4` signature as AWS would, with `secret`:
/// rebuilds the canonical request from what was received, the string to
/// sign, the derived key, and compares signatures.
fn verify_sigv4(request: &Captured, secret: &str) -> Result<Authorization, String> {
    let header = |name: &str| -> Result<String, String> {
        let values: Vec<String> = request
            .headers
            .get_all(name)
            .iter()
            .map(|v| {
                v.to_str()
                    .unwrap()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(format!("signed header {name} was not received"));
        }
        Ok(values.join(","))
    };
    let auth = parse_authorization(&header("authorization")?)?;
    if !auth.signed_headers.windows(2).all(|w| w[0] < w[1]) {
        return Err("signed headers are not sorted".to_owned());
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(format!("{required} is not signed"));
        }
    }
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let _ = writeln!(canonical_headers, "{name}:{}", header(name)?);
    }
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_uri(request.uri.path()),
        canonical_query(request.uri.query()),
        canonical_headers,
        auth.signed_headers.join(";"),
        sha256_hex(&request.body),
    );
    let amz_date = header("x-amz-date")?;
    if !amz_date.starts_with(&auth.date) {
        return Err("x-amz-date is not the credential's date".to_owned());
    }
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let key = hmac(format!("AWS4{secret}").as_bytes(), &auth.date);
    let key = hmac(&key, &auth.region);
    let key = hmac(&key, &auth.service);
    let key = hmac(&key, "aws4_request");
    let expected = hex::encode(hmac(&key, &string_to_sign));
    if expected != auth.signature {
        return Err("signature mismatch".to_owned());
    }
    Ok(auth)
}

/// The request was signed by our credentials for Bedrock in the region,
/// verifies, stops verifying once its body is changed, and never shows
/// the secret (or the signing key) in a header.
fn assert_signed(sent: &Captured) -> Authorization {
    let auth = verify_sigv4(sent, SECRET).unwrap();
    assert_eq!(auth.access_key_id, ACCESS_KEY_ID);
    assert_eq!(auth.region, REGION);
    assert_eq!(auth.service, "bedrock");
    assert!(auth.signed_headers.iter().any(|h| h == "content-type"));
    let date = sent.headers["x-amz-date"].to_str().unwrap();
    assert_eq!(date.len(), 16);
    assert!(date.ends_with('Z'));

    let mut tampered = sent.clone();
    let mut body = tampered.body.to_vec();
    body.push(b' ');
    tampered.body = Bytes::from(body);
    assert_eq!(
        verify_sigv4(&tampered, SECRET).err().as_deref(),
        Some("signature mismatch")
    );
    assert!(verify_sigv4(sent, "not-the-secret").is_err());
    let mut other_path = sent.clone();
    other_path.uri = other_path.uri.path().replace("%3A", ":").parse().unwrap();
    assert!(verify_sigv4(&other_path, SECRET).is_err());

    for (name, value) in &sent.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(!value.contains(SECRET), "{name} carries the secret");
        assert!(
            !value.contains("caller-secret"),
            "{name} carries the caller's key"
        );
    }
    auth
}

// ===== The Converse wire format =====

const CONVERSE_ANSWER: &str = r#"{
  "output": {"message": {"role": "assistant", "content": [
    {"text": "I'll check the weather for you."},
    {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_current_weather", "input": {"location": "Boston, MA"}}}
  ]}},
  "stopReason": "tool_use",
  "usage": {"inputTokens": 412, "outputTokens": 57, "totalTokens": 469},
  "metrics": {"latencyMs": 1206}
}"#;

fn frame(message_type: &str, kind_header: &str, kind: &str, payload: &Value) -> Vec<u8> {
    let message = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(message_type.to_owned().into()),
        ))
        .add_header(Header::new(
            kind_header.to_owned(),
            HeaderValue::String(kind.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

fn event(kind: &str, payload: &Value) -> Vec<u8> {
    frame("event", ":event-type", kind, payload)
}

/// A `ConverseStream` answer whose frames are sent in pieces that cut
/// frames in two, as a network would.
fn event_stream(frames: &[Vec<u8>]) -> Response<TestBody> {
    let bytes: Vec<u8> = frames.concat();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        for piece in bytes.chunks(37) {
            if tx.send(Bytes::copy_from_slice(piece)).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .header("content-type", "application/vnd.amazon.eventstream")
        .header("x-amzn-requestid", "8d6d2d04-0000-4000-8000-000000000000")
        .body(TestBody::Channel(rx))
        .unwrap()
}

fn bedrock_error(status: u16, name: &str, message: &str) -> Response<TestBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header(
            "x-amzn-ErrorType",
            format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        )
        .body(TestBody::Full(Some(Bytes::from(
            json!({ "message": message }).to_string(),
        ))))
        .unwrap()
}

const OPENAI_REQUEST: &str = r#"{
  "model": "chat",
  "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What's the weather in Boston?"}
  ],
  "tools": [{"type": "function", "function": {
    "name": "get_current_weather",
    "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
  }}],
  "tool_choice": "auto",
  "max_tokens": 512,
  "temperature": 0.3
}"#;

// ===== Tests =====

#[tokio::test]
async fn a_whole_answer_is_signed_sent_and_translated() {
    let mut server = serve(|_| async { json(200, CONVERSE_ANSWER) }).await;
    let service = bedrock(&server.origin(), None);
    assert!(!service.can_probe());
    let response = within(service.oneshot(caller_request(OPENAI_REQUEST)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let completion: Value = serde_json::from_str(&text(response.into_body()).await).unwrap();

    let sent = server.request().await;
    assert_eq!(sent.method, "POST");
    assert_eq!(
        sent.uri.path(),
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    assert_eq!(sent.headers["content-type"], "application/json");
    assert!(sent.headers.get("x-amz-security-token").is_none());
    for name in ["x-api-key", "cookie", "anthropic-version"] {
        assert!(sent.headers.get(name).is_none(), "{name} was forwarded");
    }
    let auth = assert_signed(&sent);
    assert_eq!(auth.signed_headers, ["content-type", "host", "x-amz-date"]);
    assert_eq!(
        sent.json(),
        json!({
            "system": [{"text": "You are a helpful assistant."}],
            "messages": [{"role": "user", "content": [{"text": "What's the weather in Boston?"}]}],
            "inferenceConfig": {"maxTokens": 512, "temperature": 0.3},
            "toolConfig": {
                "tools": [{"toolSpec": {
                    "name": "get_current_weather",
                    "description": "Get the current weather in a given location",
                    "inputSchema": {"json": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}
                }}],
                "toolChoice": {"auto": {}}
            }
        })
    );

    assert!(completion["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(completion["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(completion["model"], MODEL);
    assert_eq!(
        completion["choices"][0],
        json!({
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "I'll check the weather for you.",
                "refusal": null,
                "tool_calls": [{
                    "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": "{\"location\":\"Boston, MA\"}"}
                }]
            },
            "logprobs": null,
            "finish_reason": "tool_calls"
        })
    );
    assert_eq!(
        completion["usage"],
        json!({"prompt_tokens": 412, "completion_tokens": 57, "total_tokens": 469})
    );
}

#[tokio::test]
async fn a_session_token_is_sent_and_signed() {
    let mut server = serve(|_| async { json(200, CONVERSE_ANSWER) }).await;
    let service = bedrock(&server.origin(), Some(SESSION_TOKEN));
    let response = within(service.oneshot(caller_request(OPENAI_REQUEST)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let sent = server.request().await;
    assert_eq!(sent.headers["x-amz-security-token"], SESSION_TOKEN);
    let auth = assert_signed(&sent);
    assert_eq!(
        auth.signed_headers,
        ["content-type", "host", "x-amz-date", "x-amz-security-token"]
    );
    // A token changed on the way fails verification.
    let mut swapped = sent.clone();
    swapped
        .headers
        .insert("x-amz-security-token", "another-token".parse().unwrap());
    assert!(verify_sigv4(&swapped, SECRET).is_err());
}

#[tokio::test]
async fn an_arn_model_id_is_one_encoded_segment_and_signs() {
    let mut server = serve(|_| async { json(200, CONVERSE_ANSWER) }).await;
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0";
    let service = ProviderService::with_options(
        client(),
        ProviderKind::Bedrock,
        &DialectOptions::default()
            .region(REGION)
            .aws_credentials(AwsCredentials::new(ACCESS_KEY_ID, SECRET, None)),
        &server.origin(),
        None,
        arn,
    )
    .unwrap();
    let response = within(service.oneshot(caller_request(OPENAI_REQUEST)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let sent = server.request().await;
    assert_eq!(
        sent.uri.path(),
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse"
    );
    assert_signed(&sent);
}

fn text_stream_frames() -> Vec<Vec<u8>> {
    vec![
        event("messageStart", &json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": "Sunny"}, "p": "abcdefgh"}),
        ),
        event(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": " and 22C."}}),
        ),
        event("contentBlockStop", &json!({"contentBlockIndex": 0})),
        event("messageStop", &json!({"stopReason": "end_turn"})),
        event(
            "metadata",
            &json!({"usage": {"inputTokens": 25, "outputTokens": 6, "totalTokens": 31}, "metrics": {"latencyMs": 320}}),
        ),
    ]
}

#[tokio::test]
async fn a_stream_with_usage_is_translated() {
    let mut server = serve(|_| async { event_stream(&text_stream_frames()) }).await;
    let body = r#"{"model":"chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Weather?"}]}"#;
    let response = within(bedrock(&server.origin(), None).oneshot(caller_request(body)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let sse = text(response.into_body()).await;

    let sent = server.request().await;
    assert_eq!(
        sent.uri.path(),
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    );
    assert_signed(&sent);

    let lines = data_lines(&sse);
    assert_eq!(lines.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(chunks.len(), 5);
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for chunk in &chunks {
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], MODEL);
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Sunny and 22C.");
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[3]["usage"], Value::Null);
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(
        chunks[4]["usage"],
        json!({"prompt_tokens": 25, "completion_tokens": 6, "total_tokens": 31})
    );
}

#[tokio::test]
async fn a_streamed_tool_call_is_translated() {
    let server = serve(|_| async {
        event_stream(&[
            event("messageStart", &json!({"role": "assistant"})),
            event(
                "contentBlockStart",
                &json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_current_weather"}}}),
            ),
            event(
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"location\": "}}}),
            ),
            event(
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "\"Boston, MA\"}"}}}),
            ),
            event("contentBlockStop", &json!({"contentBlockIndex": 0})),
            event("messageStop", &json!({"stopReason": "tool_use"})),
            event(
                "metadata",
                &json!({"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}),
            ),
        ])
    })
    .await;
    let mut request: Value = serde_json::from_str(OPENAI_REQUEST).unwrap();
    request["stream"] = json!(true);
    let response =
        within(bedrock(&server.origin(), None).oneshot(caller_request(&request.to_string())))
            .await
            .unwrap();
    let sse = text(response.into_body()).await;
    let lines = data_lines(&sse);
    assert_eq!(lines.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(
        chunks[1]["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "id": "tooluse_abc", "type": "function", "function": {"name": "get_current_weather", "arguments": ""}}])
    );
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"location\": \"Boston, MA\"}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

async fn error_answer(
    status: u16,
    name: &'static str,
    message: &'static str,
) -> (StatusCode, Outcome, Value) {
    let server = serve(move |_| async move { bedrock_error(status, name, message) }).await;
    let response = within(bedrock(&server.origin(), None).oneshot(caller_request(OPENAI_REQUEST)))
        .await
        .unwrap();
    let status = response.status();
    let outcome = *response.extensions().get::<Outcome>().unwrap();
    let body = serde_json::from_str(&text(response.into_body()).await).unwrap();
    (status, outcome, body)
}

#[tokio::test]
async fn throttling_is_rate_limited() {
    let (status, outcome, body) = error_answer(
        429,
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        outcome,
        Outcome::Failure(FailureKind::RateLimited { retry_after: None })
    );
    assert_eq!(
        body["error"]["message"],
        "Too many requests, please wait before trying again."
    );
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn unavailable_and_not_ready_are_overloaded() {
    let (status, outcome, body) = error_answer(
        503,
        "ServiceUnavailableException",
        "Service is unavailable.",
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(outcome, Outcome::Failure(FailureKind::Overloaded));
    assert_eq!(body["error"]["code"], "overloaded");
    let (status, outcome, _) =
        error_answer(429, "ModelNotReadyException", "Model is not ready.").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(outcome, Outcome::Failure(FailureKind::Overloaded));
}

#[tokio::test]
async fn validation_errors_are_the_callers() {
    let (status, outcome, body) = error_answer(
        400,
        "ValidationException",
        "The model returned the following errors: temperature: range: 0..1",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        outcome,
        Outcome::ClientError(ClientErrorKind::Rejected(StatusCode::BAD_REQUEST))
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(
        body["error"]["message"],
        "The model returned the following errors: temperature: range: 0..1"
    );
    let (_, outcome, body) = error_answer(
        400,
        "ValidationException",
        "Input is too long for requested model.",
    )
    .await;
    assert_eq!(
        outcome,
        Outcome::ClientError(ClientErrorKind::ContextLengthExceeded)
    );
    assert_eq!(body["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn an_exception_frame_before_content_is_a_classified_body_error() {
    let server = serve(|_| async {
        event_stream(&[
            event("messageStart", &json!({"role": "assistant"})),
            frame(
                "exception",
                ":exception-type",
                "throttlingException",
                &json!({"message": "Too many tokens, please wait before trying again."}),
            ),
        ])
    })
    .await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(bedrock(&server.origin(), None).oneshot(caller_request(body)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    // The role chunk, then the error.
    let role = within(body.frame()).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(role.data_ref().unwrap()).contains("\"role\":\"assistant\""));
    let error = within(body.frame()).await.unwrap().unwrap_err();
    assert_stream_error(
        &error,
        Outcome::Failure(FailureKind::RateLimited { retry_after: None }),
        "throttlingException",
    );
    assert!(within(body.frame()).await.is_none());
}

#[tokio::test]
async fn a_stream_cut_before_message_stop_is_broken() {
    let server = serve(|_| async {
        let mut frames = text_stream_frames();
        frames.truncate(3);
        event_stream(&frames)
    })
    .await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = within(bedrock(&server.origin(), None).oneshot(caller_request(body)))
        .await
        .unwrap();
    let collected = within(response.into_body().collect()).await;
    let error = collected.err().unwrap();
    let classified = error.downcast_ref::<ClassifiedError>().unwrap();
    assert_eq!(
        classified.outcome(),
        Outcome::Failure(FailureKind::StreamBroken)
    );
}
