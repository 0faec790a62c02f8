//! The tests' fixtures: a real `redis-server` (from the crate's `testing`
//! module), replicas sharing health through it, and waiting.
//!
//! Waiting is done by polling a condition against a deadline
//! ([`eventually`]), never by sleeping for a fixed time.
#![allow(dead_code, unreachable_pub)] // each test binary uses its own part
#![allow(clippy::unwrap_used, clippy::expect_used)] // fixtures: a panic is a failed test

use std::time::Duration;

use tokio::time::Instant;

use understudy_health::{HealthConfig, HealthRegistry};
pub use understudy_shared_health::testing::{DEADLINE, RedisServer};
use understudy_shared_health::{SharedHealth, SharedHealthConfig};

/// Polls `condition` every millisecond until it holds, and returns how long
/// that took; fails the test after [`DEADLINE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if condition() {
            return start.elapsed();
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The health settings of the tests' replicas: ejected after three
/// failures in a row, for `ejection`.
pub fn registry(ejection: Duration) -> HealthRegistry {
    HealthRegistry::new(
        HealthConfig::builder()
            .consecutive_failures(3)
            .base_ejection(ejection)
            .build()
            .unwrap(),
    )
}

/// The sharer settings of the tests: a command limit roomier than the
/// default, so a loaded CI machine does not turn into store failures, and
/// quick reconnection.
pub fn sharing(redis: &RedisServer, replica: &str, prefix: &str) -> SharedHealthConfig {
    SharedHealthConfig::new(redis.url())
        .replica(replica)
        .key_prefix(prefix)
        .command_timeout(Duration::from_millis(250))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(300))
}

/// A registry shared through `redis` as `replica`, connected.
pub async fn replica(
    redis: &RedisServer,
    replica: &str,
    prefix: &str,
    ejection: Duration,
) -> (HealthRegistry, SharedHealth) {
    let registry = registry(ejection);
    let shared =
        understudy_shared_health::spawn(registry.clone(), sharing(redis, replica, prefix)).unwrap();
    eventually("the replica to connect", || shared.is_connected()).await;
    (registry, shared)
}
