//! The OpenAI-compatible provider against a loopback server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tower::ServiceExt;
use understudy_core::{
    BoxError, ClassifiedError, Classify, ClientErrorKind, FailureKind, LlmClassifier, Outcome,
};
use understudy_provider::{ApiKey, ClientConfig, HttpClient, ProviderService};

use support::{
    answer, caller_request, client, data_lines, json, next_data, serve, sse, text, within,
};

const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

fn openai(base_url: &str) -> ProviderService {
    ProviderService::openai(
        client(),
        base_url,
        Some(ApiKey::new("sk-provider")),
        "gpt-4o-mini",
    )
    .unwrap()
}

#[tokio::test]
async fn passes_the_body_through_rewriting_only_model_and_injects_the_key() {
    let mut server = serve(|_| async { json(200, COMPLETION) }).await;
    let body = r#"{
  "model" : "chat",
  "messages": [{"role": "user", "content": "say \"model\": hi", "model": "nested"}],
  "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
  "stream_options": {"include_usage": true},
  "temperature": 0.70,
  "x_future_field": [1e3, null, {"model": "deep"}]
}"#;
    let response = within(openai(&format!("{}/", server.base_url())).oneshot(caller_request(body)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(text(response.into_body()).await, COMPLETION);

    let sent = server.request().await;
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.uri.path(), "/v1/chat/completions");
    assert_eq!(
        std::str::from_utf8(&sent.body).unwrap(),
        body.replacen("\"chat\"", "\"gpt-4o-mini\"", 1)
    );
    assert_eq!(sent.headers["authorization"], "Bearer sk-provider");
    assert_eq!(sent.headers["content-type"], "application/json");
    assert_eq!(sent.headers["user-agent"], "openai-python/1.50");
    assert_eq!(sent.headers["x-request-id"], "req-123");
    assert_eq!(sent.headers["host"], server.addr.to_string());
    assert_eq!(sent.headers["content-length"], sent.body.len().to_string());
    for name in [
        "x-api-key",
        "anthropic-version",
        "cookie",
        "accept-encoding",
    ] {
        assert!(sent.headers.get(name).is_none(), "{name} was forwarded");
    }
}

#[tokio::test]
async fn inserts_a_missing_model_and_sends_no_key_without_one() {
    let mut server = serve(|_| async { json(200, COMPLETION) }).await;
    let service =
        ProviderService::openai(client(), &server.base_url(), None, "llama3.1:8b").unwrap();
    let response = within(service.oneshot(caller_request(r#"{"messages":[]}"#)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let sent = server.request().await;
    assert_eq!(sent.body, r#"{"model":"llama3.1:8b","messages":[]}"#);
    assert!(sent.headers.get("authorization").is_none());
}

#[tokio::test]
async fn invalid_json_is_the_callers_fault_and_is_not_sent() {
    let server = serve(|_| async { json(200, COMPLETION) }).await;
    let response = within(openai(&server.base_url()).oneshot(caller_request("{\"model\":")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::ClientError(ClientErrorKind::Rejected(
            StatusCode::BAD_REQUEST
        )))
    );
    let body: serde_json::Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn rate_limit_keeps_its_headers_body_and_wait() {
    let limited = r#"{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    let server = serve(move |_| async move {
        let mut response = json(429, limited);
        let headers = response.headers_mut();
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        headers.insert("x-ratelimit-remaining-requests", "0".parse().unwrap());
        headers.insert("set-cookie", "__cf_bm=1".parse().unwrap());
        headers.insert("connection", "keep-alive".parse().unwrap());
        response
    })
    .await;
    // By default the wait travels in the outcome, not in the headers.
    let response = within(openai(&server.base_url()).oneshot(caller_request(r#"{"model":"x"}"#)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        LlmClassifier::new().classify_response(&response),
        Outcome::Failure(FailureKind::RateLimited {
            retry_after: Some(Duration::from_millis(1500))
        })
    );
    assert!(response.headers().get("retry-after-ms").is_none());
    assert!(
        response
            .headers()
            .get("x-ratelimit-remaining-requests")
            .is_none()
    );
    assert!(response.headers().get("set-cookie").is_none());

    let service = openai(&server.base_url()).with_rate_limit_headers(true);
    let response = within(service.oneshot(caller_request(r#"{"model":"x"}"#)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let outcome = LlmClassifier::new().classify_response(&response);
    assert_eq!(
        outcome,
        Outcome::Failure(FailureKind::RateLimited {
            retry_after: Some(Duration::from_millis(1500))
        })
    );
    assert_eq!(response.headers()["retry-after-ms"], "1500");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "0");
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response.headers().get("connection").is_none());
    assert_eq!(text(response.into_body()).await, limited);
}

#[tokio::test]
async fn foreign_error_bodies_are_rewritten_in_the_openai_shape() {
    // vLLM's error object, without the envelope.
    let vllm = r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError","param":null,"code":400}"#;
    let server = serve(move |captured| async move {
        if captured.json().get("messages").is_some() {
            json(400, vllm)
        } else {
            answer(502, "text/html", "<html>bad gateway</html>")
        }
    })
    .await;
    let service = openai(&server.base_url());

    let response = within(
        service
            .clone()
            .oneshot(caller_request(r#"{"model":"x","messages":[]}"#)),
    )
    .await
    .unwrap();
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::ClientError(
            ClientErrorKind::ContextLengthExceeded
        ))
    );
    let body: serde_json::Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length")
    );

    let response = within(service.oneshot(caller_request("{}"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::Failure(FailureKind::Server(
            StatusCode::BAD_GATEWAY
        )))
    );
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(&text(response.into_body()).await).unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(body["error"]["message"], "upstream returned 502");
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
                tx.send(Bytes::from_static(
                    b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
                ))
                .await
                .unwrap();
                release.await.unwrap();
                tx.send(Bytes::from_static(
                    b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
                ))
                .await
                .unwrap();
            });
            response
        }
    })
    .await;
    let response = within(
        openai(&server.base_url()).oneshot(caller_request(r#"{"model":"x","stream":true}"#)),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let first = next_data(&mut body).await;
    assert!(std::str::from_utf8(&first).unwrap().contains("Hel"));

    release_tx.send(()).unwrap();
    let rest = text(body).await;
    assert!(rest.contains("\"lo\""));
    assert_eq!(data_lines(&rest).last(), Some(&"[DONE]"));
}

#[tokio::test]
async fn a_stream_cut_mid_way_is_a_classified_body_error() {
    let server = serve(|_| async {
        let (tx, response) = sse();
        tokio::spawn(async move {
            tx.send(Bytes::from_static(b"data: {\"choices\":[]}\n\n"))
                .await
                .unwrap();
        });
        // Announce more bytes than are sent, so the end is a cut.
        let (mut parts, body) = response.into_parts();
        parts
            .headers
            .insert("content-length", "1000".parse().unwrap());
        http::Response::from_parts(parts, body)
    })
    .await;
    let response = within(openai(&server.base_url()).oneshot(caller_request("{}")))
        .await
        .unwrap();
    let error = within(response.into_body().collect()).await.unwrap_err();
    assert_eq!(
        LlmClassifier::new().classify_error(&*error),
        Outcome::Failure(FailureKind::StreamBroken)
    );
}

#[tokio::test]
async fn refused_connections_classify_as_connect() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let error =
        within(openai(&format!("http://127.0.0.1:{port}/v1")).oneshot(caller_request("{}")))
            .await
            .unwrap_err();
    assert_eq!(
        LlmClassifier::new().classify_error(&*error),
        Outcome::Failure(FailureKind::Connect)
    );
    let classified = error.downcast_ref::<ClassifiedError>().unwrap();
    assert_eq!(classified.outcome(), Outcome::Failure(FailureKind::Connect));
    assert!(!format!("{error:?}").contains("sk-provider"));
}

/// A loopback listener whose accept queue is full and never drained: the
/// kernel drops further SYNs, so a connect neither succeeds nor fails.
#[tokio::test]
async fn a_connect_that_never_completes_times_out_promptly() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    let mut queue_full = false;
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => fillers.push(stream),
            Ok(Err(_)) => break,
            Err(_) => {
                queue_full = true;
                break;
            }
        }
    }

    let client =
        HttpClient::new(ClientConfig::default().connect_timeout(Duration::from_millis(200)))
            .unwrap();
    let service = ProviderService::openai(client, &format!("http://{addr}/v1"), None, "m").unwrap();
    let started = Instant::now();
    let error: BoxError = within(service.oneshot(caller_request("{}")))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    let outcome = LlmClassifier::new().classify_error(&*error);
    if queue_full {
        assert_eq!(outcome, Outcome::Failure(FailureKind::Timeout));
    } else {
        // A kernel that resets instead of dropping: still a connect failure.
        assert!(
            matches!(
                outcome,
                Outcome::Failure(FailureKind::Connect | FailureKind::Timeout)
            ),
            "{outcome:?}"
        );
    }
    drop(listener);
}

#[tokio::test]
async fn probe_asks_for_models_with_the_key() {
    let mut server = serve(|captured| async move {
        if captured.uri.path() == "/v1/models" {
            json(200, r#"{"object":"list","data":[]}"#)
        } else {
            json(404, "{}")
        }
    })
    .await;
    assert!(within(openai(&server.base_url()).probe()).await);
    let sent = server.request().await;
    assert_eq!(sent.method, "GET");
    assert_eq!(sent.headers["authorization"], "Bearer sk-provider");

    assert!(!within(openai(&format!("http://{}/other", server.addr)).probe()).await);
}

/// An upstream answer carrying every kind of header a provider sends.
fn with_upstream_headers(
    mut response: http::Response<support::TestBody>,
) -> http::Response<support::TestBody> {
    let headers = response.headers_mut();
    for (name, value) in [
        ("set-cookie", "__cf_bm=secret; path=/"),
        ("server", "cloudflare"),
        ("x-internal-foo", "node-17"),
        ("openai-organization", "org-internal"),
        ("openai-processing-ms", "412"),
        ("x-request-id", "req_123"),
        ("x-ratelimit-remaining-requests", "42"),
        ("x-ratelimit-reset-requests", "1s"),
        ("retry-after", "1"),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
    response
}

#[tokio::test]
async fn only_allowlisted_answer_headers_reach_the_caller() {
    let server = serve(|_| async { with_upstream_headers(json(200, COMPLETION)) }).await;
    let hidden = [
        "set-cookie",
        "server",
        "x-internal-foo",
        "openai-organization",
        "openai-processing-ms",
    ];

    let response = within(openai(&server.base_url()).oneshot(caller_request(r#"{"model":"x"}"#)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-request-id"], "req_123");
    for name in hidden {
        assert!(response.headers().get(name).is_none(), "{name}");
    }
    for name in [
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "retry-after",
    ] {
        assert!(
            response.headers().get(name).is_none(),
            "{name} is off by default"
        );
    }
    assert_eq!(text(response.into_body()).await, COMPLETION);

    let service = openai(&server.base_url()).with_rate_limit_headers(true);
    let response = within(service.oneshot(caller_request(r#"{"model":"x"}"#)))
        .await
        .unwrap();
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "42");
    assert_eq!(response.headers()["x-ratelimit-reset-requests"], "1s");
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["x-request-id"], "req_123");
    for name in hidden {
        assert!(response.headers().get(name).is_none(), "{name}");
    }
}

#[tokio::test]
async fn error_answers_follow_the_same_allowlist() {
    let server = serve(|_| async {
        with_upstream_headers(json(
            500,
            r#"{"error":{"message":"boom","type":"server_error","param":null,"code":null}}"#,
        ))
    })
    .await;
    let response = within(openai(&server.base_url()).oneshot(caller_request(r#"{"model":"x"}"#)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.headers()["x-request-id"], "req_123");
    for name in [
        "set-cookie",
        "server",
        "x-internal-foo",
        "x-ratelimit-remaining-requests",
        "retry-after",
    ] {
        assert!(response.headers().get(name).is_none(), "{name}");
    }
}

const BAD_KEY: &str = r#"{"error":{"message":"Incorrect API key provided: sk-abc***xyz. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;

#[tokio::test]
async fn a_rejected_key_is_a_502_in_the_gateways_words() {
    for status in [401, 403] {
        let server = serve(move |_| async move { json(status, BAD_KEY) }).await;
        let response =
            within(openai(&server.base_url()).oneshot(caller_request(r#"{"model":"x"}"#)))
                .await
                .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            LlmClassifier::new().classify_response(&response),
            Outcome::Failure(FailureKind::Unauthorized(
                StatusCode::from_u16(status).unwrap()
            ))
        );
        let body = text(response.into_body()).await;
        assert!(!body.contains("sk-abc"), "{body}");
        assert!(!body.contains("Incorrect API key"), "{body}");
        assert!(!body.contains("sk-provider"), "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"]["code"], "upstream_auth_failed");
        assert_eq!(json["error"]["type"], "authentication_error");
        assert_eq!(
            json["error"]["message"],
            format!("the provider `127.0.0.1` rejected the gateway's credentials ({status})")
        );
    }
}
