//! The retry layer over counting inner services, with paused time.
#![allow(clippy::unwrap_used)] // test fixtures: a panic is a failed assertion
#![allow(clippy::unnecessary_wraps)] // fixtures answer in the inner service's Result shape

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt, service_fn};
use understudy_core::events::{Event, Observer};
use understudy_core::{
    Attempt, AttemptCounter, BoxError, Classify, Deadline, FailureKind, LlmClassifier, Outcome,
    ReplayBody, Unavailable, UnavailableKind,
};
use understudy_retry::{RetryConfig, RetryError, RetryLayer};

#[tokio::test(start_paused = true)]
async fn retries_a_503_and_numbers_the_attempts() {
    let Inner {
        calls,
        seen,
        service,
    } = Inner::new(|n| if n == 0 { status(503) } else { status(200) });
    let counter = AttemptCounter::new();
    let mut request = request();
    request.extensions_mut().insert(counter.clone());
    let response = layer(RetryConfig::default())
        .layer(service)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let attempts: Vec<u32> = seen.lock().unwrap().iter().map(|s| s.attempt.0).collect();
    assert_eq!(attempts, [1, 2]);
    assert_eq!(counter.get(), 1, "one re-send");
}

#[tokio::test(start_paused = true)]
async fn never_retries_the_callers_fault_or_an_unavailable_target() {
    // 401 and 403 reject the provider key: the same key would be rejected
    // again, so they go back at once (to fail over) like the caller's faults.
    for code in [400, 401, 403, 404, 413, 422] {
        let Inner { calls, service, .. } = Inner::new(move |_| status(code));
        let response = layer(RetryConfig::default().max_retries(3))
            .layer(service)
            .oneshot(request())
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), code);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "status {code}");
    }

    let Inner { calls, service, .. } = Inner::new(|_| {
        Err(Unavailable::new("openai", UnavailableKind::Ejected, "5 consecutive failures").into())
    });
    let error = layer(RetryConfig::default().max_retries(3))
        .layer(service)
        .oneshot(request())
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        LlmClassifier::new().classify_error(&*error),
        Outcome::Unavailable
    );

    let Inner { calls, service, .. } = Inner::new(|_| {
        let body = r#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
        let mut response = status(400)?;
        response
            .extensions_mut()
            .insert(LlmClassifier::new().classify_parts(
                StatusCode::BAD_REQUEST,
                &http::HeaderMap::new(),
                Some(body.as_bytes()),
            ));
        Ok(response)
    });
    layer(RetryConfig::default().max_retries(3))
        .layer(service)
        .oneshot(request())
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_two_seconds_waits_exactly_two_seconds() {
    let Inner { calls, service, .. } = Inner::new(|n| {
        if n == 0 {
            limited("retry-after", "2")
        } else {
            status(200)
        }
    });
    let start = tokio::time::Instant::now();
    let mut task = tokio::spawn(
        layer(RetryConfig::default())
            .layer(service)
            .oneshot(request()),
    );
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::advance(Duration::from_millis(1999)).await;
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not before 2 s");
    tokio::time::advance(Duration::from_millis(1)).await;
    let response = (&mut task).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Paused time would run on to any later wake-up: pin it.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn retry_after_ms_is_honoured_too() {
    let Inner { service, .. } = Inner::new(|n| {
        if n == 0 {
            limited("retry-after-ms", "250")
        } else {
            status(200)
        }
    });
    let start = tokio::time::Instant::now();
    layer(RetryConfig::default())
        .layer(service)
        .oneshot(request())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_any_clock_is_an_hour_and_never_a_panic() {
    for (header, value) in [
        ("retry-after", "10000000000000000000"),
        ("retry-after-ms", "18446744073709551615000"),
        ("x-ratelimit-reset-requests", "99999999999h"),
    ] {
        // The default cap refuses the wait at once.
        let Inner { calls, service, .. } = Inner::new(move |_| limited(header, value));
        let response = layer(RetryConfig::default().max_retries(3))
            .layer(service)
            .oneshot(request())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{header}");

        // Without a cap, and with every other duration absurd too, the wait
        // is the hour headers are clamped to.
        let Inner { calls, service, .. } = Inner::new(move |n| {
            if n == 0 {
                limited(header, value)
            } else {
                status(200)
            }
        });
        let config = RetryConfig::default()
            .max_retry_after(Duration::MAX)
            .min_remaining(Duration::ZERO)
            .base_delay(Duration::MAX)
            .max_delay(Duration::MAX);
        let mut request = request();
        request
            .extensions_mut()
            .insert(Deadline::after(Duration::MAX));
        let start = tokio::time::Instant::now();
        let response = layer(config).layer(service).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "{header}");
        assert_eq!(
            start.elapsed(),
            understudy_core::MAX_RETRY_AFTER,
            "{header}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn absurd_backoff_and_remaining_time_do_not_overflow() {
    let Inner { calls, service, .. } = Inner::new(|_| status(503));
    let config = RetryConfig::default()
        .max_retries(u32::MAX)
        .base_delay(Duration::MAX)
        .max_delay(Duration::MAX)
        .min_remaining(Duration::MAX)
        .budget(Duration::MAX, u32::MAX, f64::MAX);
    let mut request = request();
    request
        .extensions_mut()
        .insert(Deadline::after(Duration::from_secs(1)));
    let response = layer(config).layer(service).oneshot(request).await.unwrap();
    // Nothing fits before the deadline: the first answer goes back.
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_the_cap_returns_at_once() {
    let Inner { calls, service, .. } = Inner::new(|_| limited("retry-after", "30"));
    let start = tokio::time::Instant::now();
    let response = layer(
        RetryConfig::default()
            .max_retries(3)
            .max_retry_after(Duration::from_secs(3)),
    )
    .layer(service)
    .oneshot(request())
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_fall_in_the_jittered_bounds() {
    let Inner { seen, service, .. } = Inner::new(|_| status(502));
    let config = RetryConfig::default()
        .max_retries(4)
        .base_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(300));
    layer(config)
        .layer(service)
        .oneshot(request())
        .await
        .unwrap();
    let at: Vec<Duration> = seen.lock().unwrap().iter().map(|s| s.at).collect();
    assert_eq!(at.len(), 5);
    let ceilings = [100, 200, 300, 300].map(Duration::from_millis);
    for (gap, ceiling) in at
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .zip(ceilings)
    {
        assert!(gap < ceiling, "{gap:?} >= {ceiling:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn injected_jitter_gives_exact_waits() {
    let Inner { seen, service, .. } = Inner::new(|_| status(500));
    let config = RetryConfig::default()
        .max_retries(2)
        .base_delay(Duration::from_millis(100));
    layer(config)
        .jitter(|| 0.5)
        .layer(service)
        .oneshot(request())
        .await
        .unwrap();
    let at: Vec<Duration> = seen.lock().unwrap().iter().map(|s| s.at).collect();
    assert_eq!(at[1].saturating_sub(at[0]), Duration::from_millis(50));
    assert_eq!(at[2].saturating_sub(at[1]), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn the_budget_stops_a_retry_storm() {
    let Inner { calls, service, .. } = Inner::new(|_| status(503));
    let retry = layer(RetryConfig::default().max_retries(3).budget(
        Duration::from_secs(10),
        1,
        0.2,
    ))
    .jitter(|| 0.0);
    let budget = retry.get_budget().clone();
    let mut service = retry.layer(service);
    let requests = 500;
    for _ in 0..requests {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let calls = calls.load(Ordering::SeqCst);
    // At most 20% of 500 requests plus a floor of 1/s over 10 s.
    assert!(calls <= requests + 100 + 10, "{calls} calls");
    assert!(calls >= requests + 100, "the budget is used, {calls} calls");
    assert!(budget.exhausted() > 0);
}

#[tokio::test(start_paused = true)]
async fn budget_exhaustion_is_reported() {
    let Inner { service, .. } = Inner::new(|_| status(503));
    let events = Recorder::default();
    let retry = layer(RetryConfig::default().budget(Duration::from_secs(10), 0, 0.0))
        .observer(Arc::new(events.clone()));
    retry.layer(service).oneshot(request()).await.unwrap();
    assert_eq!(events.names(), ["budget_exhausted openai"]);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_every_wait() {
    // A 2 s Retry-After under the cap, but only 1 s left: no retry, at once.
    let Inner { calls, service, .. } = Inner::new(|_| limited("retry-after", "2"));
    let mut request = request();
    request
        .extensions_mut()
        .insert(Deadline::after(Duration::from_secs(1)));
    let start = tokio::time::Instant::now();
    layer(RetryConfig::default())
        .layer(service)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);

    // A 90 ms backoff with 100 ms left and 50 ms required after it: no retry.
    assert_eq!(
        calls_with_backoff_and_time_left(Duration::from_millis(100)).await,
        1
    );
    // With room left, the same retry happens.
    assert_eq!(
        calls_with_backoff_and_time_left(Duration::from_secs(1)).await,
        2
    );
}

/// Calls reaching a failing service whose first retry waits 90 ms, with
/// `left` before the deadline.
async fn calls_with_backoff_and_time_left(left: Duration) -> u32 {
    let Inner { calls, service, .. } = Inner::new(|_| status(500));
    let mut request = request();
    request.extensions_mut().insert(Deadline::after(left));
    layer(RetryConfig::default().base_delay(Duration::from_millis(100)))
        .jitter(|| 0.9)
        .layer(service)
        .oneshot(request)
        .await
        .unwrap();
    calls.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn every_attempt_sends_the_same_bytes_without_copying() {
    let Inner { seen, service, .. } = Inner::new(|n| if n < 2 { status(500) } else { status(200) });
    let body =
        Bytes::from(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#);
    let pointer = body.as_ptr();
    let mut request = Request::new(ReplayBody::new(body.clone()));
    request
        .headers_mut()
        .insert("x-trace", "abc".parse().unwrap());
    layer(RetryConfig::default().max_retries(2))
        .layer(service)
        .oneshot(request)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for attempt in seen.iter() {
        assert_eq!(attempt.body, body);
        assert_eq!(attempt.body.as_ptr(), pointer, "no copy of the body");
        assert_eq!(attempt.trace.as_deref(), Some("abc"));
    }
}

#[tokio::test(start_paused = true)]
async fn errors_end_in_a_typed_error_that_keeps_the_cause() {
    let Inner { calls, service, .. } =
        Inner::new(|_| Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()));
    let events = Recorder::default();
    let error = layer(RetryConfig::default().max_retries(2))
        .observer(Arc::new(events.clone()))
        .layer(service)
        .oneshot(request())
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let retry = error.downcast_ref::<RetryError>().unwrap();
    assert_eq!(retry.attempts(), 3);
    assert_eq!(retry.outcome(), Outcome::Failure(FailureKind::Connect));
    assert_eq!(
        error.to_string(),
        "gave up after 3 attempt(s): connect error"
    );
    assert_eq!(
        LlmClassifier::new().classify_error(&*error),
        Outcome::Failure(FailureKind::Connect)
    );
    assert_eq!(events.names(), ["retry openai 2", "retry openai 3"]);
}

#[test]
fn services_and_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let Inner { service, .. } = Inner::new(|_| status(200));
    let mut retry = layer(RetryConfig::default()).layer(service);
    assert_send(&retry);
    assert_send(&retry.call(request()));
}

// === fixtures ===

fn layer(config: RetryConfig) -> RetryLayer {
    RetryLayer::new(config).provider("openai")
}

fn request() -> Request<ReplayBody> {
    Request::new(ReplayBody::from(r#"{"model":"chat"}"#))
}

type Answer = Result<Response<()>, BoxError>;

fn status(code: u16) -> Answer {
    Ok(Response::builder().status(code).body(()).unwrap())
}

fn limited(header: &'static str, value: &'static str) -> Answer {
    Ok(Response::builder()
        .status(429)
        .header(header, value)
        .body(())
        .unwrap())
}

/// Lets spawned tasks run without moving paused time.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

struct Seen {
    attempt: Attempt,
    body: Bytes,
    trace: Option<String>,
    at: Duration,
}

type BoxService = tower::util::BoxCloneSyncService<Request<ReplayBody>, Response<()>, BoxError>;

struct Inner {
    calls: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<Seen>>>,
    service: BoxService,
}

impl Inner {
    /// A service answering call `n` (0-based) with `answer(n)`.
    fn new(answer: impl Fn(u32) -> Answer + Send + Sync + 'static) -> Self {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let start = tokio::time::Instant::now();
        let answer = Arc::new(answer);
        let service = {
            let calls = calls.clone();
            let seen = seen.clone();
            service_fn(move |request: Request<ReplayBody>| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap().push(Seen {
                    attempt: *request.extensions().get::<Attempt>().unwrap(),
                    body: request.body().bytes().clone(),
                    trace: request
                        .headers()
                        .get("x-trace")
                        .map(|v| v.to_str().unwrap().to_owned()),
                    at: start.elapsed(),
                });
                let result = answer(n);
                async move { result }
            })
        };
        Self {
            calls,
            seen,
            service: BoxService::new(service),
        }
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Observer for Recorder {
    fn on_event(&self, event: &Event<'_>) {
        let name = match event {
            Event::Retry {
                provider, attempt, ..
            } => format!("retry {provider} {}", attempt.0),
            Event::RetryBudgetExhausted { provider, .. } => format!("budget_exhausted {provider}"),
            _ => return,
        };
        self.0.lock().unwrap().push(name);
    }
}
