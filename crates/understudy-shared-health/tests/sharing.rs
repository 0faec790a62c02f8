//! Replicas sharing health through a real `redis-server`: decisions reach
//! the others within 100 ms, a late replica catches up from the keys, a
//! remote decision is never published again, a half-open trial is taken by
//! one replica only, and garbage in the store is skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)] // fixtures: a panic is a failed assertion

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use understudy_core::{FailureKind, Outcome, ProviderState};
use understudy_health::HealthRegistry;
use understudy_shared_health::{SharedHealthConfig, spawn};

use support::{RedisServer, eventually, replica, sharing};

const LATENCY: Duration = Duration::from_millis(20);
const FAIL: Outcome = Outcome::Failure(FailureKind::Overloaded);
const LONG: Duration = Duration::from_secs(30);
/// The most a decision may take to reach the other replicas.
const PROPAGATION: Duration = Duration::from_millis(100);

fn rate_limited(retry_after: Duration) -> Outcome {
    Outcome::Failure(FailureKind::RateLimited {
        retry_after: Some(retry_after),
    })
}

fn eject(registry: &HealthRegistry, provider: &str) {
    for _ in 0..3 {
        registry.record(provider, FAIL, LATENCY);
    }
}

fn state(registry: &HealthRegistry, provider: &str) -> Option<ProviderState> {
    registry
        .snapshot()
        .into_iter()
        .find(|s| s.name == provider)
        .map(|s| s.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_reach_every_replica_within_100_ms() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = "t:propagate";
    let ejection = Duration::from_millis(600);
    let (r1, _s1) = replica(&redis, "r1", prefix, ejection).await;
    let (r2, _s2) = replica(&redis, "r2", prefix, ejection).await;
    let (r3, _s3) = replica(&redis, "r3", prefix, ejection).await;
    let others = [&r2, &r3];

    // A 429 with Retry-After: 30 s.
    r1.record("openai", rate_limited(LONG), LATENCY);
    assert!(!r1.is_available("openai"));
    let took = eventually("the cooldown to propagate", || {
        others.iter().all(|r| !r.is_available("openai"))
    })
    .await;
    eprintln!("cooldown propagated to two replicas in {took:?}");
    assert!(took < PROPAGATION, "cooldown took {took:?}");
    for other in others {
        let snapshot = other
            .snapshot()
            .into_iter()
            .find(|s| s.name == "openai")
            .unwrap();
        assert_eq!(snapshot.state, ProviderState::CoolingDown);
        // The remote cooldown ends when the 429 said, not at a local default.
        assert!(
            snapshot
                .until_ms
                .is_some_and(|ms| ms > 25_000 && ms <= 30_100)
        );
    }

    // Consecutive failures.
    eject(&r1, "anthropic");
    assert!(!r1.is_available("anthropic"));
    let took = eventually("the ejection to propagate", || {
        others.iter().all(|r| !r.is_available("anthropic"))
    })
    .await;
    eprintln!("ejection propagated to two replicas in {took:?}");
    assert!(took < PROPAGATION, "ejection took {took:?}");
    for other in others {
        assert_eq!(state(other, "anthropic"), Some(ProviderState::Ejected));
    }

    // The ejection ends everywhere; the one replica holding the trial
    // succeeds, and the restoration reaches the two others.
    let all = [&r1, &r2, &r3];
    eventually("one replica to take the trial", || {
        all.iter().any(|r| r.is_available("anthropic"))
    })
    .await;
    let holder = all.iter().find(|r| r.is_available("anthropic")).unwrap();
    holder.record("anthropic", Outcome::Success, LATENCY);
    let took = eventually("the restoration to propagate", || {
        all.iter().all(|r| r.is_available("anthropic"))
    })
    .await;
    eprintln!("restoration propagated to two replicas in {took:?}");
    assert!(took < PROPAGATION, "restoration took {took:?}");
    for r in all {
        assert_eq!(state(r, "anthropic"), Some(ProviderState::Healthy));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_replica_reads_the_current_decisions_from_the_keys() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = "t:late";
    let (r1, s1) = replica(&redis, "r1", prefix, LONG).await;
    r1.record("openai", rate_limited(LONG), LATENCY);
    eject(&r1, "anthropic");
    eventually("both decisions to be published", || {
        s1.stats().published == 2
    })
    .await;

    let (late, s2) = replica(&redis, "late", prefix, LONG).await;
    // Connected means caught up: the keys were read before.
    assert!(!late.is_available("openai"));
    assert!(!late.is_available("anthropic"));
    assert_eq!(state(&late, "openai"), Some(ProviderState::CoolingDown));
    assert_eq!(state(&late, "anthropic"), Some(ProviderState::Ejected));
    assert_eq!(s2.stats().applied, 2);
    // And it published nothing of what it learned.
    assert_eq!(s2.stats().published, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_decision_is_never_published_again() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = "t:pingpong";
    let mut listener = redis.client().get_async_pubsub().await.unwrap();
    listener
        .subscribe(format!("{prefix}:events"))
        .await
        .unwrap();
    let mut messages = listener.into_on_message();

    let (r1, s1) = replica(&redis, "r1", prefix, LONG).await;
    let (r2, s2) = replica(&redis, "r2", prefix, LONG).await;
    let (r3, s3) = replica(&redis, "r3", prefix, LONG).await;

    r1.record("openai", rate_limited(LONG), LATENCY);
    eject(&r1, "anthropic");
    eventually("the decisions to propagate", || {
        [&r2, &r3]
            .iter()
            .all(|r| !r.is_available("openai") && !r.is_available("anthropic"))
    })
    .await;
    // Each replica handles its events in order: a republication by r2 or r3
    // of what they applied would be published before their own marker.
    r2.record("marker-2", rate_limited(LONG), LATENCY);
    r3.record("marker-3", rate_limited(LONG), LATENCY);
    eventually("r1 to apply the markers", || {
        !r1.is_available("marker-2") && !r1.is_available("marker-3")
    })
    .await;
    r1.record("marker-1", rate_limited(LONG), LATENCY);

    let mut seen = Vec::new();
    let read = async {
        while let Some(message) = messages.next().await {
            let record: serde_json::Value =
                serde_json::from_slice(message.get_payload_bytes()).unwrap();
            let pair = (
                record["replica"].as_str().unwrap().to_owned(),
                record["provider"].as_str().unwrap().to_owned(),
            );
            let last = pair.1 == "marker-1";
            seen.push(pair);
            if last {
                return;
            }
        }
    };
    tokio::time::timeout(support::DEADLINE, read).await.unwrap();
    let expected: Vec<(String, String)> = [
        ("r1", "openai"),
        ("r1", "anthropic"),
        ("r2", "marker-2"),
        ("r3", "marker-3"),
        ("r1", "marker-1"),
    ]
    .iter()
    .map(|(r, p)| ((*r).to_owned(), (*p).to_owned()))
    .collect();
    let mut sorted = seen.clone();
    sorted.sort();
    let mut wanted = expected.clone();
    wanted.sort();
    assert_eq!(sorted, wanted, "published: {seen:?}");
    // The counter moves once the publication's round trip returns, which
    // may be after the listener had the message.
    eventually("r1 to count its publications", || s1.stats().published == 3).await;
    assert_eq!(s2.stats().published, 1);
    assert_eq!(s3.stats().published, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_trial_is_taken_by_exactly_one_replica() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = "t:trial";
    let ejection = Duration::from_millis(400);
    let (r1, _s1) = replica(&redis, "r1", prefix, ejection).await;
    let (r2, _s2) = replica(&redis, "r2", prefix, ejection).await;
    let (r3, _s3) = replica(&redis, "r3", prefix, ejection).await;
    let all = [&r1, &r2, &r3];

    eject(&r1, "openai");
    eventually("the ejection to reach every replica", || {
        all.iter()
            .all(|r| state(r, "openai") == Some(ProviderState::Ejected))
    })
    .await;
    // The ejection ends everywhere, and every replica learns who has the
    // trial.
    eventually("the trial lease to be decided everywhere", || {
        all.iter().all(|r| {
            state(r, "openai") == Some(ProviderState::Probing) && !r.trial_pending("openai")
        })
    })
    .await;
    let here: Vec<&&HealthRegistry> = all.iter().filter(|r| r.is_available("openai")).collect();
    assert_eq!(here.len(), 1, "exactly one replica takes the trial");
    let lease: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}:trial:openai"))
        .query_async(
            &mut redis
                .client()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let holder_id = lease.expect("the lease is held");
    let holder = match holder_id.as_str() {
        "r1" => &r1,
        "r2" => &r2,
        _ => &r3,
    };
    assert!(holder.is_available("openai"));

    // The trial succeeds: healthy everywhere, and the lease is released.
    holder.record("openai", Outcome::Success, LATENCY);
    eventually("the restoration to reach every replica", || {
        all.iter().all(|r| r.is_available("openai"))
    })
    .await;
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{prefix}:trial:openai");
    let mut released = false;
    let start = tokio::time::Instant::now();
    while !released {
        assert!(
            start.elapsed() < support::DEADLINE,
            "the lease was not released"
        );
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        released = !exists;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_trial_ejects_every_replica_again() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = "t:trial-fails";
    let ejection = Duration::from_millis(300);
    let (r1, _s1) = replica(&redis, "r1", prefix, ejection).await;
    let (r2, _s2) = replica(&redis, "r2", prefix, ejection).await;
    let all = [&r1, &r2];

    eject(&r1, "openai");
    eventually("the lease to be decided on both", || {
        all.iter().all(|r| {
            state(r, "openai") == Some(ProviderState::Probing) && !r.trial_pending("openai")
        })
    })
    .await;
    let holder = all.iter().find(|r| r.is_available("openai")).unwrap();
    let other = all.iter().find(|r| !r.is_available("openai")).unwrap();
    holder.record("openai", FAIL, LATENCY);
    eventually("the failed trial to eject the other replica", || {
        state(other, "openai") == Some(ProviderState::Ejected)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_keys_or_on_the_channel_is_skipped_and_counted() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = "t:garbage";
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let far = now_ms() + 30_000;
    let valid = |provider: &str| {
        format!(
            r#"{{"provider":"{provider}","kind":"cooling_down","until_ms":{far},"at_ms":{},"reason":null,"replica":"elsewhere"}}"#,
            now_ms()
        )
    };
    let mut setup = redis::pipe();
    setup
        .cmd("SET")
        .arg(format!("{prefix}:openai"))
        .arg("not json")
        .ignore()
        .cmd("SET")
        .arg(format!("{prefix}:anthropic"))
        // A record under another provider's key.
        .arg(valid("somebody-else"))
        .ignore()
        .cmd("RPUSH")
        .arg(format!("{prefix}:a-list"))
        .arg("not a string")
        .ignore()
        .cmd("SET")
        .arg(format!("{prefix}:trial:openai"))
        .arg("a lease, not a record")
        .ignore()
        .cmd("SET")
        .arg(format!("{prefix}:mistral"))
        .arg(valid("mistral"))
        .ignore();
    let () = setup.query_async(&mut conn).await.unwrap();

    let registry = support::registry(LONG);
    let shared = spawn(registry.clone(), sharing(&redis, "r1", prefix)).unwrap();
    eventually("the replica to connect", || shared.is_connected()).await;
    // The valid record among them was applied; the others were skipped.
    assert!(!registry.is_available("mistral"));
    assert!(registry.is_available("openai"));
    assert!(registry.is_available("anthropic"));
    assert_eq!(shared.stats().garbage, 2);
    assert_eq!(shared.stats().applied, 1);

    let channel = format!("{prefix}:events");
    let long = vec![b'x'; 10_000];
    let garbage: [&[u8]; 6] = [
        b"{{{",
        b"null",
        b"\xff\xfe",
        br#"{"provider":"openai","kind":"ejected","at_ms":1,"replica":"x"}"#,
        br#"{"provider":"openai","kind":"melted","until_ms":1,"at_ms":1,"replica":"x"}"#,
        &long,
    ];
    for payload in garbage {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(payload)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // Published after the garbage, on the same connection: once it is
    // applied, the garbage before it was read.
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(valid("cohere"))
        .query_async(&mut conn)
        .await
        .unwrap();
    eventually("the valid record to be applied", || {
        !registry.is_available("cohere")
    })
    .await;
    assert_eq!(shared.stats().garbage, 2 + 6);
    assert!(registry.is_available("openai"));
    assert!(shared.is_connected());
    assert_eq!(shared.stats().connects, 1);
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_too_slow_to_answer_counts_as_down() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = "t:slow";
    let (r1, s1) = replica(&redis, "r1", prefix, LONG).await;
    let (r2, _s2) = replica(&redis, "r2", prefix, LONG).await;
    // Redis stops answering every client for two seconds.
    let mut admin = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2_000)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    // A decision now: local at once; its publication times out.
    r1.record("openai", rate_limited(LONG), LATENCY);
    assert!(!r1.is_available("openai"));
    eventually("r1 to give up on the silent store", || !s1.is_connected()).await;
    // Once the store answers again, the decision is published.
    eventually("r1 to reconnect", || s1.is_connected()).await;
    eventually("the decision to reach r2", || !r2.is_available("openai")).await;
    assert!(s1.stats().connects >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_outlasting_its_lease_keeps_it_and_a_lapsed_lease_moves_on() {
    use tower::{Layer, ServiceExt, service_fn};
    use understudy_health::HealthLayer;

    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = "t:lease";
    let lease = Duration::from_millis(300);
    let mut replicas = Vec::new();
    for id in ["r1", "r2"] {
        let registry = support::registry(Duration::from_millis(300));
        let config = sharing(&redis, id, prefix)
            .trial_lease(lease)
            .heartbeat(Duration::from_millis(30));
        let shared = spawn(registry.clone(), config).unwrap();
        eventually("the replica to connect", || shared.is_connected()).await;
        replicas.push((registry, shared));
    }
    let (r1, r2) = (&replicas[0].0, &replicas[1].0);

    eject(r1, "openai");
    eventually("the lease to be decided on both", || {
        [r1, r2].iter().all(|r| {
            state(r, "openai") == Some(ProviderState::Probing) && !r.trial_pending("openai")
        })
    })
    .await;
    let (holder, other) = if r1.is_available("openai") {
        (r1, r2)
    } else {
        (r2, r1)
    };
    assert!(!other.is_available("openai"));

    // The trial request hangs on the holder, three leases long: the lease
    // is kept, and the other replica never takes a second trial.
    let hanging = service_fn(|_: http::Request<()>| async {
        std::future::pending::<Result<http::Response<()>, std::convert::Infallible>>().await
    });
    let service = HealthLayer::new(holder.clone(), "openai").layer(hanging);
    let trial = tokio::spawn(service.oneshot(http::Request::new(())));
    eventually("the trial to run", || !holder.is_available("openai")).await;
    let start = tokio::time::Instant::now();
    while start.elapsed() < lease * 3 {
        assert!(
            !other.is_available("openai"),
            "a second trial while the first runs"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The trial goes away without an outcome (the holder's request was
    // dropped, as when a replica dies): the lease lapses and the other
    // replica, asking again every half lease, takes the trial.
    trial.abort();
    let _ = trial.await;
    eventually("the other replica to take the trial", || {
        other.is_available("openai")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_over_tls_and_a_store_they_cannot_trust_is_not_used() {
    let Some(redis) = RedisServer::start_tls().await else {
        return;
    };
    let prefix = "t:tls";
    let mut replicas = Vec::new();
    for id in ["r1", "r2"] {
        let registry = support::registry(LONG);
        let config = SharedHealthConfig::new(redis.tls_url())
            .replica(id)
            .key_prefix(prefix)
            .command_timeout(Duration::from_millis(250))
            .connect_timeout(Duration::from_secs(2))
            .tls_root_certificate(redis.ca_pem());
        let shared = spawn(registry.clone(), config).unwrap();
        eventually("the replica to connect over TLS", || shared.is_connected()).await;
        replicas.push((registry, shared));
    }
    // The public roots do not know the test CA.
    let untrusting = support::registry(LONG);
    let stranger = spawn(
        untrusting.clone(),
        SharedHealthConfig::new(redis.tls_url()).replica("stranger"),
    )
    .unwrap();

    let (r1, r2) = (&replicas[0].0, &replicas[1].0);
    r1.record("openai", rate_limited(LONG), LATENCY);
    eventually("the cooldown to reach r2 over TLS", || {
        !r2.is_available("openai")
    })
    .await;
    assert!(!stranger.is_connected());
    assert_eq!(stranger.stats().connects, 0);
    assert!(untrusting.is_available("openai"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_key_holding_garbage_delays_the_trial_without_breaking_the_connection() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = "t:trial-garbage";
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{prefix}:trial:openai");
    let () = redis::pipe()
        .cmd("RPUSH")
        .arg(&key)
        .arg("not a lease")
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(700)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let registry = support::registry(Duration::from_millis(100));
    let config = sharing(&redis, "r1", prefix)
        .trial_lease(Duration::from_millis(600))
        .heartbeat(Duration::from_millis(50));
    let shared = spawn(registry.clone(), config).unwrap();
    eventually("the replica to connect", || shared.is_connected()).await;

    eject(&registry, "openai");
    eventually("the lease to be decided", || {
        state(&registry, "openai") == Some(ProviderState::Probing)
            && !registry.trial_pending("openai")
    })
    .await;
    // The key is not this replica's lease: no trial yet.
    if registry.is_available("openai") {
        // Only once the garbage expired may the trial be here.
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!exists, "a trial taken over a key holding garbage");
    }
    // Once the garbage expires, the lease asked for again is this replica's.
    eventually("the trial to be taken here", || {
        registry.is_available("openai")
    })
    .await;
    assert!(shared.stats().garbage >= 1);
    assert!(shared.is_connected());
    assert_eq!(shared.stats().connects, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_longer_retry_after_extends_the_cooldown_everywhere() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = "t:extend";
    let (r1, _s1) = replica(&redis, "r1", prefix, LONG).await;
    let (r2, _s2) = replica(&redis, "r2", prefix, LONG).await;
    let until_ms = |r: &HealthRegistry| {
        r.snapshot()
            .into_iter()
            .find(|s| s.name == "openai")
            .and_then(|s| s.until_ms)
            .unwrap_or(0)
    };
    r1.record("openai", rate_limited(Duration::from_secs(5)), LATENCY);
    eventually("the cooldown to propagate", || until_ms(&r2) > 0).await;
    assert!(until_ms(&r2) <= 5_000);
    // A later 429 asks for longer: the running cooldown is extended here,
    // and the extension travels.
    r1.record("openai", rate_limited(LONG), LATENCY);
    let took = eventually("the extension to propagate", || until_ms(&r2) > 25_000).await;
    assert!(took < PROPAGATION, "the extension took {took:?}");
}
