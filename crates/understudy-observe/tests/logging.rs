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

/// At the default filter the request and attempt spans are not built, and
/// a WARN line carries the request's fields itself.
#[tokio::test]
async fn warn_lines_carry_the_request_without_its_span() {
    use http::{Request, Response, StatusCode};
    use std::sync::Arc;
    use tower::{Layer, ServiceExt, service_fn};
    use understudy_core::events::SharedObserver;
    use understudy_observe::{AttemptLayer, ObserveLayer, record_key, record_model, record_route};

    let buffer = common::Buffer::default();
    let subscriber = subscriber(LogFormat::Json, "info", buffer.clone()).unwrap();
    let _default = tracing::subscriber::set_default(subscriber);

    let provider = service_fn(|_: Request<String>| async {
        let mut response = Response::new(String::from("{}"));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        Ok::<_, std::convert::Infallible>(response)
    });
    let observer: SharedObserver = Arc::new(Telemetry::new());
    let target = AttemptLayer::new("openai", "gpt-4o-mini")
        .with_observer(observer)
        .layer(provider);
    // What the gateway's auth and router layers record as they learn it.
    let learn = service_fn(move |request: Request<String>| {
        let target = target.clone();
        async move {
            record_key("search-team");
            record_route("chat");
            record_model("chat-model");
            target.oneshot(request).await
        }
    });
    let stack = ObserveLayer::new().layer(learn);
    let request = Request::builder()
        .header("x-request-id", "req-42")
        .body(String::new())
        .unwrap();
    let response = stack.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    let text = buffer.text();
    let failure: serde_json::Value = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|line| line["event"] == "provider_failure")
        .unwrap_or_else(|| panic!("a provider_failure line in {text}"));
    assert_eq!(failure["level"], "WARN");
    assert_eq!(failure["request_id"], "req-42");
    assert_eq!(failure["route"], "chat");
    assert_eq!(failure["requested_model"], "chat-model");
    assert_eq!(failure["model"], "gpt-4o-mini");
    assert_eq!(failure["key"], "search-team");
    assert!(
        failure.get("span").is_none(),
        "no span was built: {failure}"
    );
    let finished: serde_json::Value = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|line| line["event"] == "request_finished")
        .unwrap_or_else(|| panic!("a request_finished line in {text}"));
    assert_eq!(finished["request_id"], "req-42");
    assert_eq!(finished["model"], "chat-model");
    assert_eq!(finished["key"], "search-team");
}
