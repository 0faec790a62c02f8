//! Every fault, observed from the client side over real loopback sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io;
use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use tokio::time::Instant;
use understudy_mock::{Fault, FaultPlan, FaultRule, MockConfig, MockProvider};

use support::{
    chat, connect, eventually, eventually_connect, json, post, read_events, send, send_full, within,
};

const OPENAI: &str = "/v1/chat/completions";
const ANTHROPIC: &str = "/v1/messages";

async fn openai() -> MockProvider {
    MockProvider::start(MockConfig::openai().name("primary"))
        .await
        .unwrap()
}

async fn anthropic() -> MockProvider {
    MockProvider::start(MockConfig::anthropic().name("backup"))
        .await
        .unwrap()
}

fn rule(spec: &str) -> FaultRule {
    spec.parse().unwrap()
}

#[tokio::test]
async fn status_answers_in_each_providers_error_shape() {
    let mock = openai().await;
    mock.set_fault(rule("status:503"));
    let (status, headers, body) = send_full(mock.addr(), post(OPENAI, chat("m", false))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["content-type"], "application/json");
    let body = json(&body);
    assert_eq!(body["error"]["type"], "server_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("primary")
    );
    // A streaming request gets the same JSON error, not a stream.
    let (status, _, body) = send_full(mock.addr(), post(OPENAI, chat("m", true))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(&body)["error"]["type"], "server_error");

    let mock = anthropic().await;
    for (code, kind) in [
        (529, "overloaded_error"),
        (500, "api_error"),
        (401, "authentication_error"),
    ] {
        mock.set_fault(Fault::Status(code));
        let (status, _, body) = send_full(mock.addr(), post(ANTHROPIC, chat("m", false))).await;
        assert_eq!(status.as_u16(), code);
        let body = json(&body);
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], kind);
    }
    assert_eq!(mock.stats().faulted, 3);
}

#[tokio::test]
async fn rate_limit_sends_retry_after() {
    for (mock, path) in [(openai().await, OPENAI), (anthropic().await, ANTHROPIC)] {
        mock.set_fault(rule("rate-limit:7"));
        let (status, headers, body) = send_full(mock.addr(), post(path, chat("m", false))).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "7");
        assert_eq!(headers["retry-after-ms"], "7000");
        assert_eq!(json(&body)["error"]["type"], "rate_limit_error");
    }
}

#[tokio::test]
async fn next_n_then_healthy() {
    let mock = openai().await;
    mock.set_fault(rule("status:503*3"));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, _, _) = send_full(mock.addr(), post(OPENAI, chat("m", false))).await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [503, 503, 503, 200, 200]);
    let stats = mock.stats();
    assert_eq!((stats.faulted, stats.served_ok), (3, 2));

    // First matching rule wins: five good answers, then failures.
    mock.set_fault(FaultPlan::single(rule("none*2")).rule(Fault::Status(500)));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, _, _) = send_full(mock.addr(), post(OPENAI, chat("m", false))).await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 500, 500]);
}

#[tokio::test]
async fn probability_is_reproducible_for_a_seed() {
    async fn run(seed: u64) -> Vec<u16> {
        let mock = MockProvider::start(
            MockConfig::openai()
                .seed(seed)
                .fault(rule("status:503@0.5")),
        )
        .await
        .unwrap();
        let mut connection = connect(mock.addr()).await.unwrap();
        let mut statuses = Vec::new();
        for _ in 0..40 {
            let response = within(connection.send(post(OPENAI, chat("m", false))))
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
            within(response.into_body().collect()).await.unwrap();
        }
        mock.shutdown().await;
        statuses
    }
    let first = run(7).await;
    assert_eq!(first, run(7).await);
    assert!(first.contains(&503) && first.contains(&200), "{first:?}");
    assert_ne!(first, run(8).await);
}

#[tokio::test]
async fn refuse_closes_the_listener_and_recovers_on_the_same_port() {
    let mock = openai().await;
    let addr = mock.addr();
    // A keep-alive connection opened before the fault is closed by it.
    let mut kept = connect(addr).await.unwrap();
    let response = within(kept.send(post(OPENAI, chat("m", false))))
        .await
        .unwrap();
    within(response.into_body().collect()).await.unwrap();

    mock.set_fault(Fault::Refuse);
    // From now on nothing is answered, even on a connection opened before.
    if let Ok(response) = kept.send(post(OPENAI, chat("m", false))).await {
        panic!("answered while refusing: {}", response.status());
    }
    eventually_connect(addr, true).await;
    // The kept connection ends (cleanly or cut, depending on the race).
    let _ = within(&mut kept.driver).await;
    eventually("the kept connection to close", || {
        mock.stats().open_connections == 0
    })
    .await;
    let error = support::connect(addr).await.err().unwrap();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);

    mock.clear_faults();
    eventually_connect(addr, false).await;
    let (status, _, _) = send_full(addr, post(OPENAI, chat("m", false))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mock.addr(), addr);
    mock.shutdown().await;
}

#[tokio::test]
async fn refuse_for_a_while_reopens_by_itself() {
    let mock = openai().await;
    let addr = mock.addr();
    mock.set_fault(rule("refuse~300ms"));
    let started = Instant::now();
    eventually_connect(addr, true).await;
    eventually_connect(addr, false).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (status, _, _) = send_full(addr, post(OPENAI, chat("m", false))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn refuse_n_times_resets_that_many_connections() {
    let mock = openai().await;
    mock.set_fault(rule("refuse*2"));
    for _ in 0..2 {
        // The connection is accepted and reset before any answer.
        let outcome = match connect(mock.addr()).await {
            Ok(mut connection) => connection.send(post(OPENAI, chat("m", false))).await.err(),
            Err(_) => None,
        };
        assert!(outcome.is_some_and(|e| !e.is_timeout()));
    }
    let (status, _, _) = send_full(mock.addr(), post(OPENAI, chat("m", false))).await;
    assert_eq!(status, StatusCode::OK);
    let stats = mock.stats();
    assert_eq!(stats.connections_refused, 2);
    assert_eq!(stats.chat_requests, 1);
}

#[tokio::test]
async fn reset_closes_the_connection_without_an_answer() {
    let mock = openai().await;
    mock.set_fault(rule("reset*1"));
    let mut connection = connect(mock.addr()).await.unwrap();
    let error = within(connection.send(post(OPENAI, chat("m", true))))
        .await
        .unwrap_err();
    assert!(error.is_incomplete_message(), "{error:?}");
    eventually("the reset connection to close", || {
        mock.stats().open_connections == 0
    })
    .await;
    // The request was read in full before the reset.
    assert_eq!(mock.last_request().unwrap().json().unwrap()["model"], "m");
    assert_eq!(mock.stats().faulted, 1);
    let (status, _, _) = send_full(mock.addr(), post(OPENAI, chat("m", false))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn hang_never_answers_and_leaks_nothing_when_the_client_leaves() {
    let mock = openai().await;
    mock.set_fault(Fault::Hang);
    let mut connection = connect(mock.addr()).await.unwrap();
    let pending = tokio::time::timeout(
        Duration::from_millis(300),
        connection.send(post(OPENAI, chat("m", false))),
    )
    .await;
    assert!(pending.is_err(), "no head within the timeout");
    assert_eq!(mock.stats().open_connections, 1);

    drop(connection);
    eventually("the hung connection to close", || {
        mock.stats().open_connections == 0
    })
    .await;
    assert_eq!(mock.stats().faulted, 1);
}

#[tokio::test]
async fn shutdown_ends_hanging_connections() {
    let mock = anthropic().await;
    mock.set_fault(Fault::Hang);
    let mut connection = connect(mock.addr()).await.unwrap();
    let request = tokio::spawn(async move {
        let outcome = connection.send(post(ANTHROPIC, chat("m", true))).await;
        (outcome.map(|_| ()), connection)
    });
    eventually("the request to arrive", || mock.stats().chat_requests == 1).await;
    within(mock.shutdown()).await;
    let (outcome, _connection) = within(request).await.unwrap();
    assert!(outcome.unwrap_err().is_incomplete_message());
}

#[tokio::test]
async fn delay_holds_the_head() {
    let mock = openai().await;
    mock.set_fault(rule("delay:200"));
    let started = Instant::now();
    let (status, _, _) = send_full(mock.addr(), post(OPENAI, chat("m", false))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn first_chunk_delay_sends_the_head_then_waits() {
    let mock = openai().await;
    mock.set_fault(rule("first-chunk-delay:600"));
    let started = Instant::now();
    let response = within(send(mock.addr(), post(OPENAI, chat("m", true))))
        .await
        .unwrap();
    let head = started.elapsed();
    assert_eq!(mock.stats().streams_in_progress, 1);
    let mut body = response.into_body();
    let first = within(body.frame()).await.unwrap().unwrap();
    let first_chunk = started.elapsed();
    assert!(first.is_data());
    assert!(head < Duration::from_millis(600), "head after {head:?}");
    assert!(
        first_chunk >= Duration::from_millis(600),
        "first chunk after {first_chunk:?}"
    );
    let (events, error) = read_events(body).await;
    assert!(error.is_none() && events.last().unwrap().is_done());
    eventually("the stream to end", || {
        mock.stats().streams_in_progress == 0
    })
    .await;

    // Non-streaming: a plain delay.
    let started = Instant::now();
    let (status, _, _) = send_full(mock.addr(), post(OPENAI, chat("m", false))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[tokio::test]
async fn drop_after_n_sends_exactly_n_events_then_cuts() {
    for (mock, path) in [(openai().await, OPENAI), (anthropic().await, ANTHROPIC)] {
        for n in [0, 3] {
            mock.set_fault(Fault::DropAfter(n));
            let response = within(send(mock.addr(), post(path, chat("m", true))))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let (events, error) = read_events(response.into_body()).await;
            assert_eq!(events.len(), n, "{path}");
            assert!(error.is_some(), "the body ends in an error");
        }
        eventually("the cut connections to close", || {
            mock.stats().open_connections == 0
        })
        .await;
        assert_eq!(mock.stats().served_ok, 0);
    }

    // Non-streaming: a head, part of the body, and the cut.
    let mock = openai().await;
    mock.set_fault(Fault::DropAfter(2));
    let response = within(send(mock.addr(), post(OPENAI, chat("m", false))))
        .await
        .unwrap();
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut body = response.into_body();
    let mut received = 0;
    let error = loop {
        match within(body.frame()).await {
            Some(Ok(frame)) => received += frame.data_ref().map_or(0, bytes::Bytes::len),
            Some(Err(error)) => break error,
            None => panic!("the body ended without an error"),
        }
    };
    assert!(received > 0 && received < length, "{received} of {length}");
    drop(error);
}

#[tokio::test]
async fn drip_spaces_every_event() {
    let mock = MockProvider::start(MockConfig::anthropic().stream_chunks(2))
        .await
        .unwrap();
    mock.set_fault(rule("drip:40"));
    let started = Instant::now();
    let response = within(send(mock.addr(), post(ANTHROPIC, chat("m", true))))
        .await
        .unwrap();
    let (events, error) = read_events(response.into_body()).await;
    assert!(error.is_none());
    assert_eq!(
        events.last().unwrap().event.as_deref(),
        Some("message_stop")
    );
    // Eight events, each 40 ms after the one before.
    assert_eq!(events.len(), 8);
    assert!(started.elapsed() >= Duration::from_millis(320));

    // Non-streaming: the whole JSON body, in slow pieces.
    let started = Instant::now();
    let (status, _, body) = send_full(mock.addr(), post(ANTHROPIC, chat("m", false))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["content"][0]["text"], "Hello from mock.");
    assert!(started.elapsed() >= Duration::from_millis(80));
}

#[tokio::test]
async fn garbage_is_neither_json_nor_sse() {
    let mock = openai().await;
    mock.set_fault(Fault::Garbage);
    let (status, headers, body) = send_full(mock.addr(), post(OPENAI, chat("m", false))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());

    let response = within(send(mock.addr(), post(OPENAI, chat("m", true))))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (events, error) = read_events(response.into_body()).await;
    assert!(error.is_none());
    assert!(events.is_empty());
}

#[tokio::test]
async fn error_event_comes_before_any_content() {
    let mock = openai().await;
    mock.set_fault(Fault::ErrorEvent);
    let response = within(send(mock.addr(), post(OPENAI, chat("m", true))))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (events, error) = read_events(response.into_body()).await;
    assert!(error.is_none());
    assert_eq!(events.len(), 1);
    assert_eq!(
        json(events[0].data.as_bytes())["error"]["type"],
        "server_error"
    );

    let (status, _, body) = send_full(mock.addr(), post(OPENAI, chat("m", false))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(json(&body)["error"].is_object());

    let mock = anthropic().await;
    mock.set_fault(Fault::ErrorEvent);
    let response = within(send(mock.addr(), post(ANTHROPIC, chat("m", true))))
        .await
        .unwrap();
    let (events, _) = read_events(response.into_body()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.as_deref(), Some("error"));
    let data = json(events[0].data.as_bytes());
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn dropping_the_mock_stops_the_server_and_its_connections() {
    let mock = openai().await;
    let addr = mock.addr();
    mock.set_fault(Fault::Hang);
    let mut connection = connect(addr).await.unwrap();
    let request = tokio::spawn(async move {
        let outcome = connection.send(post(OPENAI, chat("m", false))).await;
        (outcome.map(|_| ()), connection)
    });
    eventually("the request to arrive", || mock.stats().chat_requests == 1).await;
    drop(mock);
    let (outcome, _connection) = within(request).await.unwrap();
    assert!(outcome.unwrap_err().is_incomplete_message());
    eventually_connect(addr, true).await;
}
