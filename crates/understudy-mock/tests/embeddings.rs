//! Embeddings in each format that serves them, their faults, and the 404s
//! of the formats that serve none, over real loopback sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::time::Instant;
use understudy_mock::{Fault, FaultPlan, MockConfig, MockProvider};

use support::{connect, eventually, json, send, send_full, within};

const OPENAI: &str = "/v1/embeddings";
const AZURE: &str = "/openai/deployments/ada-prod/embeddings?api-version=2024-10-21";
const GEMINI_BATCH: &str = "/v1beta/models/text-embedding-004:batchEmbedContents";
const GEMINI_ONE: &str = "/v1beta/models/text-embedding-004:embedContent";

async fn start(config: MockConfig, name: &str) -> MockProvider {
    MockProvider::start(config.name(name)).await.unwrap()
}

fn plan(spec: &str) -> FaultPlan {
    spec.parse().unwrap()
}

fn post(path: &str, body: &Value) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "mock")
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-test")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn post_json(mock: &MockProvider, path: &str, body: &Value) -> (StatusCode, Value) {
    let (status, _, body) = send_full(mock.addr(), post(path, body)).await;
    (status, json(&body))
}

/// The numbers of a JSON array, as `f32`s.
fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| {
            #[allow(clippy::cast_possible_truncation)]
            let v = v.as_f64().unwrap() as f32;
            v
        })
        .collect()
}

/// Decodes standard base64 into little-endian `f32`s.
fn base64_floats(text: &str) -> Vec<f32> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    assert_eq!(text.len() % 4, 0, "padded base64: {text}");
    let mut bytes = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let sextets: Vec<u32> = chunk
            .iter()
            .filter(|&&c| c != b'=')
            .map(|c| u32::try_from(ALPHABET.iter().position(|a| a == c).unwrap()).unwrap())
            .collect();
        let group = sextets
            .iter()
            .enumerate()
            .fold(0, |group, (i, s)| group | s << (18 - 6 * i));
        let group = group.to_be_bytes();
        bytes.extend_from_slice(&group[1..sextets.len()]);
    }
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn assert_unit(vector: &[f32]) {
    let norm: f32 = vector.iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-4, "not unit length: {vector:?}");
}

#[tokio::test]
async fn openai_embeddings_are_deterministic_unit_vectors() {
    let mock = start(MockConfig::openai(), "primary").await;
    let body = json!({ "model": "text-embedding-3-small", "input": "hello world" });
    let (status, headers, raw) = send_full(mock.addr(), post(OPENAI, &body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-mock-name"], "primary");
    let answer = json(&raw);
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], "text-embedding-3-small");
    assert_eq!(
        answer["usage"],
        json!({ "prompt_tokens": 2, "total_tokens": 2 })
    );
    let data = answer["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["object"], "embedding");
    assert_eq!(data[0]["index"], 0);
    let vector = floats(&data[0]["embedding"]);
    assert_eq!(vector.len(), 8);
    assert_unit(&vector);

    // The same input, the same vector; another mock, another vector.
    let (_, again) = post_json(&mock, OPENAI, &body).await;
    assert_eq!(floats(&again["data"][0]["embedding"]), vector);
    let other = start(MockConfig::openai(), "backup").await;
    let (_, theirs) = post_json(&other, OPENAI, &body).await;
    assert_ne!(floats(&theirs["data"][0]["embedding"]), vector);

    let recorded = mock.last_request().unwrap();
    assert_eq!(recorded.path, OPENAI);
    assert_eq!(recorded.headers["authorization"], "Bearer sk-test");
    assert_eq!(recorded.json().unwrap(), body);

    let stats = mock.stats();
    assert_eq!(
        (
            stats.requests,
            stats.embeddings_requests,
            stats.chat_requests,
            stats.served_ok
        ),
        (2, 2, 0, 2)
    );
    assert_eq!(stats.by_path[OPENAI], 2);
    other.shutdown().await;
    mock.shutdown().await;
}

#[tokio::test]
async fn openai_embeddings_take_arrays_tokens_dimensions_and_base64() {
    let mock = start(MockConfig::openai(), "primary").await;
    let texts = json!(["a", "b c"]);
    let (status, floats_answer) = post_json(
        &mock,
        OPENAI,
        &json!({ "model": "m", "input": texts, "dimensions": 16, "encoding_format": "float" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(floats_answer["usage"]["prompt_tokens"], 3);
    let (status, base64_answer) = post_json(
        &mock,
        OPENAI,
        &json!({ "model": "m", "input": texts, "dimensions": 16, "encoding_format": "base64" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for i in 0..2 {
        assert_eq!(floats_answer["data"][i]["index"], i);
        assert_eq!(base64_answer["data"][i]["index"], i);
        let vector = floats(&floats_answer["data"][i]["embedding"]);
        assert_eq!(vector.len(), 16);
        assert_unit(&vector);
        let decoded = base64_floats(base64_answer["data"][i]["embedding"].as_str().unwrap());
        assert_eq!(decoded, vector, "base64 holds the same f32s");
    }
    assert_ne!(
        floats_answer["data"][0]["embedding"],
        floats_answer["data"][1]["embedding"]
    );

    // Tokens: one list is one input, a list of lists is one each.
    let (_, one) = post_json(&mock, OPENAI, &json!({ "model": "m", "input": [1, 2, 3] })).await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    assert_eq!(one["usage"]["prompt_tokens"], 3);
    let (_, two) = post_json(
        &mock,
        OPENAI,
        &json!({ "model": "m", "input": [[1, 2], [3]] }),
    )
    .await;
    assert_eq!(two["data"].as_array().unwrap().len(), 2);
    assert_eq!(two["usage"]["total_tokens"], 3);
    assert_eq!(two["data"][1]["index"], 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn invalid_embeddings_requests_are_400s_that_spend_no_rule() {
    let mock = start(MockConfig::openai(), "primary").await;
    mock.set_fault(plan("status:503*1"));
    for body in [
        json!({ "model": "m" }),
        json!({ "input": "x" }),
        json!({ "model": "m", "input": [] }),
        json!({ "model": "m", "input": "x", "encoding_format": "hex" }),
        json!({ "model": "m", "input": "x", "dimensions": 0 }),
        json!({ "model": "m", "input": "x", "dimensions": 100_000 }),
        json!({ "model": "m", "input": [[1], []] }),
    ] {
        let (status, answer) = post_json(&mock, OPENAI, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"]["type"], "invalid_request_error", "{body}");
    }
    let (status, _) = post_json(&mock, OPENAI, &json!({ "model": "m", "input": "x" })).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let stats = mock.stats();
    assert_eq!((stats.rejected, stats.faulted), (7, 1));
    mock.shutdown().await;
}

#[tokio::test]
async fn openai_embeddings_fail_in_openais_shape() {
    let mock = start(MockConfig::openai(), "primary").await;
    mock.set_fault(plan("rate-limit:7*1,status:503*1"));
    let body = json!({ "model": "m", "input": "x" });
    let (status, headers, raw) = send_full(mock.addr(), post(OPENAI, &body)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(headers["retry-after-ms"], "7000");
    assert_eq!(json(&raw)["error"]["type"], "rate_limit_error");
    let (status, answer) = post_json(&mock, OPENAI, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"]["type"], "server_error");
    assert_eq!(answer["error"]["code"], "overloaded");
    let (status, _) = post_json(&mock, OPENAI, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mock.stats().faulted, 2);
    mock.shutdown().await;
}

#[tokio::test]
async fn every_fault_applies_to_embeddings() {
    let mock = start(MockConfig::openai(), "primary").await;
    let body = json!({ "model": "m", "input": "x", "dimensions": 64 });
    let (_, healthy) = post_json(&mock, OPENAI, &body).await;

    // garbage: 200, JSON content type, not JSON.
    mock.set_fault(Fault::Garbage);
    let (status, headers, raw) = send_full(mock.addr(), post(OPENAI, &body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert!(serde_json::from_slice::<Value>(&raw).is_err());

    // error-event: 200 with an error envelope.
    mock.set_fault(Fault::ErrorEvent);
    let (status, answer) = post_json(&mock, OPENAI, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["error"]["type"], "server_error");

    // content-filter: no provider filters inputs to embed, so a 400.
    mock.set_fault(Fault::ContentFilter);
    let (status, answer) = post_json(&mock, OPENAI, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["type"], "invalid_request_error");

    // drip: the whole answer, in pieces.
    mock.set_fault(Fault::Drip(Duration::from_millis(1)));
    let (status, answer) = post_json(&mock, OPENAI, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, healthy);

    // delay: the head after the wait.
    mock.set_fault(Fault::Delay(Duration::from_millis(150)));
    let started = Instant::now();
    let (status, answer) = post_json(&mock, OPENAI, &body).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!((status, answer), (StatusCode::OK, healthy.clone()));

    // drop-after: the head and part of the body, then the cut.
    mock.set_fault(Fault::DropAfter(2));
    let response = within(send(mock.addr(), post(OPENAI, &body)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut stream = response.into_body();
    let mut received = 0;
    loop {
        match within(stream.frame()).await {
            Some(Ok(frame)) => received += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(_)) => break,
            None => panic!("the body ended without an error"),
        }
    }
    assert!(received > 0 && received < length, "{received} of {length}");

    // reset: the request is read, then the connection closed unanswered.
    mock.set_fault(Fault::Reset);
    let mut connection = connect(mock.addr()).await.unwrap();
    let error = within(connection.send(post(OPENAI, &body)))
        .await
        .unwrap_err();
    assert!(error.is_incomplete_message(), "{error:?}");

    // hang: no answer while the client waits.
    mock.set_fault(Fault::Hang);
    let mut connection = connect(mock.addr()).await.unwrap();
    let pending = tokio::time::timeout(
        Duration::from_millis(200),
        connection.send(post(OPENAI, &body)),
    )
    .await;
    assert!(pending.is_err(), "no head within the timeout");
    drop(connection);
    eventually("the connections to close", || {
        mock.stats().open_connections == 0
    })
    .await;

    let stats = mock.stats();
    assert_eq!(stats.embeddings_requests, 9);
    assert_eq!(stats.faulted, 8);
    mock.shutdown().await;
}

#[tokio::test]
async fn azure_embeddings_name_the_deployment_and_need_an_api_version() {
    let mock = start(MockConfig::azure(), "azure").await;
    let body = json!({ "input": ["hello", "world"], "encoding_format": "base64" });
    let (status, answer) = post_json(&mock, AZURE, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], "ada-prod");
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);
    let first = base64_floats(answer["data"][0]["embedding"].as_str().unwrap());
    assert_eq!(first.len(), 8);
    assert_unit(&first);

    let (status, answer) =
        post_json(&mock, AZURE, &json!({ "input": "hello", "dimensions": 3 })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(floats(&answer["data"][0]["embedding"]).len(), 3);
    assert_eq!(
        mock.last_request().unwrap().path,
        "/openai/deployments/ada-prod/embeddings"
    );

    let (status, answer) = post_json(&mock, "/openai/deployments/ada-prod/embeddings", &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer,
        json!({ "error": { "code": "404", "message": "Resource not found" } })
    );

    mock.set_fault(plan("rate-limit:4*1,status:503*1"));
    let (status, headers, raw) = send_full(mock.addr(), post(AZURE, &body)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "4");
    assert_eq!(headers["x-ratelimit-reset-requests"], "4");
    assert_eq!(json(&raw)["error"]["code"], "429");
    let (status, answer) = post_json(&mock, AZURE, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"]["code"], "503");

    let stats = mock.stats();
    assert_eq!(stats.embeddings_requests, 4);
    assert_eq!(
        stats.by_path["/openai/deployments/{deployment}/embeddings"],
        4
    );
    assert_eq!(stats.by_path["other"], 1);
    mock.shutdown().await;
}

fn gemini_request(text: &str, dimensions: Option<u64>) -> Value {
    let mut request = json!({
        "model": "models/text-embedding-004",
        "content": { "parts": [{ "text": text }] },
        "taskType": "RETRIEVAL_DOCUMENT",
    });
    if let Some(dimensions) = dimensions {
        request["outputDimensionality"] = json!(dimensions);
    }
    request
}

#[tokio::test]
async fn gemini_embeddings_are_batches_of_values() {
    let mock = start(MockConfig::gemini(), "primary").await;
    let body = json!({
        "requests": [gemini_request("hello", None), gemini_request("world", Some(4))],
    });
    let (status, answer) = post_json(&mock, GEMINI_BATCH, &body).await;
    assert_eq!(status, StatusCode::OK);
    let embeddings = answer["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    let hello = floats(&embeddings[0]["values"]);
    assert_eq!(hello.len(), 8);
    assert_unit(&hello);
    assert_eq!(floats(&embeddings[1]["values"]).len(), 4);

    // One input: `embedContent`, the same vector.
    let (status, one) = post_json(&mock, GEMINI_ONE, &gemini_request("hello", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(floats(&one["embedding"]["values"]), hello);

    // A mock of another format with the same name embeds alike.
    let openai = start(MockConfig::openai(), "primary").await;
    let (_, theirs) = post_json(&openai, OPENAI, &json!({ "model": "m", "input": "hello" })).await;
    assert_eq!(floats(&theirs["data"][0]["embedding"]), hello);
    openai.shutdown().await;

    // The requests must name the path's model.
    let (status, answer) = post_json(
        &mock,
        GEMINI_BATCH,
        &json!({ "requests": [{ "model": "models/other", "content": { "parts": [{ "text": "x" }] } }] }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT");

    let stats = mock.stats();
    assert_eq!(stats.embeddings_requests, 3);
    assert_eq!(
        stats.by_path["/v1beta/models/{model}:batchEmbedContents"],
        2
    );
    assert_eq!(stats.by_path["/v1beta/models/{model}:embedContent"], 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn gemini_embeddings_fail_in_googles_shape() {
    let mock = start(MockConfig::gemini(), "primary").await;
    mock.set_fault(plan("rate-limit:9*1,status:503*1"));
    let body = json!({ "requests": [gemini_request("x", None)] });
    let (status, answer) = post_json(&mock, GEMINI_BATCH, &body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer["error"]["code"], 429);
    assert_eq!(answer["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(answer["error"]["details"][0]["retryDelay"], "9s");
    let (status, answer) = post_json(&mock, GEMINI_BATCH, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"]["status"], "UNAVAILABLE");
    mock.shutdown().await;
}

#[tokio::test]
async fn anthropic_and_bedrock_serve_no_embeddings() {
    let mock = start(MockConfig::anthropic(), "claude").await;
    mock.set_fault(plan("status:503"));
    let (status, answer) = post_json(&mock, OPENAI, &json!({ "model": "m", "input": "x" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["type"], "error");
    assert_eq!(answer["error"]["type"], "not_found_error");
    let stats = mock.stats();
    assert_eq!((stats.embeddings_requests, stats.faulted), (0, 0));
    assert_eq!(stats.by_path[OPENAI], 1);
    mock.shutdown().await;

    let mock = start(MockConfig::bedrock(), "titan").await;
    mock.set_fault(plan("status:503"));
    let path = "/model/amazon.titan-embed-text-v2%3A0/invoke";
    let (status, headers, raw) =
        send_full(mock.addr(), post(path, &json!({ "inputText": "x" }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        headers["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .starts_with("ResourceNotFoundException"),
        "{headers:?}"
    );
    assert!(json(&raw)["message"].is_string());
    let stats = mock.stats();
    assert_eq!((stats.embeddings_requests, stats.faulted), (0, 0));
    assert_eq!(stats.by_path["other"], 1);
    mock.shutdown().await;
}
