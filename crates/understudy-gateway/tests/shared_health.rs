//! Three gateway replicas sharing provider health through one real
//! `redis-server` on loopback: a cooldown, an ejection and a restoration
//! seen by one replica reach the others within 100 ms, and killing the
//! store under load fails no request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;
use understudy_mock::{Fault, FaultRule, MockProvider, WireFormat};
use understudy_shared_health::testing::RedisServer;

mod support;
use support::{LIMIT, Served, mock};

/// How soon the other replicas must know.
const PROPAGATION: Duration = Duration::from_millis(100);

struct Fleet {
    replicas: Vec<Served>,
    primary: MockProvider,
    backup: MockProvider,
}

struct Reply {
    status: StatusCode,
    provider: String,
    attempts: String,
    body: String,
}

async fn fleet(redis: &RedisServer, health: &str) -> Fleet {
    let primary = mock(WireFormat::OpenAi, "primary").await;
    let backup = mock(WireFormat::OpenAi, "backup").await;
    let toml = format!(
        r#"
[[providers]]
name = "primary"
kind = "openai"
base_url = "{}"
timeout_ms = 2000

[[providers]]
name = "backup"
kind = "openai"
base_url = "{}"

[[routes]]
model = "chat"
targets = [
  {{ provider = "primary", model = "big-model" }},
  {{ provider = "backup", model = "small-model" }},
]

[retry]
max_retries = 0

[health]
shared = "{}"
probe_interval_secs = 0
{health}
"#,
        primary.base_url(),
        backup.base_url(),
        redis.url(),
    );
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Served::start(&toml, |_| None).await);
    }
    let fleet = Fleet {
        replicas,
        primary,
        backup,
    };
    // Every replica has connected to the store before the test begins.
    for replica in 0..3 {
        fleet
            .wait_for(replica, LIMIT, |health| health["shared"] == "connected")
            .await;
    }
    fleet
}

impl Fleet {
    async fn send(&self, replica: usize, method: Method, path: &str, body: &str) -> support::Reply {
        self.replicas[replica].send(method, path, &[], body).await
    }

    async fn chat(&self, replica: usize) -> Reply {
        let body = r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;
        let reply = self
            .send(replica, Method::POST, "/v1/chat/completions", body)
            .await;
        Reply {
            status: reply.status,
            provider: reply.header("x-understudy-provider").to_owned(),
            attempts: reply.header("x-understudy-attempts").to_owned(),
            body: reply.body,
        }
    }

    async fn health(&self, replica: usize) -> Value {
        self.send(replica, Method::GET, "/health", "").await.json()
    }

    async fn primary_state(&self, replica: usize) -> String {
        let health = self.health(replica).await;
        health["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "primary")
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Polls `replica`'s `/health` until `done` holds, for at most
    /// `within`; returns how long it took.
    async fn wait_for(
        &self,
        replica: usize,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let health = self.health(replica).await;
            if done(&health) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "replica {replica} did not get there within {within:?}: {health}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// How long until every other replica shows the primary in `state`,
    /// measured from `since`.
    async fn propagated(&self, since: Instant, state: &str) -> Duration {
        for replica in 1..3 {
            self.wait_for(replica, LIMIT, |health| {
                health["providers"].as_array().is_some_and(|providers| {
                    providers
                        .iter()
                        .any(|p| p["name"] == "primary" && p["state"] == state)
                })
            })
            .await;
        }
        since.elapsed()
    }

    async fn stop(self) {
        for replica in self.replicas {
            replica.stop(LIMIT).await;
        }
        self.primary.shutdown().await;
        self.backup.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_seen_by_one_replica_keeps_every_replica_off_the_provider() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let fleet = fleet(&redis, "").await;
    fleet
        .primary
        .set_fault(FaultRule::from(Fault::RateLimit(Duration::from_secs(30))));

    let reply = fleet.chat(0).await;
    let seen = Instant::now();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.provider, "backup");
    assert_eq!(fleet.primary_state(0).await, "cooling_down");

    let took = fleet.propagated(seen, "cooling_down").await;
    assert!(
        took < PROPAGATION,
        "the cooldown took {took:?} to reach the others"
    );

    // The others skip the primary: served by the backup in one attempt,
    // and the primary receives nothing.
    let before = fleet.primary.stats().chat_requests;
    for replica in 1..3 {
        let reply = fleet.chat(replica).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.provider, "backup");
        assert_eq!(reply.attempts, "1");
    }
    assert_eq!(fleet.primary.stats().chat_requests, before);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejection_and_a_restoration_reach_every_replica() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let fleet = fleet(
        &redis,
        "consecutive_failures = 2\nbase_ejection_secs = 1\nmax_ejection_secs = 1",
    )
    .await;
    fleet.primary.set_fault(FaultRule::from(Fault::Status(503)));
    fleet.chat(0).await;
    let reply = fleet.chat(0).await;
    let seen = Instant::now();
    assert_eq!(reply.provider, "backup");
    assert_eq!(fleet.primary_state(0).await, "ejected");
    let took = fleet.propagated(seen, "ejected").await;
    assert!(
        took < PROPAGATION,
        "the ejection took {took:?} to reach the others"
    );
    let before = fleet.primary.stats().chat_requests;
    for replica in 1..3 {
        assert_eq!(fleet.chat(replica).await.attempts, "1");
    }
    assert_eq!(fleet.primary.stats().chat_requests, before);

    // The primary recovers; once the ejection ends, one trial somewhere
    // restores it everywhere.
    fleet.primary.clear_faults();
    let restored = loop {
        let mut served_by_primary = None;
        for replica in 0..3 {
            if fleet.chat(replica).await.provider == "primary" {
                served_by_primary = Some(replica);
                break;
            }
        }
        if let Some(replica) = served_by_primary {
            break replica;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seen = Instant::now();
    for replica in (0..3).filter(|r| *r != restored) {
        fleet
            .wait_for(replica, PROPAGATION, |health| {
                health["providers"].as_array().is_some_and(|providers| {
                    providers
                        .iter()
                        .any(|p| p["name"] == "primary" && p["state"] == "healthy")
                })
            })
            .await;
    }
    assert!(seen.elapsed() < PROPAGATION);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_store_under_load_fails_no_request() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let fleet = fleet(&redis, "").await;
    let mut replies = Vec::new();
    for round in 0..60 {
        if round == 10 {
            redis.kill();
        }
        if round == 40 {
            redis.restart().await;
        }
        // All three replicas at once, every round.
        let (a, b, c) = tokio::join!(fleet.chat(0), fleet.chat(1), fleet.chat(2));
        replies.extend([a, b, c]);
    }
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    // Every replica reconnects and says so.
    for replica in 0..3 {
        fleet
            .wait_for(replica, LIMIT, |health| health["shared"] == "connected")
            .await;
    }
    fleet.stop().await;
}
