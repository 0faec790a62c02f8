//! `ObserveLayer` and `AttemptLayer`: spans, metrics with bounded labels,
//! and no secret anywhere in what they record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::DebuggingRecorder;
use tower::{Layer, Service, ServiceExt, service_fn};
use tracing::Level;
use understudy_core::{
    Attempt, BoxError, CallerName, ClassifiedError, FailureKind, Operation, Outcome, RouteName,
};
use understudy_observe::names::{
    ATTEMPT_DURATION_SECONDS, ATTEMPTS_TOTAL, REQUEST_DURATION_SECONDS, REQUESTS_TOTAL,
    TIME_TO_FIRST_BYTE_SECONDS,
};
use understudy_observe::{Alerts, AttemptLayer, LogSink, ObserveLayer, Telemetry};

const API_KEY: &str = "sk-secret-4f1c9a7e2b";

fn answer(status: u16) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
        .unwrap()
}

#[tokio::test]
async fn attempts_are_counted_by_provider_and_outcome_with_time_to_first_byte() {
    let (capture, _guard) = common::capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let mut statuses = vec![200, 503, 429, 400];
    let provider = service_fn(move |_: Request<String>| {
        let status = statuses.remove(0);
        async move { Ok::<_, Infallible>(answer(status)) }
    });
    let mut service = AttemptLayer::new("openai", "gpt-4o-mini").layer(provider);

    let mut request = Request::new(String::new());
    request.extensions_mut().insert(Attempt(2));
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    // Snapshots drain the recorder: each one holds what happened since the
    // last.
    let metrics = common::metrics(&snapshotter);
    assert_eq!(
        common::counter(
            &metrics,
            ATTEMPTS_TOTAL,
            &[
                ("provider", "openai"),
                ("operation", "chat"),
                ("outcome", "success")
            ]
        ),
        Some(1)
    );
    assert_eq!(
        common::histogram_count(
            &metrics,
            ATTEMPT_DURATION_SECONDS,
            &[("provider", "openai"), ("operation", "chat")]
        ),
        1
    );
    // The first byte has not been read yet.
    assert_eq!(
        common::histogram_count(
            &metrics,
            TIME_TO_FIRST_BYTE_SECONDS,
            &[("provider", "openai"), ("operation", "chat")]
        ),
        0
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "{\"ok\":true}");
    let metrics = common::metrics(&snapshotter);
    assert_eq!(
        common::histogram_count(
            &metrics,
            TIME_TO_FIRST_BYTE_SECONDS,
            &[("provider", "openai"), ("operation", "chat")]
        ),
        1
    );

    for _ in 0..3 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(Request::new(String::new()))
            .await
            .unwrap();
        // Failed attempts' bodies are not timed.
        drop(response.into_body().collect().await.unwrap());
    }

    let metrics = common::metrics(&snapshotter);
    let attempts = |outcome| {
        common::counter(
            &metrics,
            ATTEMPTS_TOTAL,
            &[
                ("provider", "openai"),
                ("operation", "chat"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(attempts("overloaded"), Some(1));
    assert_eq!(attempts("rate_limited"), Some(1));
    assert_eq!(attempts("client_error"), Some(1));
    assert_eq!(
        common::histogram_count(
            &metrics,
            ATTEMPT_DURATION_SECONDS,
            &[("provider", "openai"), ("operation", "chat")]
        ),
        3
    );
    assert_eq!(
        common::histogram_count(
            &metrics,
            TIME_TO_FIRST_BYTE_SECONDS,
            &[("provider", "openai"), ("operation", "chat")]
        ),
        0
    );

    let spans = capture.spans("llm.attempt");
    assert_eq!(spans.len(), 4);
    let first = &spans[0];
    // DEBUG: built only when a subscriber asks for it.
    assert_eq!(first.level, Level::DEBUG);
    assert_eq!(first.field("provider"), Some("openai"));
    assert_eq!(first.field("model"), Some("gpt-4o-mini"));
    assert_eq!(first.field("attempt"), Some("2"));
    assert_eq!(first.field("operation"), Some("chat"));
    assert_eq!(first.field("outcome"), Some("success"));
    assert_eq!(first.field("status"), Some("200"));
    assert!(first.field("latency_ms").is_some());
    assert!(first.field("ttfb_ms").is_some());
    assert_eq!(spans[1].field("attempt"), Some("1"));

    // Without an observer the layer logs provider failures itself; a
    // client error is not one.
    let failures = capture.events("provider_failure");
    let kinds: Vec<_> = failures.iter().map(|f| f.field("kind").unwrap()).collect();
    assert_eq!(kinds, ["overloaded", "rate_limited"]);
    assert_eq!(failures[0].field("status"), Some("503"));
    assert_eq!(failures[0].field("provider"), Some("openai"));
}

#[tokio::test]
async fn attempt_errors_are_classified() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let refused = service_fn(|_: Request<String>| async {
        Err::<Response<Full<Bytes>>, _>(io::Error::from(io::ErrorKind::ConnectionRefused))
    });
    let error = AttemptLayer::new("local", "llama")
        .layer(refused)
        .oneshot(Request::new(String::new()))
        .await
        .unwrap_err();
    assert!(error.is::<io::Error>());

    let metrics = common::metrics(&snapshotter);
    assert_eq!(
        common::counter(
            &metrics,
            ATTEMPTS_TOTAL,
            &[
                ("provider", "local"),
                ("operation", "chat"),
                ("outcome", "connect")
            ]
        ),
        Some(1)
    );
}

#[tokio::test]
async fn with_an_observer_attempts_are_reported_and_logged_once() {
    let (capture, _guard) = common::capture();
    let failing = service_fn(|_: Request<String>| async { Ok::<_, Infallible>(answer(502)) });
    let service = AttemptLayer::new("openai", "gpt-4o-mini")
        .with_observer(Telemetry::new().into_shared())
        .layer(failing);
    let response = service.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(response.status(), 502);

    let failures = capture.events("provider_failure");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].field("kind"), Some("server_error"));
    assert_eq!(failures[0].field("status"), Some("502"));
}

/// The stack's final answer for one request: status, route and outcome
/// set by the stack inside.
fn stack_answer(status: u16, route: Option<&str>, outcome: Option<Outcome>) -> Response<String> {
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "text/event-stream")
        .body(String::new())
        .unwrap();
    if let Some(route) = route {
        response.extensions_mut().insert(RouteName::new(route));
    }
    if let Some(outcome) = outcome {
        response.extensions_mut().insert(outcome);
    }
    response
}

#[tokio::test]
async fn requests_are_counted_by_route_and_outcome() {
    let (capture, _guard) = common::capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let mut answers = vec![
        Ok(stack_answer(200, Some("chat"), None)),
        Ok(stack_answer(200, Some("chat"), None)),
        Ok(stack_answer(429, Some("chat"), None)),
        Ok(stack_answer(503, Some("chat"), Some(Outcome::Unavailable))),
        Ok(stack_answer(404, None, None)),
        Err(BoxError::from(
            ClassifiedError::new(Outcome::Failure(FailureKind::Timeout))
                .with_source("deadline passed"),
        )),
    ];
    let stack = service_fn(move |_: Request<String>| {
        let answer = answers.remove(0);
        async move { answer }
    });
    let mut service = ObserveLayer::new().layer(stack);
    for _ in 0..6 {
        let _ = service
            .ready()
            .await
            .unwrap()
            .call(Request::new(String::new()))
            .await;
    }

    let metrics = common::metrics(&snapshotter);
    let requests = |route, outcome| {
        common::counter(
            &metrics,
            REQUESTS_TOTAL,
            &[
                ("route", route),
                ("operation", "chat"),
                ("outcome", outcome),
                ("key", ""),
            ],
        )
    };
    assert_eq!(requests("chat", "success"), Some(2));
    assert_eq!(requests("chat", "rate_limited"), Some(1));
    assert_eq!(requests("chat", "unavailable"), Some(1));
    assert_eq!(requests("unknown", "client_error"), Some(1));
    assert_eq!(requests("unknown", "timeout"), Some(1));
    assert_eq!(
        common::histogram_count(
            &metrics,
            REQUEST_DURATION_SECONDS,
            &[("route", "chat"), ("operation", "chat"), ("key", "")]
        ),
        4
    );
    assert_eq!(
        common::histogram_count(
            &metrics,
            REQUEST_DURATION_SECONDS,
            &[("route", "unknown"), ("operation", "chat"), ("key", "")]
        ),
        2
    );

    let spans = capture.spans("llm.request");
    assert_eq!(spans.len(), 6);
    assert_eq!(spans[0].field("stream"), Some("true"));
    assert_eq!(spans[0].field("status"), Some("200"));
    assert_eq!(spans[0].field("operation"), Some("chat"));
    assert_eq!(spans[3].field("outcome"), Some("unavailable"));
    assert_eq!(spans[5].field("outcome"), Some("timeout"));
    let finished = capture.events("request_finished");
    let levels: Vec<_> = finished.iter().map(|e| e.level).collect();
    assert_eq!(
        levels,
        [
            Level::DEBUG,
            Level::DEBUG,
            Level::WARN,
            Level::WARN,
            Level::INFO,
            Level::WARN
        ]
    );
}

#[tokio::test]
async fn the_route_from_the_request_is_used_when_the_response_has_none() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let stack = service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(stack_answer(200, None, None))
    });
    let mut request = Request::new(String::new());
    request
        .extensions_mut()
        .insert(RouteName::new("embeddings"));
    ObserveLayer::new()
        .layer(stack)
        .oneshot(request)
        .await
        .unwrap();

    let metrics = common::metrics(&snapshotter);
    assert_eq!(
        common::counter(
            &metrics,
            REQUESTS_TOTAL,
            &[
                ("route", "embeddings"),
                ("operation", "chat"),
                ("outcome", "success"),
                ("key", ""),
            ]
        ),
        Some(1)
    );
}

#[tokio::test]
async fn requests_are_labelled_with_the_callers_key_name() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let mut callers = vec![Some("search"), None, Some("search"), Some("batch")];
    let stack = service_fn(move |_: Request<String>| {
        let caller = callers.remove(0);
        async move {
            let mut response = stack_answer(200, Some("chat"), None);
            if let Some(caller) = caller {
                response.extensions_mut().insert(CallerName::new(caller));
            }
            Ok::<_, Infallible>(response)
        }
    });
    let mut service = ObserveLayer::new().layer(stack);
    for _ in 0..4 {
        service
            .ready()
            .await
            .unwrap()
            .call(Request::new(String::new()))
            .await
            .unwrap();
    }

    let metrics = common::metrics(&snapshotter);
    let requests = |key| {
        common::counter(
            &metrics,
            REQUESTS_TOTAL,
            &[
                ("route", "chat"),
                ("operation", "chat"),
                ("outcome", "success"),
                ("key", key),
            ],
        )
    };
    assert_eq!(requests("search"), Some(2));
    assert_eq!(requests("batch"), Some(1));
    assert_eq!(requests(""), Some(1));
    let durations = |key| {
        common::histogram_count(
            &metrics,
            REQUEST_DURATION_SECONDS,
            &[("route", "chat"), ("operation", "chat"), ("key", key)],
        )
    };
    assert_eq!(durations("search"), 2);
    assert_eq!(durations(""), 1);
}

/// A caller request for `operation` (none: the extension is not set).
fn request_for(operation: Option<Operation>) -> Request<String> {
    let mut request = Request::new(String::new());
    if let Some(operation) = operation {
        request.extensions_mut().insert(operation);
    }
    request
}

#[tokio::test]
async fn requests_are_counted_by_the_operation_of_the_request() {
    let (capture, _guard) = common::capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let mut answers = vec![
        Ok(stack_answer(200, Some("chat"), None)),
        Ok(stack_answer(200, Some("chat"), None)),
        Ok(stack_answer(429, Some("chat"), None)),
        Ok(stack_answer(200, Some("chat"), None)),
        Ok(stack_answer(200, Some("chat"), None)),
        Err(BoxError::from(
            ClassifiedError::new(Outcome::Failure(FailureKind::Timeout))
                .with_source("deadline passed"),
        )),
    ];
    let stack = service_fn(move |_: Request<String>| {
        let answer = answers.remove(0);
        async move { answer }
    });
    let mut service = ObserveLayer::new().layer(stack);
    for operation in [
        Some(Operation::Messages),
        None,
        Some(Operation::Messages),
        Some(Operation::ChatCompletions),
        Some(Operation::Embeddings),
        Some(Operation::Messages),
    ] {
        let _ = service
            .ready()
            .await
            .unwrap()
            .call(request_for(operation))
            .await;
    }

    let metrics = common::metrics(&snapshotter);
    let requests = |route, operation, outcome| {
        common::counter(
            &metrics,
            REQUESTS_TOTAL,
            &[
                ("route", route),
                ("operation", operation),
                ("outcome", outcome),
                ("key", ""),
            ],
        )
    };
    assert_eq!(requests("chat", "messages", "success"), Some(1));
    assert_eq!(requests("chat", "messages", "rate_limited"), Some(1));
    // The operation is the request's even when the stack fails it and no
    // response carries a route.
    assert_eq!(requests("unknown", "messages", "timeout"), Some(1));
    // Without the extension a request is a chat completion.
    assert_eq!(requests("chat", "chat", "success"), Some(2));
    assert_eq!(requests("chat", "embeddings", "success"), Some(1));
    let durations = |route, operation| {
        common::histogram_count(
            &metrics,
            REQUEST_DURATION_SECONDS,
            &[("route", route), ("operation", operation), ("key", "")],
        )
    };
    assert_eq!(durations("chat", "messages"), 2);
    assert_eq!(durations("chat", "chat"), 2);
    assert_eq!(durations("chat", "embeddings"), 1);
    assert_eq!(durations("unknown", "messages"), 1);

    let spans = capture.spans("llm.request");
    let operations: Vec<_> = spans
        .iter()
        .map(|span| span.field("operation").unwrap())
        .collect();
    assert_eq!(
        operations,
        [
            "messages",
            "chat",
            "messages",
            "chat",
            "embeddings",
            "messages"
        ]
    );
}

#[tokio::test]
async fn past_the_route_limit_requests_are_counted_as_other_with_their_operation() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let stack = service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(stack_answer(200, None, None))
    });
    let mut service = ObserveLayer::new().layer(stack);
    // 256 distinct routes are counted by name, in every operation.
    for i in 0..256 {
        for operation in [None, Some(Operation::Messages)] {
            let mut request = request_for(operation);
            request
                .extensions_mut()
                .insert(RouteName::new(format!("route-{i}")));
            service.ready().await.unwrap().call(request).await.unwrap();
        }
    }
    for operation in [Operation::Messages, Operation::Embeddings] {
        let mut request = request_for(Some(operation));
        request
            .extensions_mut()
            .insert(RouteName::new("one-too-many"));
        service.ready().await.unwrap().call(request).await.unwrap();
    }

    let metrics = common::metrics(&snapshotter);
    let requests = |route, operation| {
        common::counter(
            &metrics,
            REQUESTS_TOTAL,
            &[
                ("route", route),
                ("operation", operation),
                ("outcome", "success"),
                ("key", ""),
            ],
        )
    };
    assert_eq!(requests("route-255", "chat"), Some(1));
    assert_eq!(requests("route-255", "messages"), Some(1));
    assert_eq!(requests("other", "messages"), Some(1));
    assert_eq!(requests("other", "embeddings"), Some(1));
    assert!(
        !metrics
            .iter()
            .any(|m| m.labels.values().any(|v| v == "one-too-many")),
        "a route past the limit has its own series"
    );
}

#[tokio::test]
async fn attempts_are_counted_by_the_operation_of_the_request() {
    let (capture, _guard) = common::capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let mut statuses = vec![200, 503, 200, 200];
    let provider = service_fn(move |_: Request<String>| {
        let status = statuses.remove(0);
        async move { Ok::<_, Infallible>(answer(status)) }
    });
    let mut service = AttemptLayer::new("anthropic", "claude").layer(provider);
    for operation in [
        Some(Operation::Messages),
        Some(Operation::Messages),
        None,
        Some(Operation::Embeddings),
    ] {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request_for(operation))
            .await
            .unwrap();
        drop(response.into_body().collect().await.unwrap());
    }

    let metrics = common::metrics(&snapshotter);
    let attempts = |operation, outcome| {
        common::counter(
            &metrics,
            ATTEMPTS_TOTAL,
            &[
                ("provider", "anthropic"),
                ("operation", operation),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(attempts("messages", "success"), Some(1));
    assert_eq!(attempts("messages", "overloaded"), Some(1));
    assert_eq!(attempts("chat", "success"), Some(1));
    assert_eq!(attempts("embeddings", "success"), Some(1));
    assert_eq!(attempts("chat", "overloaded"), None);
    let histogram = |name, operation| {
        common::histogram_count(
            &metrics,
            name,
            &[("provider", "anthropic"), ("operation", operation)],
        )
    };
    assert_eq!(histogram(ATTEMPT_DURATION_SECONDS, "messages"), 2);
    assert_eq!(histogram(ATTEMPT_DURATION_SECONDS, "chat"), 1);
    assert_eq!(histogram(ATTEMPT_DURATION_SECONDS, "embeddings"), 1);
    // Only successful attempts' bodies are timed.
    assert_eq!(histogram(TIME_TO_FIRST_BYTE_SECONDS, "messages"), 1);
    assert_eq!(histogram(TIME_TO_FIRST_BYTE_SECONDS, "chat"), 1);
    assert_eq!(histogram(TIME_TO_FIRST_BYTE_SECONDS, "embeddings"), 1);

    let spans = capture.spans("llm.attempt");
    let operations: Vec<_> = spans
        .iter()
        .map(|span| span.field("operation").unwrap())
        .collect();
    assert_eq!(operations, ["messages", "messages", "chat", "embeddings"]);
}

#[tokio::test]
async fn no_log_line_or_metric_label_holds_the_api_key() {
    let (capture, logs, _guard) = common::capture_with_json();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let alerts = Alerts::builder().sink(LogSink::new()).spawn();
    let telemetry = Telemetry::new().with_alerts(alerts).into_shared();

    // A provider that fails, echoing the key in its error (as a badly
    // behaved upstream might), then one that rate limits.
    let mut calls = 0;
    let provider = service_fn(move |request: Request<String>| {
        calls += 1;
        let auth = request.headers()["authorization"]
            .to_str()
            .unwrap()
            .to_owned();
        async move {
            if calls == 1 {
                Err(BoxError::from(format!("upstream refused {auth}")))
            } else {
                Ok(Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header("x-echo", auth)
                    .body(Full::new(Bytes::from(format!("{{\"key\":\"{API_KEY}\"}}"))))
                    .unwrap())
            }
        }
    });
    let target = AttemptLayer::new("openai", "gpt-4o-mini")
        .with_observer(telemetry.clone())
        .layer(provider);
    let mut stack = ObserveLayer::new().layer(target);
    for _ in 0..2 {
        let request = Request::builder()
            .header("authorization", format!("Bearer {API_KEY}"))
            .header("x-api-key", API_KEY)
            .body(format!("{{\"model\":\"chat\",\"api_key\":\"{API_KEY}\"}}"))
            .unwrap();
        if let Ok(response) = stack.ready().await.unwrap().call(request).await {
            drop(response.into_body().collect().await.unwrap());
        }
    }
    telemetry.on_event(&understudy_core::events::Event::ProviderStateChanged {
        provider: "openai",
        from: understudy_core::ProviderState::Healthy,
        to: understudy_core::ProviderState::Ejected,
        reason: understudy_core::events::StateChangeReason::ConsecutiveFailures,
        duration: Some(Duration::from_secs(30)),
    });
    // The log sink delivers on its own task: wait for its line.
    tokio::time::timeout(Duration::from_secs(10), async {
        while capture.events("alert").is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the alert is logged");

    let text = logs.text();
    // The failure is logged inside the attempt span, inside the request span.
    let failure: serde_json::Value = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|line| line["event"] == "provider_failure")
        .expect("a provider_failure line");
    let spans: Vec<_> = failure["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|span| span["name"].as_str().unwrap())
        .collect();
    assert_eq!(spans, ["llm.request", "llm.attempt"]);
    assert_eq!(failure["span"]["provider"], "openai");
    assert!(
        !text.contains("sk-secret"),
        "a log line holds the key:\n{text}"
    );
    for record in capture.all() {
        for (name, value) in &record.fields {
            assert!(
                !value.contains("sk-secret"),
                "{} field {name} holds the key",
                record.name
            );
        }
    }
    for metric in common::metrics(&snapshotter) {
        for (name, value) in &metric.labels {
            assert!(
                !value.contains("sk-secret"),
                "{} label {name} holds the key",
                metric.name
            );
        }
    }
}

#[tokio::test]
async fn past_the_key_limit_a_routes_requests_are_counted_as_other() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let mut keys = (0..257).map(|i| format!("key-{i}"));
    let stack = service_fn(move |_: Request<String>| {
        let key = keys.next().unwrap();
        async move {
            let mut response = stack_answer(200, Some("chat"), None);
            response.extensions_mut().insert(CallerName::new(key));
            Ok::<_, Infallible>(response)
        }
    });
    let mut service = ObserveLayer::new().layer(stack);
    for _ in 0..257 {
        service
            .ready()
            .await
            .unwrap()
            .call(Request::new(String::new()))
            .await
            .unwrap();
    }

    let metrics = common::metrics(&snapshotter);
    let requests = |key| {
        common::counter(
            &metrics,
            REQUESTS_TOTAL,
            &[
                ("route", "chat"),
                ("operation", "chat"),
                ("outcome", "success"),
                ("key", key),
            ],
        )
    };
    assert_eq!(requests("key-255"), Some(1));
    assert_eq!(requests("other"), Some(1));
    assert_eq!(requests("key-256"), None);
}
