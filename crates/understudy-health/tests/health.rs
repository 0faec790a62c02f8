//! Health state machine and layer, with paused time.
#![allow(clippy::unwrap_used)] // test fixtures: a panic is a failed assertion

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use http::{Request, Response, StatusCode};
use tokio::sync::Notify;
use tower::{Layer, ServiceExt, service_fn};
use understudy_core::{
    ClientErrorKind, FailureKind, Outcome, PanicRouting, ProviderAvailability, ProviderState,
    ReplayBody, Unavailable, UnavailableKind, cause_ref,
};
use understudy_health::{
    EjectionReason, HealthConfig, HealthEventKind, HealthLayer, HealthRegistry,
};

const FAIL: Outcome = Outcome::Failure(FailureKind::Overloaded);
const MS: Duration = Duration::from_millis(10);

fn registry(config: understudy_health::HealthConfigBuilder) -> HealthRegistry {
    HealthRegistry::new(config.build().unwrap())
}

fn state(registry: &HealthRegistry, name: &str) -> ProviderState {
    registry
        .snapshot()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
        .state
}

#[tokio::test(start_paused = true)]
async fn ejects_after_n_consecutive_failures() {
    let registry = registry(HealthConfig::builder().consecutive_failures(3));
    registry.record("openai", FAIL, MS);
    registry.record("openai", FAIL, MS);
    registry.record("openai", Outcome::Success, MS); // the streak resets
    registry.record("openai", FAIL, MS);
    registry.record("openai", FAIL, MS);
    assert!(registry.is_available("openai"));
    registry.record("openai", FAIL, MS);
    assert!(!registry.is_available("openai"));
    let snapshot = &registry.snapshot()[0];
    assert_eq!(snapshot.state, ProviderState::Ejected);
    assert_eq!(snapshot.reason, Some(EjectionReason::ConsecutiveFailures));
    assert_eq!(snapshot.until_ms, Some(30_000));
    assert_eq!(snapshot.ejections, 1);
}

#[tokio::test(start_paused = true)]
async fn ratio_ejection_waits_for_the_minimum_request_count() {
    let registry = registry(
        HealthConfig::builder()
            .consecutive_failures(100)
            .failure_ratio(0.5)
            .min_requests(10),
    );
    // 4 failures in 8 requests: ratio 0.5, but under the minimum.
    for _ in 0..4 {
        registry.record("openai", Outcome::Success, MS);
        registry.record("openai", FAIL, MS);
    }
    assert!(registry.is_available("openai"));
    registry.record("openai", Outcome::Success, MS); // 9 requests, 4 failures
    assert!(registry.is_available("openai"));
    registry.record("openai", FAIL, MS); // 10 requests, 5 failures: 0.5
    assert!(!registry.is_available("openai"));
    assert_eq!(
        registry.snapshot()[0].reason,
        Some(EjectionReason::FailureRatio)
    );
}

#[tokio::test(start_paused = true)]
async fn old_failures_leave_the_window() {
    let registry = registry(
        HealthConfig::builder()
            .consecutive_failures(100)
            .min_requests(4)
            .window(Duration::from_secs(10)),
    );
    for _ in 0..3 {
        registry.record("openai", FAIL, MS);
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    registry.record("openai", FAIL, MS);
    registry.record("openai", Outcome::Success, MS);
    registry.record("openai", Outcome::Success, MS);
    registry.record("openai", Outcome::Success, MS);
    assert!(registry.is_available("openai"), "{:?}", registry.snapshot());
}

#[tokio::test(start_paused = true)]
async fn a_429_cools_down_exactly_its_retry_after_without_a_strike() {
    let registry = registry(HealthConfig::builder());
    let limited = Outcome::Failure(FailureKind::RateLimited {
        retry_after: Some(Duration::from_secs(7)),
    });
    registry.record("anthropic", limited, MS);
    assert_eq!(state(&registry, "anthropic"), ProviderState::CoolingDown);
    assert_eq!(
        registry.availability("anthropic"),
        understudy_core::Availability::Unavailable {
            kind: UnavailableKind::CoolingDown,
            until: Some(tokio::time::Instant::now() + Duration::from_secs(7)),
        }
    );
    // A shorter Retry-After never shortens it.
    registry.record(
        "anthropic",
        Outcome::Failure(FailureKind::RateLimited {
            retry_after: Some(Duration::from_secs(1)),
        }),
        MS,
    );
    tokio::time::advance(Duration::from_millis(6999)).await;
    assert!(!registry.is_available("anthropic"));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(registry.is_available("anthropic"));
    let snapshot = &registry.snapshot()[0];
    assert_eq!(snapshot.state, ProviderState::Healthy);
    assert_eq!(snapshot.ejections, 0, "a cooldown is not an ejection");
}

#[tokio::test(start_paused = true)]
async fn client_errors_never_eject() {
    let registry = registry(
        HealthConfig::builder()
            .consecutive_failures(1)
            .min_requests(1),
    );
    for outcome in [
        Outcome::ClientError(ClientErrorKind::Rejected(StatusCode::BAD_REQUEST)),
        Outcome::ClientError(ClientErrorKind::Rejected(StatusCode::UNAUTHORIZED)),
        Outcome::ClientError(ClientErrorKind::ContextLengthExceeded),
        Outcome::ClientError(ClientErrorKind::ContentFiltered),
        Outcome::Unavailable,
    ] {
        for _ in 0..50 {
            registry.record("openai", outcome, MS);
        }
    }
    assert!(registry.is_available("openai"));
    assert_eq!(registry.snapshot()[0].window_requests, 0);
}

#[tokio::test(start_paused = true)]
async fn state_is_per_provider() {
    let registry = registry(HealthConfig::builder().consecutive_failures(1));
    registry.record("openai", FAIL, MS);
    assert!(!registry.is_available("openai"));
    assert!(registry.is_available("anthropic"));
    registry.record("anthropic", Outcome::Success, MS);
    assert_eq!(state(&registry, "anthropic"), ProviderState::Healthy);
    assert_eq!(state(&registry, "openai"), ProviderState::Ejected);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_one_trial_under_concurrency() {
    let registry = registry(HealthConfig::builder().consecutive_failures(1));
    registry.record("openai", FAIL, MS);
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(registry.is_available("openai"), "the trial slot is free");

    let calls = Arc::new(AtomicU32::new(0));
    let release = Arc::new(Notify::new());
    let inner = {
        let calls = calls.clone();
        let release = release.clone();
        service_fn(move |_: Request<ReplayBody>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let release = release.clone();
            async move {
                release.notified().await;
                Ok::<_, std::convert::Infallible>(Response::new(()))
            }
        })
    };
    let service = HealthLayer::new(registry.clone(), "openai").layer(inner);
    let results = tokio::spawn(join_all((0..100).map(|_| {
        service
            .clone()
            .oneshot(Request::new(ReplayBody::from("{}")))
    })));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one trial reaches the provider"
    );
    assert!(!registry.is_available("openai"), "the trial slot is taken");
    release.notify_one();
    let results = results.await.unwrap();
    let refused = results
        .iter()
        .filter(|r| {
            r.as_ref().is_err_and(|e| {
                cause_ref::<Unavailable>(&**e).is_some_and(|u| u.kind() == UnavailableKind::Probing)
            })
        })
        .count();
    assert_eq!(refused, 99);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        state(&registry, "openai"),
        ProviderState::Healthy,
        "the trial restored it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_trial_frees_its_slot() {
    let registry = registry(HealthConfig::builder().consecutive_failures(1));
    registry.record("openai", FAIL, MS);
    tokio::time::advance(Duration::from_secs(30)).await;
    let hanging = service_fn(|_: Request<ReplayBody>| async {
        std::future::pending::<Result<Response<()>, std::convert::Infallible>>().await
    });
    let service = HealthLayer::new(registry.clone(), "openai").layer(hanging);
    let trial = tokio::spawn(service.oneshot(Request::new(ReplayBody::from("{}"))));
    tokio::task::yield_now().await;
    assert!(!registry.is_available("openai"));
    trial.abort();
    let _ = trial.await;
    assert!(registry.is_available("openai"), "the slot is free again");
}

#[tokio::test(start_paused = true)]
async fn a_failed_trial_doubles_the_ejection() {
    let registry = registry(
        HealthConfig::builder()
            .consecutive_failures(1)
            .base_ejection(Duration::from_secs(30))
            .max_ejection(Duration::from_mins(5)),
    );
    let mut events = registry.subscribe();
    registry.record("openai", FAIL, MS);
    assert_eq!(registry.snapshot()[0].until_ms, Some(30_000));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(state(&registry, "openai"), ProviderState::Probing);
    registry.record("openai", FAIL, MS); // the trial fails
    let snapshot = &registry.snapshot()[0];
    assert_eq!(snapshot.state, ProviderState::Ejected);
    assert_eq!(snapshot.until_ms, Some(60_000));
    assert_eq!(snapshot.reason, Some(EjectionReason::ProbeFailed));

    let kinds: Vec<HealthEventKind> = [
        events.recv().await.unwrap(),
        events.recv().await.unwrap(),
        events.recv().await.unwrap(),
    ]
    .iter()
    .map(|e| e.kind)
    .collect();
    assert_eq!(
        kinds,
        [
            HealthEventKind::Ejected(EjectionReason::ConsecutiveFailures),
            HealthEventKind::ProbeStarted,
            HealthEventKind::ProbeFailed,
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn ejection_time_is_capped_and_decays_after_a_healthy_period() {
    let registry = registry(
        HealthConfig::builder()
            .consecutive_failures(1)
            .base_ejection(Duration::from_secs(30))
            .max_ejection(Duration::from_secs(45))
            .decay_after(Duration::from_secs(100)),
    );
    registry.record("openai", FAIL, MS);
    tokio::time::advance(Duration::from_secs(30)).await;
    registry.record("openai", FAIL, MS); // failed trial: 2 × 30 s, capped at 45 s
    assert_eq!(registry.snapshot()[0].until_ms, Some(45_000));
    tokio::time::advance(Duration::from_secs(45)).await;
    registry.record("openai", Outcome::Success, MS); // restored
    assert_eq!(registry.snapshot()[0].ejections, 2);
    tokio::time::advance(Duration::from_secs(100)).await;
    registry.record("openai", Outcome::Success, MS);
    assert_eq!(
        registry.snapshot()[0].ejections,
        0,
        "forgotten after 100 s healthy"
    );
}

#[tokio::test(start_paused = true)]
async fn the_layer_fails_fast_without_calling_the_provider() {
    let registry = registry(HealthConfig::builder().consecutive_failures(2));
    let calls = Arc::new(AtomicU32::new(0));
    let inner = {
        let calls = calls.clone();
        service_fn(move |_: Request<ReplayBody>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Ok::<_, std::convert::Infallible>(Response::builder().status(503).body(()).unwrap())
            }
        })
    };
    let service = HealthLayer::new(registry.clone(), "openai").layer(inner);
    for _ in 0..2 {
        let response = service
            .clone()
            .oneshot(Request::new(ReplayBody::from("{}")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    for _ in 0..5 {
        let error = service
            .clone()
            .oneshot(Request::new(ReplayBody::from("{}")))
            .await
            .unwrap_err();
        let unavailable = cause_ref::<Unavailable>(&*error).unwrap();
        assert_eq!(unavailable.kind(), UnavailableKind::Ejected);
        assert_eq!(unavailable.reason(), "consecutive_failures");
        assert!(unavailable.until().is_some());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn panic_routing_passes_an_ejected_provider_and_records_the_outcome() {
    let registry = registry(HealthConfig::builder().consecutive_failures(1));
    let calls = Arc::new(AtomicU32::new(0));
    let inner = {
        let calls = calls.clone();
        service_fn(move |_: Request<ReplayBody>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let status = if n == 0 { 503 } else { 200 };
                Ok::<_, std::convert::Infallible>(
                    Response::builder().status(status).body(()).unwrap(),
                )
            }
        })
    };
    let service = HealthLayer::new(registry.clone(), "openai").layer(inner);
    let first = service
        .clone()
        .oneshot(Request::new(ReplayBody::from("{}")))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(state(&registry, "openai"), ProviderState::Ejected);
    // Without the marker: refused.
    assert!(
        service
            .clone()
            .oneshot(Request::new(ReplayBody::from("{}")))
            .await
            .is_err()
    );
    // With it: sent, and the success is recorded.
    let mut request = Request::new(ReplayBody::from("{}"));
    request.extensions_mut().insert(PanicRouting);
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let snapshot = registry.snapshot();
    assert_eq!(snapshot[0].consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn an_active_probe_restores_an_ejected_provider() {
    let registry = registry(
        HealthConfig::builder()
            .consecutive_failures(1)
            .base_ejection(Duration::from_mins(1)),
    );
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probes = Arc::new(AtomicU32::new(0));
    let _prober = {
        let up = up.clone();
        let probes = probes.clone();
        registry.spawn_prober("openai", Duration::from_secs(10), move || {
            probes.fetch_add(1, Ordering::SeqCst);
            let up = up.load(Ordering::SeqCst);
            async move { up }
        })
    };
    tokio::time::advance(Duration::from_secs(25)).await;
    assert_eq!(probes.load(Ordering::SeqCst), 0, "no probe while healthy");
    registry.record("openai", FAIL, MS);
    tokio::time::advance(Duration::from_secs(10)).await;
    tokio::task::yield_now().await;
    assert!(probes.load(Ordering::SeqCst) >= 1);
    assert!(
        !registry.is_available("openai"),
        "a failed probe keeps it out"
    );
    up.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(10)).await;
    tokio::task::yield_now().await;
    assert_eq!(
        state(&registry, "openai"),
        ProviderState::Healthy,
        "restored before the 60 s ejection ended"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_loses_events_and_the_loss_is_counted() {
    let registry = registry(HealthConfig::builder().consecutive_failures(1));
    let mut events = registry.subscribe();
    // Each round is two transitions: cooling down, then cooled down.
    for _ in 0..300 {
        registry.record(
            "openai",
            Outcome::Failure(FailureKind::RateLimited { retry_after: None }),
            MS,
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(registry.is_available("openai"));
    }
    // 600 transitions were sent into a buffer of 256.
    let first = events.recv().await.unwrap();
    assert_eq!(first.provider.as_ref(), "openai");
    assert_eq!(registry.lost_events(), 600 - 256);
}

#[test]
fn services_and_futures_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<HealthRegistry>();
    assert_send_sync::<HealthLayer>();
    assert_send_sync::<
        understudy_health::Health<
            tower::util::BoxCloneSyncService<
                Request<ReplayBody>,
                Response<()>,
                understudy_core::BoxError,
            >,
        >,
    >();
    assert_send::<
        understudy_health::future::ResponseFuture<
            std::future::Ready<Result<Response<()>, std::io::Error>>,
        >,
    >();
}

#[tokio::test(start_paused = true)]
async fn slow_successes_count_as_failures_when_a_threshold_is_set() {
    let registry = registry(
        HealthConfig::builder()
            .consecutive_failures(2)
            .slow_threshold(Duration::from_secs(5)),
    );
    registry.record("openai", Outcome::Success, Duration::from_secs(5)); // at the threshold: fine
    registry.record("openai", Outcome::Success, Duration::from_secs(6));
    assert!(registry.is_available("openai"));
    registry.record("openai", Outcome::Success, Duration::from_secs(9));
    assert!(!registry.is_available("openai"));
    let snapshot = &registry.snapshot()[0];
    assert_eq!(snapshot.reason, Some(EjectionReason::ConsecutiveFailures));
    assert!(snapshot.ewma_latency_ms.unwrap() > 5000.0);

    // Without a threshold, slowness alone never ejects.
    let patient = registry_default();
    for _ in 0..10 {
        patient.record("openai", Outcome::Success, Duration::from_mins(1));
    }
    assert!(patient.is_available("openai"));
}

fn registry_default() -> HealthRegistry {
    HealthRegistry::new(HealthConfig::default())
}

#[tokio::test(start_paused = true)]
async fn transitions_reach_the_observer() {
    use std::sync::Mutex;
    use understudy_core::events::{Event, Observer};

    #[derive(Default)]
    struct Transitions(Mutex<Vec<String>>);
    impl Observer for Transitions {
        fn on_event(&self, event: &Event<'_>) {
            if let Event::ProviderStateChanged {
                provider,
                from,
                to,
                reason,
                ..
            } = event
            {
                self.0
                    .lock()
                    .unwrap()
                    .push(format!("{provider}: {from} -> {to} ({reason})"));
            }
        }
    }

    let transitions = Arc::new(Transitions::default());
    let registry = HealthRegistry::with_observer(
        HealthConfig::builder()
            .consecutive_failures(1)
            .build()
            .unwrap(),
        transitions.clone(),
    );
    registry.record("openai", FAIL, MS);
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(registry.is_available("openai"));
    registry.record("openai", Outcome::Success, MS);
    assert_eq!(
        *transitions.0.lock().unwrap(),
        [
            "openai: healthy -> ejected (consecutive_failures)",
            "openai: ejected -> probing (ejection_ended)",
            "openai: probing -> healthy (probe_succeeded)",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_any_length_cools_down_without_a_panic() {
    let registry = registry(HealthConfig::builder());
    let limited = Outcome::Failure(FailureKind::RateLimited {
        retry_after: Some(Duration::MAX),
    });
    registry.record("openai", limited, MS);
    registry.record("openai", limited, MS);
    let snapshot = &registry.snapshot()[0];
    assert_eq!(snapshot.state, ProviderState::CoolingDown);
    assert!(snapshot.until_ms.is_some_and(|ms| ms > 0));
}

#[tokio::test(start_paused = true)]
async fn repeated_ejections_at_the_longest_allowed_length_do_not_overflow() {
    let day = understudy_health::MAX_HEALTH_DURATION;
    let registry = registry(
        HealthConfig::builder()
            .consecutive_failures(1)
            .base_ejection(day)
            .max_ejection(day),
    );
    for _ in 0..50 {
        registry.record("openai", FAIL, MS);
        tokio::time::advance(day).await;
        assert_eq!(state(&registry, "openai"), ProviderState::Probing);
    }
    registry.record("openai", FAIL, MS);
    assert_eq!(registry.snapshot()[0].until_ms, Some(86_400_000));
}
