//! Per-route settings over loopback: a route's own `timeout_ms`,
//! `first_chunk_timeout_ms` and `[routes.retry]` apply to its targets, and
//! only to them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, StatusCode};
use understudy_mock::{MockProvider, WireFormat};

mod support;
use support::{Reply, Served, fault, mock};

struct Harness {
    slow: MockProvider,
    backup: MockProvider,
    served: Served,
}

/// A `slow` provider and a healthy `backup`, and two routes over both:
/// `quick` with tight settings of its own, `patient` with the providers'.
async fn start() -> Harness {
    let slow = mock(WireFormat::OpenAi, "slow").await;
    let backup = mock(WireFormat::OpenAi, "backup").await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "slow"
kind = "openai"
base_url = "{}"
api_key_env = "KEY"
timeout_ms = 5000
first_chunk_timeout_ms = 5000

[[providers]]
name = "backup"
kind = "openai"
base_url = "{}"
api_key_env = "KEY"

[[routes]]
model = "quick"
targets = [ {{ provider = "slow", model = "m" }}, {{ provider = "backup", model = "m" }} ]
timeout_ms = 200
first_chunk_timeout_ms = 200
[routes.retry]
max_retries = 0

[[routes]]
model = "patient"
targets = [ {{ provider = "slow", model = "m" }}, {{ provider = "backup", model = "m" }} ]

[retry]
max_retries = 2
base_delay_ms = 1
max_delay_ms = 2

[health]
consecutive_failures = 100
min_requests = 100
probe_interval_secs = 0
"#,
        slow.base_url(),
        backup.base_url()
    );
    let served = Served::start(&toml, |_| Some("sk-test".to_owned())).await;
    Harness {
        slow,
        backup,
        served,
    }
}

async fn ask(h: &Harness, route: &str, stream: bool) -> Reply {
    let body = format!(
        r#"{{"model":"{route}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    h.served
        .send(Method::POST, "/v1/chat/completions", &[], &body)
        .await
}

#[tokio::test]
async fn a_routes_timeout_bounds_its_attempts_only() {
    let h = start().await;
    h.slow.set_fault(fault("delay:700"));

    let quick = ask(&h, "quick", false).await;
    assert_eq!(quick.status, StatusCode::OK, "{}", quick.body);
    assert_eq!(quick.header("x-understudy-provider"), "backup");
    assert_eq!(
        quick.header("x-understudy-attempts"),
        "2",
        "the route's `max_retries = 0`: one try at `slow`, then the backup"
    );

    let patient = ask(&h, "patient", false).await;
    assert_eq!(patient.status, StatusCode::OK, "{}", patient.body);
    assert_eq!(
        patient.header("x-understudy-provider"),
        "slow",
        "the provider's 5 s timeout applies on a route without its own"
    );
    assert_eq!(h.slow.stats().requests, 2);
    assert_eq!(h.backup.stats().requests, 1);
    h.served.stop_with([h.slow, h.backup]).await;
}

#[tokio::test]
async fn a_routes_first_chunk_timeout_bounds_its_streams_only() {
    let h = start().await;
    h.slow.set_fault(fault("first-chunk-delay:700"));

    let quick = ask(&h, "quick", true).await;
    quick.assert_event_stream();
    assert_eq!(quick.header("x-understudy-provider"), "backup");

    let patient = ask(&h, "patient", true).await;
    patient.assert_event_stream();
    assert_eq!(patient.header("x-understudy-provider"), "slow");
    assert_eq!(patient.data().last(), Some(&"[DONE]"));
    h.served.stop_with([h.slow, h.backup]).await;
}
