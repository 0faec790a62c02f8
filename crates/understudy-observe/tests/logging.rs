//! Log output: JSON is one object per line, with the span's fields.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use understudy_core::events::{Event, Observer};
use understudy_core::{FailureKind, Outcome};
use understudy_observe::{LogFormat, Telemetry, subscriber};

#[test]
fn json_is_one_object_per_line_with_span_fields() {
    let buffer = common::Buffer::default();
    let subscriber = subscriber(LogFormat::Json, "info", buffer.clone()).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "llm.request",
            route = "chat",
            provider = tracing::field::Empty
        );
        let _entered = span.enter();
        span.record("provider", "anthropic");
        let telemetry = Telemetry::new();
        telemetry.on_event(&Event::Fallback {
            route: Some("chat"),
            from: "openai",
            to: "anthropic",
            outcome: Outcome::Failure(FailureKind::Server(http::StatusCode::BAD_GATEWAY)),
        });
        telemetry.on_event(&Event::Retry {
            provider: "openai",
            attempt: understudy_core::Attempt(2),
            delay: Duration::from_millis(120),
            outcome: Outcome::Failure(FailureKind::Timeout),
        });
        // Filtered out at "info".
        tracing::debug!("not written");
    });

    let text = buffer.text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect(line))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let fallback = &lines[0];
    assert_eq!(fallback["level"], "WARN");
    assert_eq!(fallback["target"], "understudy");
    assert_eq!(fallback["event"], "fallback");
    assert_eq!(fallback["from"], "openai");
    assert_eq!(fallback["to"], "anthropic");
    assert_eq!(fallback["reason"], "server_error");
    assert_eq!(fallback["status"], 502);
    assert_eq!(fallback["span"]["name"], "llm.request");
    assert_eq!(fallback["span"]["route"], "chat");
    assert_eq!(fallback["span"]["provider"], "anthropic");
    assert!(fallback["timestamp"].is_string());
    assert_eq!(lines[1]["event"], "retry");
    assert_eq!(lines[1]["delay_ms"], 120);
}

#[test]
fn text_output_and_bad_filters() {
    let buffer = common::Buffer::default();
    let subscriber = subscriber(LogFormat::Text, "understudy=warn", buffer.clone()).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        Telemetry::new().on_event(&Event::RetryBudgetExhausted {
            provider: "openai",
            outcome: Outcome::Failure(FailureKind::Overloaded),
        });
    });
    let text = buffer.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("WARN") && text.contains("event=\"retry_budget_exhausted\""),
        "{text}"
    );

    assert!(understudy_observe::subscriber(LogFormat::Json, "info,[", std::io::sink).is_err());
}

#[test]
fn formats_parse_by_name() {
    assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
    assert_eq!(" Text ".parse::<LogFormat>().unwrap(), LogFormat::Text);
    assert!("yaml".parse::<LogFormat>().is_err());
    assert_eq!(LogFormat::Json.to_string(), "json");
    assert_eq!(LogFormat::default(), LogFormat::Text);
}
