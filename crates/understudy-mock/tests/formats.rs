//! The answers of a healthy mock parse as the real formats, bad requests get
//! the provider's errors, and the control endpoint works over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::StatusCode;
use understudy_mock::{Fault, FaultMode, FaultRule, MockConfig, MockProvider, MockStats};

use support::{chat, delete, get, json, post, read_events, send, send_full, within};

#[tokio::test]
async fn openai_answers_are_chat_completions() {
    let mock = MockProvider::start(MockConfig::openai().name("primary"))
        .await
        .unwrap();
    let (status, headers, body) = send_full(
        mock.addr(),
        post("/v1/chat/completions", chat("gpt-4o-mini", false)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-mock-name"], "primary");
    let body = json(&body);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert!(body["id"].is_string() && body["created"].is_u64());
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from primary."
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 8);
    assert_eq!(
        body["usage"]["total_tokens"],
        body["usage"]["prompt_tokens"].as_u64().unwrap() + 8
    );

    let recorded = mock.last_request().unwrap();
    assert_eq!(recorded.path, "/v1/chat/completions");
    assert_eq!(recorded.headers["authorization"], "Bearer sk-test");
    assert_eq!(recorded.json().unwrap()["model"], "gpt-4o-mini");

    let stats = mock.stats();
    assert_eq!(
        (stats.requests, stats.chat_requests, stats.served_ok),
        (1, 1, 1)
    );
    assert_eq!(stats.by_path["/v1/chat/completions"], 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn openai_streams_are_chunks_ending_in_done() {
    let mock = MockProvider::start(MockConfig::openai().name("primary").stream_chunks(4))
        .await
        .unwrap();
    let response = within(send(
        mock.addr(),
        post("/v1/chat/completions", chat("gpt-4o", true)),
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (events, error) = read_events(response.into_body()).await;
    assert!(error.is_none());
    // role, four pieces of content, finish, [DONE]
    assert_eq!(events.len(), 7);
    assert!(events.last().unwrap().is_done());
    let chunks: Vec<_> = events[..6]
        .iter()
        .map(|e| json(e.data.as_bytes()))
        .collect();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-4o");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from primary.");
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "stop");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));

    // With `stream_options.include_usage`, a usage chunk comes before [DONE].
    let body = serde_json::json!({
        "model": "gpt-4o",
        "messages": [],
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let response = within(send(
        mock.addr(),
        post("/v1/chat/completions", body.to_string()),
    ))
    .await
    .unwrap();
    let (events, _) = read_events(response.into_body()).await;
    assert_eq!(events.len(), 8);
    assert!(events[7].is_done());
    let usage = json(events[6].data.as_bytes());
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    assert_eq!(mock.stats().streams_in_progress, 0);
    mock.shutdown().await;
}

#[tokio::test]
async fn anthropic_answers_are_messages() {
    let mock = MockProvider::start(MockConfig::anthropic().name("backup"))
        .await
        .unwrap();
    let (status, _, body) = send_full(
        mock.addr(),
        post("/v1/messages", chat("claude-3-5-haiku", false)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body = json(&body);
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-3-5-haiku");
    assert_eq!(body["content"][0]["type"], "text");
    assert_eq!(body["content"][0]["text"], "Hello from backup.");
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"]["output_tokens"], 8);

    // The OpenAI path is not served in the Anthropic format.
    let (status, _, body) = send_full(
        mock.addr(),
        post("/v1/chat/completions", chat("claude", false)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(&body)["error"]["type"], "not_found_error");
    mock.shutdown().await;
}

#[tokio::test]
async fn anthropic_streams_follow_the_event_sequence() {
    let mock = MockProvider::start(MockConfig::anthropic().name("backup").stream_chunks(3))
        .await
        .unwrap();
    let response = within(send(
        mock.addr(),
        post("/v1/messages", chat("claude", true)),
    ))
    .await
    .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (events, error) = read_events(response.into_body()).await;
    assert!(error.is_none());
    let names: Vec<_> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let data: Vec<_> = events.iter().map(|e| json(e.data.as_bytes())).collect();
    for (name, data) in names.iter().zip(&data) {
        assert_eq!(data["type"], *name);
    }
    assert_eq!(data[0]["message"]["model"], "claude");
    let text: String = data[3..6]
        .iter()
        .map(|d| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, "Hello from backup.");
    assert_eq!(data[7]["delta"]["stop_reason"], "end_turn");
    assert_eq!(data[7]["usage"]["output_tokens"], 3);
    mock.shutdown().await;
}

#[tokio::test]
async fn invalid_json_is_a_400_in_the_providers_shape() {
    let openai = MockProvider::start(MockConfig::openai()).await.unwrap();
    let anthropic = MockProvider::start(MockConfig::anthropic()).await.unwrap();
    for (mock, path) in [
        (&openai, "/v1/chat/completions"),
        (&anthropic, "/v1/messages"),
    ] {
        for bad in [
            "{\"model\": \"x\", ",
            "not json",
            "{\"messages\": []}",
            "[]",
        ] {
            let (status, _, body) = send_full(mock.addr(), post(path, bad)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
            let body = json(&body);
            match mock.format() {
                understudy_mock::WireFormat::OpenAi => {
                    assert_eq!(body["error"]["type"], "invalid_request_error");
                    assert!(body["error"]["message"].is_string());
                }
                understudy_mock::WireFormat::Anthropic => {
                    assert_eq!(body["type"], "error");
                    assert_eq!(body["error"]["type"], "invalid_request_error");
                }
                other => unreachable!("{other} is not started here"),
            }
        }
        // An invalid request does not spend a fault.
        mock.set_fault(FaultRule::new(Fault::Status(503)).times(1));
        let (status, _, _) = send_full(mock.addr(), post(path, "nope")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = send_full(mock.addr(), post(path, chat("m", false))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(mock.stats().rejected, 5);
    }
    let (status, _, _) = send_full(openai.addr(), get("/v1/chat/completions")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn models_lists_a_model_and_reflects_down_faults_only() {
    let mock = MockProvider::start(MockConfig::openai()).await.unwrap();
    let (status, _, body) = send_full(mock.addr(), get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    let body = json(&body);
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["object"], "model");

    // A slow stream is no reason for a probe to fail.
    mock.set_fault(Fault::Drip(std::time::Duration::from_mins(1)));
    let (status, _, _) = send_full(mock.addr(), get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);

    // A probe sees a counted status fault without spending it.
    mock.set_fault(FaultRule::new(Fault::Status(503)).times(1));
    for _ in 0..2 {
        let (status, _, _) = send_full(mock.addr(), get("/v1/models")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let (status, _, _) =
        send_full(mock.addr(), post("/v1/chat/completions", chat("m", false))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, _) = send_full(mock.addr(), get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mock.stats().models_requests, 5);
    mock.shutdown().await;
}

#[tokio::test]
async fn the_control_endpoint_sets_reads_and_clears_the_plan() {
    let mock = MockProvider::start(MockConfig::openai()).await.unwrap();
    let addr = mock.addr();

    let (status, _, body) = send_full(
        addr,
        post(
            "/__mock/faults",
            r#"{"rules":[{"fault":"status:503","times":2},"delay:1"]}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["rules"][0]["times"], 2);
    assert_eq!(mock.faults().to_string(), "status:503*2,delay:1");
    assert_eq!(mock.faults().rules[0].mode, FaultMode::Times(2));

    let (_, _, body) = send_full(addr, get("/__mock/faults")).await;
    assert_eq!(json(&body)["rules"][1]["fault"], "delay:1");

    for expected in [503, 503, 200] {
        let (status, _, _) = send_full(addr, post("/v1/chat/completions", chat("m", false))).await;
        assert_eq!(status.as_u16(), expected);
    }

    let (status, _, body) = send_full(addr, get("/__mock/stats")).await;
    assert_eq!(status, StatusCode::OK);
    let stats: MockStats = serde_json::from_slice(&body).unwrap();
    assert_eq!(stats.chat_requests, 3);
    assert_eq!(stats.faulted, 3);
    assert_eq!(stats.served_ok, 1);
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.control_requests, 3);
    assert_eq!(stats.by_path["/__mock/faults"], 2);

    let (status, _, body) =
        send_full(addr, post("/__mock/faults", r#"{"rules":["explode"]}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        json(&body)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("explode")
    );
    assert_eq!(mock.faults().to_string(), "status:503*2,delay:1");

    let (status, _, _) = send_full(addr, post("/__mock/faults", r#"["hang"]"#)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send_full(addr, delete("/__mock/faults")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(mock.faults().is_empty());
    let (status, _, _) = send_full(addr, post("/v1/chat/completions", chat("m", false))).await;
    assert_eq!(status, StatusCode::OK);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_answer_without_stalls() {
    // A response held back by Nagle's algorithm costs ~40 ms; 250 requests
    // in a row on one connection would then take 10 s.
    let mock = MockProvider::start(MockConfig::openai()).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let addr = mock.addr();
        clients.push(tokio::spawn(async move {
            let mut connection = support::connect(addr).await.unwrap();
            for i in 0..250 {
                let stream = i % 5 == 0;
                let response = connection
                    .send(post("/v1/chat/completions", chat("m", stream)))
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap();
            }
        }));
    }
    for client in clients {
        within(client).await.unwrap();
    }
    let elapsed = started.elapsed();
    assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
    let stats = mock.stats();
    assert_eq!(stats.served_ok, 1000);
    assert_eq!(stats.connections_accepted, 4);
    println!("1000 requests in {elapsed:?}");
}
