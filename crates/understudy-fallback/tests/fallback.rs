//! Fallback selection over scripted targets, with paused time.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use tokio::sync::oneshot;
use tower::{Layer, ServiceExt};
use understudy_core::events::SharedObserver;
use understudy_core::{
    BoxError, ClassifiedError, FailureKind, LlmClassifier, Outcome, ReplayBody, RouteName,
    TargetName,
};
use understudy_fallback::{FailedAttempts, Fallback, FallbackOn, FallbackRules, PanicMode, Target};
use understudy_health::{HealthConfig, HealthLayer, HealthRegistry};

use support::{
    DropSignal, Events, Log, Seen, TargetService, body_string, completion, json, target,
};

const PROMPT: &str =
    r#"{"model":"chat","messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#;

fn request() -> Request<ReplayBody> {
    let mut request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-request-id", "req-42")
        .body(ReplayBody::from(PROMPT))
        .unwrap();
    request.extensions_mut().insert(RouteName::new("chat"));
    request
}

fn named(provider: &str, service: TargetService) -> Target<TargetService> {
    Target::new(
        TargetName::new(provider, format!("{provider}-model")),
        service,
    )
}

fn failing(
    status: u16,
) -> impl Fn() -> std::future::Ready<Result<http::Response<understudy_core::ResponseBody>, BoxError>>
+ Clone {
    move || {
        std::future::ready(Ok(json(
            status,
            r#"{"error":{"message":"nope","type":"server_error"}}"#,
        )))
    }
}

fn serving(
    name: &'static str,
) -> impl Fn() -> std::future::Ready<Result<http::Response<understudy_core::ResponseBody>, BoxError>>
+ Clone {
    move || std::future::ready(Ok(completion(name)))
}

/// What a target saw of [`request`]'s head: all of it.
fn assert_whole_head(seen: &Seen) {
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.uri, "/v1/chat/completions");
    assert_eq!(seen.route.as_ref().map(RouteName::as_str), Some("chat"));
    assert_eq!(seen.headers["x-request-id"], "req-42");
    assert_eq!(seen.headers["content-type"], "application/json");
}

fn observed() -> (Arc<Events>, SharedObserver) {
    let events = Arc::new(Events::default());
    let observer: SharedObserver = events.clone();
    (events, observer)
}

#[tokio::test(start_paused = true)]
async fn a_failing_primary_falls_back_with_the_same_request() {
    let (primary, backup) = (Log::default(), Log::default());
    let (events, observer) = observed();
    let fallback = Fallback::builder()
        .target(named("primary", target(&primary, failing(503))))
        .target(named("backup", target(&backup, serving("backup"))))
        .observer(observer)
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-understudy-provider"], "backup");
    assert_eq!(response.headers()["x-understudy-model"], "backup-model");
    assert_eq!(response.headers()["x-understudy-attempts"], "2");
    assert!(body_string(response).await.contains("hello from backup"));

    let (first, second) = (primary.get(0), backup.get(0));
    assert_eq!(first.body, PROMPT.as_bytes());
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers, first.headers);
    assert_eq!(second.headers["x-request-id"], "req-42");
    // The last target gets the request head moved rather than copied:
    // nothing of it may be lost on the way.
    assert_whole_head(&first);
    assert_whole_head(&second);
    assert_eq!(first.target.unwrap().provider.as_ref(), "primary");
    assert_eq!(second.target.unwrap().provider.as_ref(), "backup");
    assert_eq!(
        events.lines(),
        [r#"fallback primary->backup (overloaded) route=Some("chat")"#]
    );
}

#[tokio::test(start_paused = true)]
async fn a_single_target_gets_the_whole_request_and_its_failure_is_reported() {
    let only = Log::default();
    let (events, observer) = observed();
    let fallback = Fallback::builder()
        .target(named("only", target(&only, failing(503))))
        .observer(observer)
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers()["x-understudy-attempts"], "1");
    let failed = response.extensions().get::<FailedAttempts>().unwrap();
    assert_eq!(failed.0.len(), 1);
    assert_eq!(failed.0[0].provider.as_ref(), "only");
    assert_eq!(
        response
            .extensions()
            .get::<RouteName>()
            .map(RouteName::as_str),
        Some("chat")
    );
    assert_eq!(only.len(), 1);
    let seen = only.get(0);
    assert_whole_head(&seen);
    assert_eq!(seen.body, PROMPT.as_bytes());
    assert_eq!(seen.target.unwrap().provider.as_ref(), "only");
    assert_eq!(
        events.lines(),
        ["all failed attempts=1 all_unavailable=false"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_error_is_passed_on_without_fallback() {
    let (primary, backup) = (Log::default(), Log::default());
    let fallback = Fallback::builder()
        .target(named("primary", target(&primary, failing(400))))
        .target(named("backup", target(&backup, serving("backup"))))
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["x-understudy-provider"], "primary");
    assert_eq!(response.headers()["x-understudy-attempts"], "1");
    assert_eq!(backup.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn context_length_fails_over_only_when_the_policy_opts_in() {
    // As a provider service answers: the body read, its outcome attached.
    let too_long = || {
        let body = r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
        let mut response = json(400, body);
        let outcome = LlmClassifier::new().classify_parts(
            response.status(),
            response.headers(),
            Some(body.as_bytes()),
        );
        response.extensions_mut().insert(outcome);
        std::future::ready(Ok(response))
    };
    for (policy, expected) in [
        (FallbackRules::default(), StatusCode::BAD_REQUEST),
        (
            FallbackRules::default().on(FallbackOn::ContextLength),
            StatusCode::OK,
        ),
    ] {
        let (small, large) = (Log::default(), Log::default());
        let fallback = Fallback::builder()
            .target(named("small", target(&small, too_long)))
            .target(named("large", target(&large, serving("large"))))
            .policy(policy)
            .build();
        let response = fallback.oneshot(request()).await.unwrap();
        assert_eq!(response.status(), expected);
        assert_eq!(large.len(), usize::from(expected == StatusCode::OK));
    }
}

#[tokio::test(start_paused = true)]
async fn an_ejected_primary_is_skipped_without_being_called() {
    let registry = HealthRegistry::new(
        HealthConfig::builder()
            .consecutive_failures(1)
            .build()
            .unwrap(),
    );
    registry.record(
        "primary",
        Outcome::Failure(FailureKind::Connect),
        Duration::from_millis(1),
    );
    let (primary, backup) = (Log::default(), Log::default());
    let (events, observer) = observed();
    let fallback = Fallback::builder()
        .target(named("primary", target(&primary, serving("primary"))))
        .target(named("backup", target(&backup, serving("backup"))))
        .availability(registry)
        .observer(observer)
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-understudy-provider"], "backup");
    assert_eq!(response.headers()["x-understudy-attempts"], "1");
    assert_eq!(primary.len(), 0);
    assert_eq!(
        events.lines(),
        [r#"fallback primary->backup (unavailable) route=Some("chat")"#]
    );
}

/// A target stack with a real health layer, as a gateway builds it.
fn guarded(registry: &HealthRegistry, name: &str, log: &Log) -> Target<TargetService> {
    let service =
        HealthLayer::new(registry.clone(), name.to_owned()).layer(target(log, serving("anyone")));
    named(name, TargetService::new(service))
}

#[tokio::test(start_paused = true)]
async fn panic_mode_tries_the_soonest_back_first_when_all_are_ejected() {
    let registry = HealthRegistry::new(
        HealthConfig::builder()
            .consecutive_failures(1)
            .base_ejection(Duration::from_secs(30))
            .build()
            .unwrap(),
    );
    // "late" is ejected first, so its ejection ends first... then "early"
    // ejected 10 s later ends 10 s later. Order of return: late, early.
    registry.record(
        "late",
        Outcome::Failure(FailureKind::Connect),
        Duration::ZERO,
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    registry.record(
        "early",
        Outcome::Failure(FailureKind::Connect),
        Duration::ZERO,
    );
    let (early, late) = (Log::default(), Log::default());
    let (events, observer) = observed();
    let fallback = Fallback::builder()
        .target(guarded(&registry, "early", &early))
        .target(guarded(&registry, "late", &late))
        .availability(registry.clone())
        .observer(observer)
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-understudy-provider"], "late");
    assert_eq!((early.len(), late.len()), (0, 1));
    assert!(events.lines().is_empty(), "{:?}", events.lines());
}

#[tokio::test(start_paused = true)]
async fn fail_fast_panic_mode_answers_503_without_calling_anyone() {
    let registry = HealthRegistry::new(
        HealthConfig::builder()
            .consecutive_failures(1)
            .build()
            .unwrap(),
    );
    registry.record("a", Outcome::Failure(FailureKind::Connect), Duration::ZERO);
    registry.record(
        "b",
        Outcome::Failure(FailureKind::Overloaded),
        Duration::ZERO,
    );
    let (a, b) = (Log::default(), Log::default());
    let (events, observer) = observed();
    let fallback = Fallback::builder()
        .target(guarded(&registry, "a", &a))
        .target(guarded(&registry, "b", &b))
        .availability(registry.clone())
        .policy(FallbackRules::default().panic_mode(PanicMode::FailFast))
        .observer(observer)
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["x-understudy-attempts"], "0");
    assert_eq!((a.len(), b.len()), (0, 0));
    assert_eq!(
        events.lines(),
        ["all failed attempts=0 all_unavailable=true"]
    );
    let body = body_string(response).await;
    assert!(body.contains("a/a-model: skipped (ejected)"), "{body}");
    assert!(body.contains("b/b-model: skipped (ejected)"), "{body}");
}

#[tokio::test(start_paused = true)]
async fn three_targets_with_the_first_two_failing_differently() {
    let (one, two, three) = (Log::default(), Log::default(), Log::default());
    let (events, observer) = observed();
    let refused = || {
        std::future::ready(
            Err::<http::Response<understudy_core::ResponseBody>, BoxError>(
                ClassifiedError::new(Outcome::Failure(FailureKind::Connect)).into(),
            ),
        )
    };
    let fallback = Fallback::builder()
        .target(named("one", target(&one, refused)))
        .target(named("two", target(&two, failing(500))))
        .target(named("three", target(&three, serving("three"))))
        .observer(observer)
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.headers()["x-understudy-provider"], "three");
    assert_eq!(response.headers()["x-understudy-attempts"], "3");
    assert_eq!((one.len(), two.len(), three.len()), (1, 1, 1));
    assert_eq!(
        events.lines(),
        [
            r#"fallback one->two (connect error) route=Some("chat")"#,
            r#"fallback two->three (server error (500)) route=Some("chat")"#,
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn when_every_target_fails_the_error_lists_every_attempt() {
    let (one, two) = (Log::default(), Log::default());
    let (events, observer) = observed();
    let fallback = Fallback::builder()
        .target(named("one", target(&one, failing(502))))
        .target(named("two", target(&two, failing(529))))
        .observer(observer)
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers()["x-understudy-attempts"], "2");
    assert!(!response.headers().contains_key("x-understudy-provider"));
    let attempts = response
        .extensions()
        .get::<FailedAttempts>()
        .unwrap()
        .0
        .clone();
    assert_eq!(attempts.len(), 2);
    let body: serde_json::Value = serde_json::from_str(&body_string(response).await).unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(body["error"]["code"], "all_providers_failed");
    assert_eq!(
        body["error"]["message"],
        "no provider could serve model `chat`: one/one-model: server error (502); two/two-model: overloaded"
    );
    assert_eq!(
        events.lines().last().unwrap(),
        "all failed attempts=2 all_unavailable=false"
    );
}

#[tokio::test(start_paused = true)]
async fn every_target_rate_limited_answers_429_with_the_shortest_wait() {
    let limited = |secs: &'static str| {
        move || {
            let mut response = json(
                429,
                r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#,
            );
            response
                .headers_mut()
                .insert("retry-after", secs.parse().unwrap());
            std::future::ready(Ok::<_, BoxError>(response))
        }
    };
    let (one, two) = (Log::default(), Log::default());
    let fallback = Fallback::builder()
        .target(named("one", target(&one, limited("20"))))
        .target(named("two", target(&two, limited("7"))))
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    let body = body_string(response).await;
    assert!(body.contains("rate_limit_error"), "{body}");
}

#[tokio::test(start_paused = true)]
async fn max_targets_bounds_the_attempts() {
    let (one, two) = (Log::default(), Log::default());
    let fallback = Fallback::builder()
        .target(named("one", target(&one, failing(503))))
        .target(named("two", target(&two, serving("two"))))
        .policy(FallbackRules::default().max_targets(1))
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(two.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_caller_cancels_the_attempt_and_tries_nothing_more() {
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let (started_tx, started_rx) = oneshot::channel();
    let slot = Arc::new(std::sync::Mutex::new(Some((dropped_tx, started_tx))));
    let hanging = move || {
        let (dropped, started) = slot.lock().unwrap().take().unwrap();
        async move {
            let _signal = DropSignal(Some(dropped));
            let _ = started.send(());
            std::future::pending::<Result<http::Response<understudy_core::ResponseBody>, BoxError>>(
            )
            .await
        }
    };
    let (one, two) = (Log::default(), Log::default());
    let fallback = Fallback::builder()
        .target(named("one", target(&one, hanging)))
        .target(named("two", target(&two, serving("two"))))
        .build();

    let call = tokio::spawn(fallback.oneshot(request()));
    started_rx.await.unwrap();
    call.abort();

    dropped_rx.await.unwrap();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_eq!(two.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_never_ready_target_does_not_block_the_others() {
    // Steer would wait for every target's readiness; this selector waits
    // only for the target an attempt goes to.
    let (stuck, mut handle) = tower_test::mock::pair::<
        Request<ReplayBody>,
        http::Response<understudy_core::ResponseBody>,
    >();
    handle.allow(0);
    let log = Log::default();
    let mut fallback = Fallback::builder()
        .target(named("ok", target(&log, serving("ok"))))
        .target(named("stuck", TargetService::new(stuck)))
        .build();

    tokio::time::timeout(Duration::from_millis(1), fallback.ready())
        .await
        .unwrap()
        .unwrap();
    let response = fallback.oneshot(request()).await.unwrap();
    assert_eq!(response.headers()["x-understudy-provider"], "ok");
}
