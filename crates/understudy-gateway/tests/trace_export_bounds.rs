//! OTLP trace export to a dead or silent collector: requests are not
//! slowed, spans are dropped and counted, the queue stays bounded and the
//! shutdown too. (Its own process: the reference gateway runs without any
//! subscriber, which must not race the other tests' subscribers.)
#![cfg(feature = "otlp")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio::time::Instant;
use understudy_mock::WireFormat;
use understudy_observe::{LogFormat, OtlpConfig, OtlpGuard, subscriber_with};

mod support;
use support::{LIMIT, Served, mock, primary_and_backup};

/// A collector that accepts connections and never answers.
async fn silent_collector() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            held.push(stream);
        }
    });
    addr
}

/// A loopback address nothing listens on.
async fn dead_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

const CHAT: &str = r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;

/// Sends `n` requests one after the other; the slowest one's time.
async fn slowest(served: &Served, n: usize) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let start = Instant::now();
        let reply = served
            .send(Method::POST, "/v1/chat/completions", &[], CHAT)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        slowest = slowest.max(start.elapsed());
    }
    slowest
}

/// `understudy_otel_spans_dropped_total{reason}` as `/metrics` shows it.
async fn dropped(served: &Served, reason: &str) -> u64 {
    let metrics = served.send(Method::GET, "/metrics", &[], "").await.body;
    let prefix = format!("understudy_otel_spans_dropped_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map_or(0, |value| value.trim().parse().unwrap())
}

/// A gateway whose spans go to `collector`, queueing at most 4.
fn exporting_to(collector: SocketAddr) -> (Box<dyn tracing::Subscriber + Send + Sync>, OtlpGuard) {
    let config = OtlpConfig::new(format!("http://{collector}"))
        .max_queue_size(4)
        .export_timeout(Duration::from_mins(1))
        .scheduled_delay(Duration::from_millis(10));
    subscriber_with(LogFormat::Json, "off", std::io::sink, &config).unwrap()
}

#[tokio::test]
async fn a_dead_or_silent_collector_costs_spans_not_time() {
    const N: usize = 40;
    let primary = mock(WireFormat::OpenAi, "primary").await;
    let backup = mock(WireFormat::OpenAi, "backup").await;
    let toml = primary_and_backup(&primary, &backup);

    // Without any export: the reference.
    let plain = Served::start(&toml, |_| None).await;
    let reference = slowest(&plain, N).await;
    plain.stop(LIMIT).await;
    let bound = reference * 3 + Duration::from_millis(250);

    // Nothing listens: every export fails at once, counted.
    let (subscriber, guard) = exporting_to(dead_address().await);
    {
        let _subscribed = tracing::subscriber::set_default(subscriber);
        let served = Served::start(&toml, |_| None).await;
        let before = dropped(&served, "export_failed").await;
        let slow = slowest(&served, N).await;
        assert!(
            slow < bound,
            "{slow:?} against {reference:?} without export"
        );
        // The flush returns once the export has failed.
        let guard = tokio::task::spawn_blocking(move || {
            let _ = guard.flush();
            guard
        })
        .await
        .unwrap();
        assert!(dropped(&served, "export_failed").await > before);
        served.stop(LIMIT).await;
        tokio::task::spawn_blocking(move || guard.shutdown(Duration::from_millis(200)))
            .await
            .unwrap();
    }

    // A collector that never answers: the queue fills and spans are
    // dropped, requests go on at the same pace.
    let (subscriber, guard) = exporting_to(silent_collector().await);
    {
        let _subscribed = tracing::subscriber::set_default(subscriber);
        let served = Served::start(&toml, |_| None).await;
        let before = dropped(&served, "queue_full").await;
        let slow = slowest(&served, N).await;
        assert!(
            slow < bound,
            "{slow:?} against {reference:?} without export"
        );
        // 2 spans a request, at most 4 waiting and one batch (4) in the
        // export that never ends: the rest were dropped.
        let lost = dropped(&served, "queue_full").await - before;
        assert!(lost >= (2 * N - 8) as u64, "{lost} dropped");
        served.stop(LIMIT).await;
        let started = Instant::now();
        let flushed =
            tokio::task::spawn_blocking(move || guard.shutdown(Duration::from_millis(300)))
                .await
                .unwrap();
        assert!(!flushed, "the silent collector took nothing");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the shutdown is bounded"
        );
    }
    primary.shutdown().await;
    backup.shutdown().await;
}
