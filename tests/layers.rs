//! Testing a failover stack layer by layer, the way an application would
//! test its own: `tower_test::mock` services stand in for the providers,
//! the test plays each provider through its handle, and tokio's clock is
//! paused so backoff and ejection timers cost no wall time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio_test::{assert_pending, assert_ready};
use tower::ServiceExt;
use tower_test::mock;
use understudy::core::{ReplayBody, ResponseBody, TargetName};
use understudy::fallback::{Fallback, Target};
use understudy::health::{HealthConfig, HealthRegistry};
use understudy::retry::{RetryConfig, RetryLayer};
use understudy::stack::{TargetService, TargetStack};

type Provider = mock::Mock<Request<ReplayBody>, Response<ResponseBody>>;
type ProviderHandle = mock::Handle<Request<ReplayBody>, Response<ResponseBody>>;

const FIRST_CHUNK_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST: &str = r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;

/// One target: retry → health → the commit point → the stand-in provider.
fn target(
    name: &'static str,
    provider: Provider,
    registry: &HealthRegistry,
    retry: RetryConfig,
) -> Target<TargetService> {
    TargetStack::new(name, format!("{name}-model"), provider)
        // Half the backoff ceiling, every time: the waits are exact.
        .retry(RetryLayer::new(retry).jitter(|| 0.5))
        .health(registry)
        .first_chunk(FIRST_CHUNK_TIMEOUT)
        .build()
}

struct Stack {
    fallback: Fallback<TargetService>,
    primary: ProviderHandle,
    backup: ProviderHandle,
    registry: HealthRegistry,
}

/// Primary, then backup; health ejects after two failures in a row, for
/// ten seconds.
fn stack(retry: RetryConfig) -> Stack {
    let registry = HealthRegistry::new(
        HealthConfig::builder()
            .consecutive_failures(2)
            .base_ejection(Duration::from_secs(10))
            .build()
            .unwrap(),
    );
    let (primary, primary_handle) = mock::pair();
    let (backup, backup_handle) = mock::pair();
    let fallback = Fallback::builder()
        .target(target("primary", primary, &registry, retry))
        .target(target("backup", backup, &registry, retry))
        .availability(registry.clone())
        .build();
    Stack {
        fallback,
        primary: primary_handle,
        backup: backup_handle,
        registry,
    }
}

fn chat_request() -> Request<ReplayBody> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(ReplayBody::from(REQUEST))
        .unwrap()
}

fn json(status: u16, body: &'static str) -> Response<ResponseBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(ResponseBody::from(body))
        .unwrap()
}

fn completion(who: &str) -> Response<ResponseBody> {
    let body = format!(
        r#"{{"id":"c1","object":"chat.completion","model":"{who}-model","choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello from {who}."}},"finish_reason":"stop"}}]}}"#
    );
    Response::builder()
        .header("content-type", "application/json")
        .body(ResponseBody::from(body))
        .unwrap()
}

const OVERLOADED: &str =
    r#"{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}"#;

async fn body_text(response: Response<ResponseBody>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn header<'a>(response: &'a Response<ResponseBody>, name: &str) -> &'a str {
    response.headers()[name].to_str().unwrap()
}

/// A stream whose first event never comes.
struct Silent;

impl Body for Silent {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn a_503_from_the_primary_sends_the_same_request_to_the_backup() {
    let Stack {
        fallback,
        mut primary,
        mut backup,
        ..
    } = stack(RetryConfig::default().max_retries(0));
    let call = tokio::spawn(fallback.oneshot(chat_request()));

    let (to_primary, answer) = primary.next_request().await.unwrap();
    assert_eq!(
        to_primary
            .extensions()
            .get::<TargetName>()
            .unwrap()
            .provider
            .as_ref(),
        "primary"
    );
    answer.send_response(json(503, OVERLOADED));

    let (to_backup, answer) = backup.next_request().await.unwrap();
    assert_eq!(
        to_backup
            .extensions()
            .get::<TargetName>()
            .unwrap()
            .provider
            .as_ref(),
        "backup"
    );
    assert_eq!(to_backup.uri(), to_primary.uri());
    assert_eq!(to_backup.headers(), to_primary.headers());
    assert_eq!(to_backup.body().bytes(), to_primary.body().bytes());
    answer.send_response(completion("backup"));

    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-understudy-provider"), "backup");
    assert_eq!(header(&response, "x-understudy-model"), "backup-model");
    assert_eq!(header(&response, "x-understudy-attempts"), "2");
    assert!(body_text(response).await.contains("Hello from backup."));
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_out_its_backoff_on_the_same_provider() {
    let Stack {
        fallback,
        mut primary,
        backup,
        ..
    } = stack(
        RetryConfig::default()
            .max_retries(1)
            .base_delay(Duration::from_millis(200)),
    );
    let call = tokio::spawn(fallback.oneshot(chat_request()));

    let (_, answer) = primary.next_request().await.unwrap();
    answer.send_response(json(503, OVERLOADED));

    // The first retry waits half of the 200 ms ceiling: nothing before.
    let mut retried = tokio_test::task::spawn(primary.next_request());
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_pending!(retried.poll());
    tokio::time::advance(Duration::from_millis(99)).await;
    assert_pending!(retried.poll());
    tokio::time::advance(Duration::from_millis(1)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let (_, answer) = assert_ready!(retried.poll()).unwrap();
    drop(retried);
    answer.send_response(completion("primary"));

    let response = call.await.unwrap().unwrap();
    assert_eq!(header(&response, "x-understudy-provider"), "primary");
    assert_eq!(header(&response, "x-understudy-attempts"), "2");
    drop(backup);
}

#[tokio::test(start_paused = true)]
async fn an_ejected_primary_is_skipped_until_its_ejection_ends() {
    let Stack {
        fallback,
        mut primary,
        mut backup,
        registry,
    } = stack(RetryConfig::default().max_retries(0));

    // Two failures in a row eject the primary.
    for _ in 0..2 {
        let call = tokio::spawn(fallback.clone().oneshot(chat_request()));
        let (_, answer) = primary.next_request().await.unwrap();
        answer.send_response(json(500, OVERLOADED));
        let (_, answer) = backup.next_request().await.unwrap();
        answer.send_response(completion("backup"));
        assert_eq!(
            header(&call.await.unwrap().unwrap(), "x-understudy-attempts"),
            "2"
        );
    }
    assert!(!registry.is_available("primary"));

    // Skipped: the backup answers at once, with one attempt made.
    let call = tokio::spawn(fallback.clone().oneshot(chat_request()));
    let (_, answer) = backup.next_request().await.unwrap();
    answer.send_response(completion("backup"));
    let response = call.await.unwrap().unwrap();
    assert_eq!(header(&response, "x-understudy-attempts"), "1");
    let mut untouched = tokio_test::task::spawn(primary.next_request());
    assert_pending!(untouched.poll());
    drop(untouched);

    // Ten seconds later, the next request is the primary's trial.
    tokio::time::advance(Duration::from_secs(10)).await;
    let call = tokio::spawn(fallback.clone().oneshot(chat_request()));
    let (_, answer) = primary.next_request().await.unwrap();
    answer.send_response(completion("primary"));
    let response = call.await.unwrap().unwrap();
    assert_eq!(header(&response, "x-understudy-provider"), "primary");
    assert!(registry.is_available("primary"));
}

#[tokio::test(start_paused = true)]
async fn a_stream_without_a_first_chunk_in_time_falls_over() {
    let Stack {
        fallback,
        mut primary,
        mut backup,
        ..
    } = stack(RetryConfig::default().max_retries(0));
    let call = tokio::spawn(fallback.oneshot(chat_request()));

    // The primary sends its head, then nothing.
    let (_, answer) = primary.next_request().await.unwrap();
    answer.send_response(
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(ResponseBody::new(Silent))
            .unwrap(),
    );
    // The paused clock runs to the first-chunk deadline as soon as every
    // task waits; the backup is asked then.
    let started = tokio::time::Instant::now();
    let (_, answer) = backup.next_request().await.unwrap();
    assert_eq!(started.elapsed(), FIRST_CHUNK_TIMEOUT);
    answer.send_response(completion("backup"));

    let response = call.await.unwrap().unwrap();
    assert_eq!(header(&response, "x-understudy-provider"), "backup");
    assert_eq!(header(&response, "x-understudy-attempts"), "2");
}

#[tokio::test(start_paused = true)]
async fn when_both_fail_the_caller_gets_one_openai_error() {
    let Stack {
        fallback,
        mut primary,
        mut backup,
        ..
    } = stack(RetryConfig::default().max_retries(0));
    let call = tokio::spawn(fallback.oneshot(chat_request()));
    let (_, answer) = primary.next_request().await.unwrap();
    answer.send_response(json(503, OVERLOADED));
    let (_, answer) = backup.next_request().await.unwrap();
    answer.send_error("connection reset");

    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(header(&response, "x-understudy-attempts"), "2");
    let error: serde_json::Value = serde_json::from_str(&body_text(response).await).unwrap();
    assert!(error["error"]["message"].is_string(), "{error}");
    assert!(error["error"]["type"].is_string(), "{error}");
}
