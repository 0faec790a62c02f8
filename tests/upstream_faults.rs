//! Faulty upstream answers through real target stacks (retry → health →
//! first chunk → provider) over loopback sockets: every one of them must
//! reach the caller as an answer, from the backup when there is one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::StatusCode;
use tower::ServiceExt;
use understudy::core::ProviderState;
use understudy::fallback::{Fallback, Target};
use understudy::health::{HealthConfig, HealthRegistry};
use understudy::provider::{ApiKey, ClientConfig, HttpClient, ProviderService};
use understudy::retry::{RetryConfig, RetryLayer};
use understudy::stack::{TargetService, TargetStack};

use self::support::{Canned, Upstream, request, text};

const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the backup."},"finish_reason":"stop"}]}"#;
const BAD_KEY: &str = r#"{"error":{"message":"Incorrect API key provided: sk-abc***xyz","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;

/// One target as the gateway builds it: retry → health → first chunk →
/// the OpenAI-compatible provider.
fn target(
    name: &'static str,
    upstream: &Upstream,
    registry: &HealthRegistry,
) -> Target<TargetService> {
    let client = HttpClient::new(ClientConfig::default()).unwrap();
    let provider = ProviderService::openai(
        client,
        &upstream.base_url(),
        Some(ApiKey::new("sk-gateway-key")),
        "m",
    )
    .unwrap();
    TargetStack::new(name, "m", provider)
        .retry(RetryLayer::new(RetryConfig::default().max_retries(2)).jitter(|| 0.0))
        .health(registry)
        .first_chunk(Duration::from_secs(10))
        .build()
}

fn registry() -> HealthRegistry {
    HealthRegistry::new(
        HealthConfig::builder()
            .consecutive_failures(5)
            .build()
            .unwrap(),
    )
}

fn snapshot(registry: &HealthRegistry, name: &str) -> understudy::health::ProviderSnapshot {
    registry
        .snapshot()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
}

/// Sends one request through primary then backup; the backup answers a
/// good completion. Returns the caller's answer, the upstreams and health.
async fn through_fallback(
    primary: Canned,
    stream: bool,
) -> (StatusCode, String, Upstream, Upstream, HealthRegistry) {
    let primary = Upstream::start(primary).await;
    let backup = Upstream::start(Canned::json(200, COMPLETION)).await;
    let registry = registry();
    let fallback = Fallback::builder()
        .target(target("primary", &primary, &registry))
        .target(target("backup", &backup, &registry))
        .availability(registry.clone())
        .build();
    let response = tokio::time::timeout(Duration::from_secs(10), fallback.oneshot(request(stream)))
        .await
        .expect("the caller got no answer")
        .unwrap();
    let status = response.status();
    (status, text(response).await, primary, backup, registry)
}

#[tokio::test]
async fn a_retry_after_past_any_clock_falls_back_instead_of_panicking() {
    let limited = Canned::json(
        429,
        r#"{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
    )
    .header("retry-after", "10000000000000000000");
    let (status, body, primary, backup, registry) = through_fallback(limited, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, COMPLETION);
    assert_eq!(primary.hits(), 1, "an hour's wait is not waited for");
    assert_eq!(backup.hits(), 1);
    let primary = snapshot(&registry, "primary");
    assert_eq!(primary.state, ProviderState::CoolingDown);
    // Clamped to an hour.
    assert!(
        primary.until_ms.is_some_and(|ms| ms <= 3_600_000),
        "{primary:?}"
    );
}

#[tokio::test]
async fn a_ratelimit_reset_past_any_clock_falls_back_instead_of_panicking() {
    // Eleven million years; and two terms that each fit a `Duration` but
    // whose sum does not.
    for reset in ["99999999999h", "5000000000000000h5000000000000000h"] {
        let limited = Canned::json(
            429,
            r#"{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        )
        .header("x-ratelimit-remaining-requests", "0")
        .header("x-ratelimit-reset-requests", reset);
        let (status, body, primary, backup, registry) = through_fallback(limited, false).await;
        assert_eq!(status, StatusCode::OK, "{reset}: {body}");
        assert_eq!(body, COMPLETION);
        assert_eq!(primary.hits(), 1, "{reset}");
        assert_eq!(backup.hits(), 1, "{reset}");
        let primary = snapshot(&registry, "primary");
        assert_eq!(primary.state, ProviderState::CoolingDown, "{reset}");
        // Clamped to an hour.
        assert!(
            primary.until_ms.is_some_and(|ms| ms <= 3_600_000),
            "{reset}: {primary:?}"
        );
    }
}

#[tokio::test]
async fn a_2xx_body_without_an_answers_shape_falls_back() {
    for bad in ["{this is not json}", "{}", r#"{"ok":true}"#] {
        let (status, body, primary, backup, registry) =
            through_fallback(Canned::json(200, bad), false).await;
        assert_eq!(status, StatusCode::OK, "{bad}: {body}");
        assert_eq!(body, COMPLETION, "{bad}");
        // Broken answers are provider failures: retried, then failed over.
        assert_eq!(primary.hits(), 3, "{bad}");
        assert_eq!(backup.hits(), 1, "{bad}");
        let primary = snapshot(&registry, "primary");
        assert_eq!(primary.consecutive_failures, 3, "{bad}");
        assert_eq!(snapshot(&registry, "backup").consecutive_failures, 0);
    }
}

#[tokio::test]
async fn a_2xx_body_that_is_not_utf8_falls_back() {
    let bad = b"{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"\xff\xfe\"},\"finish_reason\":\"stop\"}]}";
    let (status, body, primary, backup, _) =
        through_fallback(Canned::new(200, "application/json", bad), false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, COMPLETION);
    assert!(primary.hits() >= 1);
    assert_eq!(backup.hits(), 1);
}

#[tokio::test]
async fn a_stream_that_is_not_utf8_before_its_first_content_falls_back() {
    let stream = b"data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xff\xfe\"},\"finish_reason\":null}]}\n\n";
    let (status, body, primary, backup, registry) =
        through_fallback(Canned::new(200, "text/event-stream", stream), true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The backup's non-streaming answer, not a lossy copy of the primary's.
    assert_eq!(body, COMPLETION);
    assert!(!body.contains('\u{FFFD}'));
    assert!(primary.hits() >= 1);
    assert_eq!(backup.hits(), 1);
    assert!(snapshot(&registry, "primary").consecutive_failures >= 1);
}

#[tokio::test]
async fn a_rejected_key_fails_over_and_counts_against_the_provider() {
    let (status, body, primary, backup, registry) =
        through_fallback(Canned::json(401, BAD_KEY), false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, COMPLETION);
    assert_eq!(primary.hits(), 1, "a rejected key is not retried");
    assert_eq!(backup.hits(), 1);
    assert_eq!(snapshot(&registry, "primary").consecutive_failures, 1);
}

#[tokio::test]
async fn a_rejected_key_on_the_only_target_is_a_502_without_the_providers_words() {
    for rejected in [401, 403] {
        let upstream = Upstream::start(Canned::json(rejected, BAD_KEY)).await;
        let registry = registry();
        let fallback = Fallback::builder()
            .target(target("only", &upstream, &registry))
            .availability(registry.clone())
            .build();
        let response = fallback.oneshot(request(false)).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let body = text(response).await;
        assert!(!body.contains("sk-abc"), "{body}");
        assert!(!body.contains("Incorrect API key"), "{body}");
        assert!(!body.contains("sk-gateway-key"), "{body}");
        assert_eq!(upstream.hits(), 1);
        assert_eq!(snapshot(&registry, "only").consecutive_failures, 1);
    }

    // The provider alone, as a route without fallback would call it.
    let upstream = Upstream::start(Canned::json(401, BAD_KEY)).await;
    let client = HttpClient::new(ClientConfig::default()).unwrap();
    let provider = ProviderService::openai(
        client,
        &upstream.base_url(),
        Some(ApiKey::new("sk-gateway-key")),
        "m",
    )
    .unwrap();
    let response = provider.oneshot(request(false)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = text(response).await;
    assert!(!body.contains("sk-abc"), "{body}");
    assert!(!body.contains("Incorrect API key"), "{body}");
    assert!(body.contains("upstream_auth_failed"), "{body}");
}
