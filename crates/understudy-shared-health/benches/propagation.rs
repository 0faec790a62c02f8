//! How long a decision takes to reach another replica through one
//! `redis-server`: p50, p99 and max over 1,000 decisions.
//!
//! Method: a `redis-server` on a loopback port (started here, as the tests
//! do; the bench prints a notice and stops when it is not installed), and
//! two registries, each shared through it by its own sharer, in one process
//! on a two-thread Tokio runtime. For each of 1,000 decisions, the clock
//! starts just before replica A records a 429 (`Retry-After: 60 s`) for a
//! provider not seen before, and stops when replica B's own event
//! subscription yields the `CoolingDown` transition that decision caused
//! there (origin `Remote`). The time covers the event reaching A's sharer,
//! `SET` + `PUBLISH` in one round trip, the delivery to B's subscription,
//! the record's parsing and `apply_remote`, and B's event. Decisions are
//! sequential (the next starts after the previous arrived), so this is
//! latency, not throughput. Nothing is timed by polling, whose granularity
//! would add up to a timer tick.
//!
//! Run: `cargo bench -p understudy-shared-health --bench propagation`
//! (not run in CI).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use tokio::time::Instant;

use understudy_core::{FailureKind, Outcome};
use understudy_health::{HealthEventKind, Origin};

const DECISIONS: usize = 1_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(measure());
}

async fn measure() {
    let Some(redis) = support::RedisServer::start().await else {
        return;
    };
    let prefix = "bench:propagation";
    let (a, _sa) = support::replica(&redis, "a", prefix, Duration::from_secs(30)).await;
    let (b, _sb) = support::replica(&redis, "b", prefix, Duration::from_secs(30)).await;
    let mut arrivals = b.subscribe();
    let limited = Outcome::Failure(FailureKind::RateLimited {
        retry_after: Some(Duration::from_mins(1)),
    });

    let mut samples = Vec::with_capacity(DECISIONS);
    for i in 0..DECISIONS {
        let provider = format!("provider-{i}");
        let start = Instant::now();
        a.record(&provider, limited, Duration::from_millis(1));
        let arrived = async {
            while let Some(event) = arrivals.recv().await {
                if event.origin == Origin::Remote
                    && event.kind == HealthEventKind::CoolingDown
                    && *event.provider == *provider
                {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), arrived)
            .await
            .expect("the decision arrived");
        samples.push(start.elapsed());
    }

    samples.sort();
    let at = |q: f64| {
        // `q` in [0, 1]: the sample at that rank.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[rank]
    };
    let total: Duration = samples.iter().sum();
    println!("propagation between two replicas over one redis-server, {DECISIONS} decisions:");
    println!(
        "  p50 {:?}  p90 {:?}  p99 {:?}  max {:?}  mean {:?}",
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0),
        total / u32::try_from(DECISIONS).unwrap()
    );
}
