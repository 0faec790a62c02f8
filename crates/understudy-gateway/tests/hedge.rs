//! Hedged first chunks over loopback: a slow primary is raced by the next
//! target after `hedge_after_ms`, the winner serves and the loser's
//! connection is closed; the budget bounds the extra requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use understudy_mock::{MockProvider, WireFormat};

use support::{LIMIT, Served, fault, mock};

async fn start(primary_fault: &str, route_extra: &str) -> (MockProvider, MockProvider, Served) {
    let primary = mock(WireFormat::OpenAi, "primary").await;
    let backup = mock(WireFormat::OpenAi, "backup").await;
    primary.set_fault(fault(primary_fault));
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "primary"
kind = "openai"
base_url = "{}"
first_chunk_timeout_ms = 10000

[[providers]]
name = "backup"
kind = "openai"
base_url = "{}"

[[routes]]
model = "chat"
targets = [{{ provider = "primary", model = "big" }}, {{ provider = "backup", model = "small" }}]
{route_extra}

[retry]
max_retries = 0

[health]
consecutive_failures = 2  # two cancelled attempts counted as failures would eject
"#,
        primary.base_url(),
        backup.base_url(),
    );
    let served = Served::start(&toml, |_| None).await;
    (primary, backup, served)
}

const STREAM: &str =
    r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// Sends a streamed request; the time to its first content chunk, and
/// who served it.
async fn time_to_first_content(served: &Served) -> (Duration, String) {
    let start = Instant::now();
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}/v1/chat/completions", served.addr))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(STREAM.as_bytes())))
        .unwrap();
    let response = served.request(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let provider = response.headers()["x-understudy-provider"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.into_body();
    let mut seen = String::new();
    loop {
        let frame = tokio::time::timeout(LIMIT, body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&data).unwrap());
            if seen.contains(r#""content":"H"#) {
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    // The rest of the stream, to its end.
    while let Some(frame) = body.frame().await {
        frame.unwrap();
    }
    (elapsed, provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_primary_is_hedged_and_its_connection_closed() {
    let (primary, backup, served) = start(
        "first-chunk-delay:2000",
        "hedge_after_ms = 300\nhedge_budget_ratio = 1.0",
    )
    .await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let (elapsed, provider) = time_to_first_content(&served).await;
        assert_eq!(provider, "backup");
        times.push(elapsed);
    }
    times.sort();
    eprintln!("time to first content behind a 2 s primary: {times:?}");
    let median = times[2];
    assert!(median < Duration::from_millis(600), "{times:?}");
    assert!(median >= Duration::from_millis(300), "{times:?}");
    assert_eq!(primary.stats().chat_requests, 5);
    assert_eq!(backup.stats().chat_requests, 5);
    // The primary's streams were cancelled: their connections close
    // (the mock sees it when it next writes, after its 2 s delay).
    let deadline = Instant::now() + LIMIT;
    while primary.stats().open_connections > 0 || primary.stats().streams_in_progress > 0 {
        assert!(Instant::now() < deadline, "{:?}", primary.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = served.send(Method::GET, "/metrics", &[], "").await.body;
    // Metrics are the process's: other tests may have hedged too.
    let won: u64 = metrics
        .lines()
        .find(|l| l.starts_with("understudy_hedges_total") && l.contains(r#"result="won""#))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(won >= 5, "{metrics}");
    // A cancelled attempt is no failure: the primary is still healthy.
    let health = served.send(Method::GET, "/health", &[], "").await.json();
    let primary_state = health["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "primary")
        .unwrap()["state"]
        .clone();
    assert_eq!(primary_state, "healthy", "{health}");
    served.stop_with([primary, backup]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_primary_is_not_hedged() {
    let (primary, backup, served) = start("none", "hedge_after_ms = 300").await;
    let (_, provider) = time_to_first_content(&served).await;
    assert_eq!(provider, "primary");
    assert_eq!(backup.stats().chat_requests, 0);
    served.stop_with([primary, backup]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedges_stay_within_the_budget_under_an_always_slow_primary() {
    let (primary, backup, served) = start("first-chunk-delay:400", "hedge_after_ms = 50").await;
    let requests = 20;
    let sends = (0..requests).map(|_| time_to_first_content(&served));
    let served_by = futures_util::future::join_all(sends).await;
    assert_eq!(served_by.len(), requests);
    // The default ratio, 0.1: two hedges for twenty requests.
    let extra = backup.stats().chat_requests;
    assert!(extra <= 2, "{extra} hedges");
    assert!(extra >= 1, "no hedge at all");
    assert_eq!(primary.stats().chat_requests, 20);
    let metrics = served.send(Method::GET, "/metrics", &[], "").await.body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("understudy_hedges_total")
                && l.contains(r#"result="budget_exhausted""#)),
        "{metrics}"
    );
    served.stop_with([primary, backup]).await;
}
