//! `Telemetry`: layer events become log events with stable fields, and
//! metrics with bounded labels.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use metrics_util::debugging::DebuggingRecorder;
use tower::{ServiceExt, service_fn};
use tracing::Level;
use understudy_core::events::{Event, Observer, SharedObserver, StateChangeReason};
use understudy_core::{Attempt, BoxError, FailureKind, Outcome, ProviderState, RouteName};
use understudy_observe::names::{
    ALL_TARGETS_FAILED_TOTAL, EJECTIONS_TOTAL, FALLBACKS_TOTAL, PROVIDER_STATE, RETRIES_TOTAL,
    RETRY_BUDGET_EXHAUSTED_TOTAL, STREAMS_BROKEN_AFTER_COMMIT_TOTAL, TIME_TO_FIRST_CONTENT_SECONDS,
};
use understudy_observe::{ObserveLayer, Telemetry};

use tower::Layer;

/// A stand-in for the fallback selector: the primary answers 503, so the
/// request moves on to the backup, and the move is reported.
async fn fallback_request(observer: SharedObserver) -> Response<String> {
    let selector = service_fn(move |_: Request<String>| {
        let observer = observer.clone();
        async move {
            let primary = Outcome::Failure(FailureKind::Overloaded);
            observer.on_event(&Event::AttemptFinished {
                provider: "openai",
                model: "gpt-4o-mini",
                attempt: Attempt::FIRST,
                outcome: primary,
                status: Some(StatusCode::SERVICE_UNAVAILABLE),
                latency: Duration::from_millis(12),
            });
            observer.on_event(&Event::Fallback {
                route: Some("chat"),
                from: "openai",
                to: "anthropic",
                outcome: primary,
            });
            let mut response = Response::new(String::from("{}"));
            response.extensions_mut().insert(RouteName::new("chat"));
            response
                .headers_mut()
                .insert("x-understudy-provider", "anthropic".parse().unwrap());
            response
                .headers_mut()
                .insert("x-understudy-attempts", "2".parse().unwrap());
            Ok::<_, BoxError>(response)
        }
    });
    ObserveLayer::new()
        .layer(selector)
        .oneshot(Request::new(String::new()))
        .await
        .unwrap()
}

#[tokio::test]
async fn fallback_is_logged_with_its_fields_in_the_request_span() {
    let (capture, logs, _guard) = common::capture_with_json();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let response = fallback_request(Telemetry::new().into_shared()).await;
    assert_eq!(response.status(), 200);

    let fallbacks = capture.events("fallback");
    assert_eq!(fallbacks.len(), 1, "{:?}", capture.all());
    let fallback = &fallbacks[0];
    assert_eq!(fallback.level, Level::WARN);
    assert_eq!(fallback.field("route"), Some("chat"));
    assert_eq!(fallback.field("from"), Some("openai"));
    assert_eq!(fallback.field("to"), Some("anthropic"));
    assert_eq!(fallback.field("reason"), Some("overloaded"));

    let failures = capture.events("provider_failure");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].level, Level::WARN);
    assert_eq!(failures[0].field("provider"), Some("openai"));
    assert_eq!(failures[0].field("kind"), Some("overloaded"));
    assert_eq!(failures[0].field("status"), Some("503"));

    let requests = capture.spans("llm.request");
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.field("route"), Some("chat"));
    assert_eq!(request.field("operation"), Some("chat"));
    assert_eq!(request.field("provider"), Some("anthropic"));
    assert_eq!(request.field("attempts"), Some("2"));
    assert_eq!(request.field("outcome"), Some("success"));
    assert_eq!(request.field("stream"), Some("false"));

    // JSON output: one object per line, and the fallback line carries the
    // request span it happened in.
    let text = logs.text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect(line))
        .collect();
    let line = lines
        .iter()
        .find(|l| l["event"] == "fallback")
        .expect("a fallback line");
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["to"], "anthropic");
    assert_eq!(line["span"]["name"], "llm.request");

    let metrics = common::metrics(&snapshotter);
    assert_eq!(chat_fallbacks(&metrics, "overloaded"), Some(1));
}

/// While a target is unavailable every request skips it: the skip is
/// counted every time and logged once per window, with how many skips the
/// line stands for; a fallback after a real failure is logged every time.
#[tokio::test(start_paused = true)]
async fn skips_of_an_unavailable_target_are_logged_once_a_window() {
    let (capture, _guard) = common::capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let telemetry = Telemetry::new();
    let skip = Event::Fallback {
        route: Some("chat"),
        from: "openai",
        to: "anthropic",
        outcome: Outcome::Unavailable,
    };
    let failure = Event::Fallback {
        route: Some("chat"),
        from: "openai",
        to: "anthropic",
        outcome: Outcome::Failure(FailureKind::Overloaded),
    };
    for _ in 0..5 {
        telemetry.on_event(&skip);
        telemetry.on_event(&failure);
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    telemetry.on_event(&skip);

    let lines = capture.events("fallback");
    let skips: Vec<_> = lines
        .iter()
        .filter(|line| line.field("reason") == Some("unavailable"))
        .collect();
    assert_eq!(skips.len(), 2, "{lines:?}");
    assert_eq!(skips[0].field("repeats"), Some("0"));
    assert_eq!(skips[1].field("repeats"), Some("4"));
    let failures = lines.len() - skips.len();
    assert_eq!(failures, 5);
    assert!(
        lines
            .iter()
            .filter(|line| line.field("reason") == Some("overloaded"))
            .all(|line| line.field("repeats").is_none())
    );

    let metrics = common::metrics(&snapshotter);
    assert_eq!(chat_fallbacks(&metrics, "unavailable"), Some(6));
    assert_eq!(chat_fallbacks(&metrics, "overloaded"), Some(5));
}

/// `understudy_fallbacks_total` from openai to anthropic on route chat.
fn chat_fallbacks(metrics: &[common::Metric], reason: &str) -> Option<u64> {
    common::counter(
        metrics,
        FALLBACKS_TOTAL,
        &[
            ("route", "chat"),
            ("from", "openai"),
            ("to", "anthropic"),
            ("reason", reason),
        ],
    )
}

#[test]
fn retries_budget_and_broken_streams_are_counted() {
    let (capture, _guard) = common::capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let telemetry = Telemetry::new();
        for attempt in 2..=3 {
            telemetry.on_event(&Event::Retry {
                provider: "openai",
                attempt: Attempt(attempt),
                delay: Duration::from_millis(250),
                outcome: Outcome::Failure(FailureKind::Timeout),
            });
        }
        telemetry.on_event(&Event::Retry {
            provider: "openai",
            attempt: Attempt(2),
            delay: Duration::from_secs(1),
            outcome: Outcome::Failure(FailureKind::RateLimited {
                retry_after: Some(Duration::from_secs(1)),
            }),
        });
        telemetry.on_event(&Event::RetryBudgetExhausted {
            provider: "openai",
            outcome: Outcome::Failure(FailureKind::Timeout),
        });
        telemetry.on_event(&Event::StreamBrokenAfterCommit {
            provider: "anthropic",
            model: "claude",
        });
        telemetry.on_event(&Event::AllTargetsFailed {
            route: None,
            attempts: 4,
            all_unavailable: false,
        });
    });

    let metrics = common::metrics(&snapshotter);
    let retries = |reason| {
        common::counter(
            &metrics,
            RETRIES_TOTAL,
            &[("provider", "openai"), ("reason", reason)],
        )
    };
    assert_eq!(retries("timeout"), Some(2));
    assert_eq!(retries("rate_limited"), Some(1));
    assert_eq!(
        common::counter(
            &metrics,
            RETRY_BUDGET_EXHAUSTED_TOTAL,
            &[("provider", "openai")]
        ),
        Some(1)
    );
    assert_eq!(
        common::counter(
            &metrics,
            STREAMS_BROKEN_AFTER_COMMIT_TOTAL,
            &[("provider", "anthropic")]
        ),
        Some(1)
    );
    assert_eq!(
        common::counter(
            &metrics,
            ALL_TARGETS_FAILED_TOTAL,
            &[("route", "unknown"), ("all_unavailable", "false")],
        ),
        Some(1)
    );

    let retry = &capture.events("retry")[0];
    assert_eq!(retry.level, Level::INFO);
    assert_eq!(retry.field("provider"), Some("openai"));
    assert_eq!(retry.field("attempt"), Some("2"));
    assert_eq!(retry.field("delay_ms"), Some("250"));
    assert_eq!(retry.field("reason"), Some("timeout"));
    assert_eq!(capture.events("retry_budget_exhausted").len(), 1);
    assert_eq!(
        capture.events("stream_broken_after_commit")[0].level,
        Level::ERROR
    );
    let all_failed = &capture.events("all_targets_failed")[0];
    assert_eq!(all_failed.field("attempts"), Some("4"));
    assert_eq!(all_failed.field("all_unavailable"), Some("false"));
}

#[test]
fn time_to_first_content_is_a_histogram_by_provider_and_model() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let telemetry = Telemetry::new();
        for ms in [120, 480] {
            telemetry.on_event(&Event::FirstContent {
                provider: "openai",
                model: "gpt-4o-mini",
                elapsed: Duration::from_millis(ms),
            });
        }
        telemetry.on_event(&Event::FirstContent {
            provider: "anthropic",
            model: "claude",
            elapsed: Duration::from_secs(2),
        });
    });

    let metrics = common::metrics(&snapshotter);
    let samples = |provider, model| {
        common::histogram_count(
            &metrics,
            TIME_TO_FIRST_CONTENT_SECONDS,
            &[("provider", provider), ("model", model)],
        )
    };
    assert_eq!(samples("openai", "gpt-4o-mini"), 2);
    assert_eq!(samples("anthropic", "claude"), 1);
    assert_eq!(samples("openai", "claude"), 0);
}

#[test]
fn health_transitions_set_the_gauge_and_count_ejections_by_bounded_reason() {
    let (capture, _guard) = common::capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let telemetry: SharedObserver = Arc::new(Telemetry::new());
    let change = |from, to, reason: StateChangeReason| {
        telemetry.on_event(&Event::ProviderStateChanged {
            provider: "openai",
            from,
            to,
            reason,
            duration: Some(Duration::from_secs(30)),
        });
    };
    let ejections = |metrics: &[common::Metric], reason| {
        common::counter(
            metrics,
            EJECTIONS_TOTAL,
            &[("provider", "openai"), ("reason", reason)],
        )
    };
    let state = |metrics: &[common::Metric]| {
        common::gauge(metrics, PROVIDER_STATE, &[("provider", "openai")])
    };
    // Snapshots drain the recorder: each phase checks what it added.
    metrics::with_local_recorder(&recorder, || {
        change(
            ProviderState::Healthy,
            ProviderState::Ejected,
            StateChangeReason::ConsecutiveFailures,
        );
        let metrics = common::metrics(&snapshotter);
        assert_eq!(state(&metrics), Some(3.0));
        assert_eq!(ejections(&metrics, "consecutive_failures"), Some(1));

        change(
            ProviderState::Ejected,
            ProviderState::Probing,
            StateChangeReason::EjectionEnded,
        );
        change(
            ProviderState::Probing,
            ProviderState::Ejected,
            StateChangeReason::ProbeFailed,
        );
        change(
            ProviderState::Ejected,
            ProviderState::Probing,
            StateChangeReason::EjectionEnded,
        );
        let metrics = common::metrics(&snapshotter);
        assert_eq!(state(&metrics), Some(2.0));
        assert_eq!(ejections(&metrics, "probe_failed"), Some(1));

        change(
            ProviderState::Probing,
            ProviderState::Healthy,
            StateChangeReason::ProbeSucceeded,
        );
        let metrics = common::metrics(&snapshotter);
        assert_eq!(state(&metrics), Some(0.0));

        // Another health implementation's reason has its own label.
        change(
            ProviderState::Healthy,
            ProviderState::Ejected,
            StateChangeReason::Other,
        );
        let metrics = common::metrics(&snapshotter);
        assert_eq!(state(&metrics), Some(3.0));
        assert_eq!(ejections(&metrics, "other"), Some(1));
        assert!(
            metrics
                .iter()
                .filter(|m| m.name == EJECTIONS_TOTAL)
                .all(|m| [
                    "consecutive_failures",
                    "failure_ratio",
                    "probe_failed",
                    "slow",
                    "other"
                ]
                .contains(&m.labels["reason"].as_str()))
        );
    });

    let ejected = capture.events("provider_ejected");
    assert_eq!(ejected.len(), 3);
    assert_eq!(ejected[0].level, Level::WARN);
    assert_eq!(ejected[0].field("provider"), Some("openai"));
    assert_eq!(ejected[0].field("reason"), Some("consecutive_failures"));
    assert_eq!(ejected[0].field("duration_ms"), Some("30000"));
    let restored = capture.events("provider_restored");
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].field("from"), Some("probing"));
    assert_eq!(capture.events("provider_state_changed").len(), 2);
}
