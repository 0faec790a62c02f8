//! One classifier decides retry, health and fallback together: a stack
//! given a classifier of its own (here: a 500 whose body says the account's
//! quota is spent is the caller's problem, not the provider's) neither
//! retries that answer, nor counts it against the provider, nor fails over
//! on it; the default classifier does all three. Real providers over
//! loopback sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{HeaderMap, Request, Response, StatusCode};
use tower::{ServiceExt, service_fn};
use understudy::core::{
    Classify, ClientErrorKind, LlmClassifier, Outcome, ProviderState, ReplayBody, ResponseBody,
    SharedClassifier,
};
use understudy::fallback::{Fallback, Target};
use understudy::health::{HealthConfig, HealthRegistry, ProviderSnapshot};
use understudy::provider::{ClientConfig, HttpClient, ProviderService};
use understudy::retry::{RetryConfig, RetryLayer};
use understudy::stack::{TargetService, TargetStack};

use self::support::{Canned, Upstream, request, text};

const QUOTA_SPENT: &str = r#"{"error":{"message":"This account's monthly quota is spent.","type":"server_error","param":null,"code":"account_quota"}}"#;
const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the backup."},"finish_reason":"stop"}]}"#;

/// A 500 whose body names `account_quota` (or that carries
/// `x-account-quota: spent`) is the caller's to fix; anything else is
/// classified as by default.
struct QuotaIsTheCallers;

impl Classify for QuotaIsTheCallers {
    fn classify_parts(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Outcome {
        let quota = body.is_some_and(|body| {
            body.windows(b"account_quota".len())
                .any(|window| window == b"account_quota")
        });
        let quota = quota
            || headers
                .get("x-account-quota")
                .is_some_and(|value| value == "spent");
        if status == StatusCode::INTERNAL_SERVER_ERROR && quota {
            return Outcome::ClientError(ClientErrorKind::Rejected(status));
        }
        LlmClassifier::new().classify_parts(status, headers, body)
    }

    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
        LlmClassifier::new().classify_error(error)
    }
}

fn target(
    name: &'static str,
    upstream: &Upstream,
    registry: &HealthRegistry,
    classifier: Option<&SharedClassifier>,
) -> Target<TargetService> {
    let client = HttpClient::new(ClientConfig::default()).unwrap();
    let mut provider = ProviderService::openai(client, &upstream.base_url(), None, "m").unwrap();
    if let Some(classifier) = classifier {
        // The provider reads error bodies, so it classifies them.
        provider = provider.with_classifier(classifier.clone());
    }
    let mut stack = TargetStack::new(name, "m", provider)
        .retry(RetryLayer::new(RetryConfig::default().max_retries(2)).jitter(|| 0.0))
        .health(registry)
        .first_chunk(Duration::from_secs(10));
    if let Some(classifier) = classifier {
        stack = stack.classifier(classifier.clone());
    }
    stack.build()
}

struct Run {
    status: StatusCode,
    body: String,
    primary_hits: u32,
    backup_hits: u32,
    primary: ProviderSnapshot,
}

/// One request: the primary answers the quota 500, the backup a good
/// completion; health ejects after three failures in a row.
async fn run(classifier: Option<SharedClassifier>) -> Run {
    let primary = Upstream::start(Canned::json(500, QUOTA_SPENT)).await;
    let backup = Upstream::start(Canned::json(200, COMPLETION)).await;
    let registry = HealthRegistry::new(
        HealthConfig::builder()
            .consecutive_failures(3)
            .build()
            .unwrap(),
    );
    let mut fallback = Fallback::builder()
        .target(target("primary", &primary, &registry, classifier.as_ref()))
        .target(target("backup", &backup, &registry, classifier.as_ref()))
        .availability(registry.clone());
    if let Some(classifier) = classifier {
        fallback = fallback.classifier(classifier);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        fallback.build().oneshot(request(false)),
    )
    .await
    .expect("the caller got no answer")
    .unwrap();
    let status = response.status();
    let body = text(response).await;
    let primary_snapshot = registry
        .snapshot()
        .into_iter()
        .find(|snapshot| snapshot.name == "primary")
        .unwrap();
    Run {
        status,
        body,
        primary_hits: primary.hits(),
        backup_hits: backup.hits(),
        primary: primary_snapshot,
    }
}

#[tokio::test]
async fn by_default_a_500_is_retried_counted_and_failed_over() {
    let run = run(None).await;
    assert_eq!(run.status, StatusCode::OK);
    assert!(run.body.contains("Hello from the backup."), "{}", run.body);
    assert_eq!(run.primary_hits, 3, "one try and two retries");
    assert_eq!(run.backup_hits, 1);
    assert_eq!(run.primary.state, ProviderState::Ejected);
}

#[tokio::test]
async fn a_custom_classifier_changes_retry_health_and_fallback_together() {
    let run = run(Some(SharedClassifier::new(QuotaIsTheCallers))).await;
    // Fallback: the caller's problem is answered as it is, not failed over.
    assert_eq!(run.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(run.body.contains("account_quota"), "{}", run.body);
    assert_eq!(run.backup_hits, 0);
    // Retry: not retried.
    assert_eq!(run.primary_hits, 1);
    // Health: not counted against the provider.
    assert_eq!(run.primary.state, ProviderState::Healthy);
    assert_eq!(run.primary.consecutive_failures, 0);
}

/// The layers alone, over a service that is no provider (so no outcome is
/// attached to its answers): each layer's own classifier decides.
async fn layers_alone(classifier: Option<SharedClassifier>) -> (StatusCode, u32, ProviderSnapshot) {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let primary = service_fn(move |_: Request<ReplayBody>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async {
            let response = Response::builder()
                .status(500)
                .header("x-account-quota", "spent")
                .body(ResponseBody::from(QUOTA_SPENT))
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    let backup = service_fn(|_: Request<ReplayBody>| async {
        Ok::<_, Infallible>(Response::new(ResponseBody::from(COMPLETION)))
    });
    let registry = HealthRegistry::new(
        HealthConfig::builder()
            .consecutive_failures(3)
            .build()
            .unwrap(),
    );
    let with = |stack: TargetStack<_>| match &classifier {
        Some(classifier) => stack.classifier(classifier.clone()),
        None => stack,
    };
    let retry = || RetryLayer::new(RetryConfig::default().max_retries(2)).jitter(|| 0.0);
    let mut fallback = Fallback::builder()
        .target(
            with(
                TargetStack::new("primary", "m", primary)
                    .retry(retry())
                    .health(&registry),
            )
            .build(),
        )
        .target(
            TargetStack::new("backup", "m", backup)
                .health(&registry)
                .build(),
        )
        .availability(registry.clone());
    if let Some(classifier) = &classifier {
        fallback = fallback.classifier(classifier.clone());
    }
    let response = fallback.build().oneshot(request(false)).await.unwrap();
    let snapshot = registry
        .snapshot()
        .into_iter()
        .find(|snapshot| snapshot.name == "primary")
        .unwrap();
    (response.status(), calls.load(Ordering::SeqCst), snapshot)
}

#[tokio::test(start_paused = true)]
async fn each_layer_classifies_with_the_stacks_classifier() {
    let (status, calls, primary) = layers_alone(None).await;
    assert_eq!((status, calls), (StatusCode::OK, 3));
    assert_eq!(primary.state, ProviderState::Ejected);

    let (status, calls, primary) =
        layers_alone(Some(SharedClassifier::new(QuotaIsTheCallers))).await;
    assert_eq!((status, calls), (StatusCode::INTERNAL_SERVER_ERROR, 1));
    assert_eq!(primary.state, ProviderState::Healthy);
    assert_eq!(primary.consecutive_failures, 0);
}
