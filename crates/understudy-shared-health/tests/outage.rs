//! The store going away while decisions are being made, and coming back on
//! the same port: the replicas serve on their local health meanwhile, the
//! connection gauge follows, and what was decided during the outage is
//! published once the store is back.
//!
//! Alone in its binary: it installs the global metrics recorder.
#![allow(clippy::unwrap_used, clippy::expect_used)] // fixtures: a panic is a failed assertion

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use understudy_core::{FailureKind, Outcome};
use understudy_shared_health::names;

use support::{RedisServer, eventually, replica};

const LATENCY: Duration = Duration::from_millis(20);
const LONG: Duration = Duration::from_secs(30);

fn connected_gauge(snapshotter: &Snapshotter) -> Option<f64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(key, _, _, _)| key.key().name() == names::CONNECTED)
        .and_then(|(_, _, _, value)| match value {
            DebugValue::Gauge(value) => Some(value.into_inner()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_going_away_and_back_changes_nothing_but_sharing() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let prefix = "t:outage";
    let (r1, s1) = replica(&redis, "r1", prefix, LONG).await;
    let (r2, s2) = replica(&redis, "r2", prefix, LONG).await;
    assert_eq!(connected_gauge(&snapshotter), Some(1.0));

    // Decisions keep being made on r1 all along: failures and successes on
    // one provider, 429s on others.
    let busy = Arc::new(AtomicBool::new(true));
    let churn = tokio::spawn({
        let r1 = r1.clone();
        let busy = busy.clone();
        async move {
            let mut i: u64 = 0;
            while busy.load(Ordering::Relaxed) && i < 100_000 {
                let outcome = if i.is_multiple_of(4) {
                    Outcome::Success
                } else {
                    Outcome::Failure(FailureKind::Overloaded)
                };
                r1.record("busy", outcome, LATENCY);
                if i.is_multiple_of(50) {
                    let retry_after = Some(Duration::from_secs(1 + i % 7));
                    let provider = format!("busy-{}", i % 5);
                    r1.record(
                        &provider,
                        Outcome::Failure(FailureKind::RateLimited { retry_after }),
                        LATENCY,
                    );
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });

    redis.kill();
    let noticed = eventually("both replicas to see the store gone", || {
        !s1.is_connected() && !s2.is_connected()
    })
    .await;
    eprintln!("the outage was noticed in {noticed:?}");
    assert_eq!(connected_gauge(&snapshotter), Some(0.0));

    // Decided during the outage: local at once, nowhere else yet.
    r1.record(
        "openai",
        Outcome::Failure(FailureKind::RateLimited {
            retry_after: Some(LONG),
        }),
        LATENCY,
    );
    for _ in 0..3 {
        r1.record(
            "anthropic",
            Outcome::Failure(FailureKind::Overloaded),
            LATENCY,
        );
    }
    assert!(!r1.is_available("openai"));
    assert!(!r1.is_available("anthropic"));
    assert!(r2.is_available("openai"));
    assert!(r2.is_available("anthropic"));

    redis.restart().await;
    let back = eventually("both replicas to reconnect", || {
        s1.is_connected() && s2.is_connected()
    })
    .await;
    eprintln!("both replicas reconnected {back:?} after the store answered again");
    assert!(s1.stats().connects >= 2);
    assert!(s2.stats().connects >= 2);
    eventually("the outage's decisions to reach r2", || {
        !r2.is_available("openai") && !r2.is_available("anthropic")
    })
    .await;
    // The gauge is shared by both replicas of this process: both are up.
    assert_eq!(connected_gauge(&snapshotter), Some(1.0));
    // And the restarted store holds them for replicas to come.
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}:openai"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored.unwrap()).unwrap();
    assert_eq!(stored["replica"], "r1");
    assert_eq!(stored["kind"], "cooling_down");

    busy.store(false, Ordering::Relaxed);
    churn.await.unwrap();
    // Nothing panicked: both tasks still run and answer.
    assert!(s1.is_connected() && s2.is_connected());
    s1.shutdown().await;
    assert!(!r1.is_available("openai"));
    s2.shutdown().await;
    assert_eq!(connected_gauge(&snapshotter), Some(0.0));
}
