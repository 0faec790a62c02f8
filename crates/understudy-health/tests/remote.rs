//! Decisions of other replicas applied to a registry: the merge rules, the
//! origin of the events they cause, and half-open trials leased elsewhere.
#![allow(clippy::unwrap_used)] // test fixtures: a panic is a failed assertion

use std::time::Duration;

use tokio::time::Instant;
use understudy_core::{FailureKind, Outcome, ProviderState};
use understudy_health::{
    EjectionReason, HealthConfig, HealthEventKind, HealthRegistry, Origin, RemoteDecision,
    TrialGrant,
};

const FAIL: Outcome = Outcome::Failure(FailureKind::Overloaded);
const MS: Duration = Duration::from_millis(10);
const SECOND: Duration = Duration::from_secs(1);

fn registry() -> HealthRegistry {
    HealthRegistry::new(
        HealthConfig::builder()
            .consecutive_failures(2)
            .base_ejection(Duration::from_secs(10))
            .build()
            .unwrap(),
    )
}

fn state(registry: &HealthRegistry, name: &str) -> ProviderState {
    registry
        .snapshot()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
        .state
}

fn in_secs(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[tokio::test(start_paused = true)]
async fn a_remote_ejection_is_applied_as_if_local_and_reported_as_remote() {
    let registry = registry();
    registry.register("openai");
    let mut events = registry.subscribe();
    registry.apply_remote(
        "openai",
        RemoteDecision::Ejected {
            until: in_secs(20),
            reason: EjectionReason::ConsecutiveFailures,
        },
    );
    assert_eq!(state(&registry, "openai"), ProviderState::Ejected);
    let event = events.recv().await.unwrap();
    assert_eq!(
        event.kind,
        HealthEventKind::Ejected(EjectionReason::ConsecutiveFailures)
    );
    assert_eq!(event.origin, Origin::Remote);

    // It ends when the remote said, not after the local base ejection.
    tokio::time::advance(Duration::from_secs(15)).await;
    assert!(!registry.is_available("openai"));
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(registry.is_available("openai"));
    assert_eq!(state(&registry, "openai"), ProviderState::Probing);
}

#[tokio::test(start_paused = true)]
async fn local_decisions_are_reported_as_local() {
    let registry = registry();
    let mut events = registry.subscribe();
    registry.record("openai", FAIL, MS);
    registry.record("openai", FAIL, MS);
    let event = events.recv().await.unwrap();
    assert_eq!(event.origin, Origin::Local);
}

#[tokio::test(start_paused = true)]
async fn a_cooldown_never_shortens_the_later_until_wins() {
    let registry = registry();
    registry.apply_remote("openai", RemoteDecision::CoolingDown { until: in_secs(30) });
    registry.apply_remote("openai", RemoteDecision::CoolingDown { until: in_secs(5) });
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(!registry.is_available("openai"));
    // A later one extends.
    registry.apply_remote("openai", RemoteDecision::CoolingDown { until: in_secs(10) });
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(!registry.is_available("openai"));
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(registry.is_available("openai"));
    assert_eq!(state(&registry, "openai"), ProviderState::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_remote_cooldown_keeps_an_ejected_provider_out_as_long() {
    let registry = registry();
    registry.record("openai", FAIL, MS);
    registry.record("openai", FAIL, MS); // ejected for 10 s here
    registry.apply_remote("openai", RemoteDecision::CoolingDown { until: in_secs(30) });
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(!registry.is_available("openai"));
    assert_eq!(state(&registry, "openai"), ProviderState::Ejected);
}

#[tokio::test(start_paused = true)]
async fn a_restoration_ends_only_an_older_ejection() {
    let registry = registry();
    let before = Instant::now();
    tokio::time::advance(SECOND).await;
    registry.record("openai", FAIL, MS);
    registry.record("openai", FAIL, MS); // ejected now
    // A restoration from before this ejection is stale.
    registry.apply_remote("openai", RemoteDecision::Restored { at: before });
    assert_eq!(state(&registry, "openai"), ProviderState::Ejected);
    // A newer one ends it.
    tokio::time::advance(SECOND).await;
    let mut events = registry.subscribe();
    registry.apply_remote("openai", RemoteDecision::Restored { at: Instant::now() });
    assert_eq!(state(&registry, "openai"), ProviderState::Healthy);
    let event = events.recv().await.unwrap();
    assert_eq!(event.kind, HealthEventKind::Restored);
    assert_eq!(event.origin, Origin::Remote);
}

#[tokio::test(start_paused = true)]
async fn decisions_already_over_change_nothing() {
    let registry = registry();
    registry.register("openai");
    let past = Instant::now();
    tokio::time::advance(SECOND).await;
    registry.apply_remote("openai", RemoteDecision::CoolingDown { until: past });
    assert_eq!(state(&registry, "openai"), ProviderState::Healthy);
}

#[tokio::test(start_paused = true)]
async fn shared_trials_wait_for_the_lease_and_go_where_it_is() {
    let registry = registry();
    registry.share_trials(true);
    registry.record("openai", FAIL, MS);
    registry.record("openai", FAIL, MS);
    tokio::time::advance(Duration::from_secs(11)).await;
    // The ejection is over, but the lease is not decided: no trial here.
    assert!(!registry.is_available("openai"));
    assert_eq!(state(&registry, "openai"), ProviderState::Probing);
    assert!(registry.trial_pending("openai"));
    // Another replica holds it.
    registry.grant_trial("openai", TrialGrant::Elsewhere);
    assert!(!registry.trial_pending("openai"));
    assert!(!registry.is_available("openai"));
    // Its trial succeeded: healthy here too.
    registry.apply_remote("openai", RemoteDecision::Restored { at: Instant::now() });
    assert!(registry.is_available("openai"));
}

#[tokio::test(start_paused = true)]
async fn a_lease_held_here_lets_the_trial_through() {
    let registry = registry();
    registry.share_trials(true);
    registry.record("openai", FAIL, MS);
    registry.record("openai", FAIL, MS);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(!registry.is_available("openai"));
    registry.grant_trial("openai", TrialGrant::Here);
    assert!(registry.is_available("openai"));
}

#[tokio::test(start_paused = true)]
async fn without_the_store_each_replica_takes_its_own_trial() {
    let registry = registry();
    registry.share_trials(true);
    registry.record("openai", FAIL, MS);
    registry.record("openai", FAIL, MS);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(!registry.is_available("openai"));
    // The store went away: the pending trial is this replica's again.
    registry.share_trials(false);
    assert!(registry.is_available("openai"));
}

#[tokio::test(start_paused = true)]
async fn an_extended_cooldown_is_told_to_subscribers() {
    let registry = registry();
    let limited = |secs| {
        Outcome::Failure(FailureKind::RateLimited {
            retry_after: Some(Duration::from_secs(secs)),
        })
    };
    let mut events = registry.subscribe();
    registry.record("openai", limited(5), MS);
    let first = events.recv().await.unwrap();
    assert_eq!(first.kind, HealthEventKind::CoolingDown);
    // A shorter one changes nothing and says nothing; a longer one extends
    // and says so.
    registry.record("openai", limited(1), MS);
    registry.record("openai", limited(30), MS);
    let extended = events.recv().await.unwrap();
    assert_eq!(extended.kind, HealthEventKind::CoolingDown);
    assert_eq!(extended.from, ProviderState::CoolingDown);
    assert!(extended.until.unwrap() > first.until.unwrap() + Duration::from_secs(20));
    assert_eq!(extended.origin, Origin::Local);
}
