//! Alerts: deduplicated, queued without blocking, delivered by the log and
//! webhook sinks (the webhook to a real loopback server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use http::{Request, Response};
use metrics_util::debugging::DebuggingRecorder;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt, service_fn};
use tracing::Level;
use understudy_core::ProviderState;
use understudy_core::events::{Event, Observer, StateChangeReason};
use understudy_observe::names::{ALERT_DELIVERY_FAILURES_TOTAL, ALERTS_DROPPED_TOTAL};
use understudy_observe::{
    Alert, AlertKind, AlertSink, Alerts, DeliverFuture, LogSink, ObserveLayer, Telemetry,
    WebhookSink,
};

/// Generous bound on waits for real sockets.
const PATIENCE: Duration = Duration::from_secs(10);

fn ejected(provider: &str) -> Event<'_> {
    Event::ProviderStateChanged {
        provider,
        from: ProviderState::Healthy,
        to: ProviderState::Ejected,
        reason: StateChangeReason::ConsecutiveFailures,
        duration: Some(Duration::from_secs(30)),
    }
}

/// What the loopback webhook received.
struct Posted {
    content_type: Option<String>,
    json: serde_json::Value,
}

#[derive(Clone)]
struct Hook {
    posted: mpsc::UnboundedSender<Posted>,
    /// Answers to give, in order, before answering 200.
    failures: Arc<std::sync::Mutex<Vec<StatusCode>>>,
    calls: Arc<AtomicUsize>,
}

async fn receive(State(hook): State<Hook>, headers: HeaderMap, body: String) -> StatusCode {
    hook.calls.fetch_add(1, Ordering::SeqCst);
    let failure = {
        let mut failures = hook.failures.lock().unwrap();
        (!failures.is_empty()).then(|| failures.remove(0))
    };
    if let Some(status) = failure {
        return status;
    }
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let json = serde_json::from_str(&body).unwrap();
    hook.posted.send(Posted { content_type, json }).unwrap();
    StatusCode::OK
}

/// Serves a webhook at `/hook/T0001/secret-token` on a loopback port.
async fn webhook_server(
    failures: Vec<StatusCode>,
) -> (String, mpsc::UnboundedReceiver<Posted>, Arc<AtomicUsize>) {
    let (posted, received) = mpsc::unbounded_channel();
    let calls = Arc::new(AtomicUsize::new(0));
    let hook = Hook {
        posted,
        failures: Arc::new(std::sync::Mutex::new(failures)),
        calls: calls.clone(),
    };
    let app = Router::new()
        .route("/hook/T0001/secret-token", post(receive))
        .with_state(hook);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        format!("http://{address}/hook/T0001/secret-token"),
        received,
        calls,
    )
}

async fn next(received: &mut mpsc::UnboundedReceiver<Posted>) -> Posted {
    tokio::time::timeout(PATIENCE, received.recv())
        .await
        .expect("the webhook is called in time")
        .expect("the server is running")
}

#[tokio::test]
async fn webhook_posts_slack_compatible_json() {
    let (url, mut received, _) = webhook_server(Vec::new()).await;
    let alerts = Alerts::builder()
        .sink(WebhookSink::new(&url).unwrap())
        .spawn();
    let telemetry = Telemetry::new().with_alerts(alerts);

    telemetry.on_event(&ejected("openai"));

    let posted = next(&mut received).await;
    assert_eq!(posted.content_type.as_deref(), Some("application/json"));
    let json = posted.json;
    let text = json["text"].as_str().unwrap();
    assert!(
        text.contains("provider_ejected") && text.contains("openai"),
        "{text}"
    );
    assert_eq!(json["kind"], "provider_ejected");
    assert_eq!(json["severity"], "warning");
    assert_eq!(json["subject"], "openai");
    assert_eq!(json["fields"]["reason"], "consecutive_failures");
    assert_eq!(json["fields"]["from"], "healthy");
    assert_eq!(json["fields"]["duration_ms"], "30000");
    assert!(json["message"].as_str().unwrap().contains("ejected"));
    let at = json["at"].as_str().unwrap();
    assert!(
        at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );

    // All four kinds reach the webhook.
    telemetry.on_event(&Event::ProviderStateChanged {
        provider: "openai",
        from: ProviderState::Probing,
        to: ProviderState::Healthy,
        reason: StateChangeReason::ProbeSucceeded,
        duration: None,
    });
    telemetry.on_event(&Event::AllTargetsFailed {
        route: Some("chat"),
        attempts: 0,
        all_unavailable: true,
    });
    telemetry.on_event(&Event::RetryBudgetExhausted {
        provider: "anthropic",
        outcome: understudy_core::Outcome::Failure(understudy_core::FailureKind::Timeout),
    });
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let json = next(&mut received).await.json;
        kinds.push((
            json["kind"].as_str().unwrap().to_owned(),
            json["subject"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(
        kinds,
        [
            ("provider_restored".to_owned(), "openai".to_owned()),
            ("route_unavailable".to_owned(), "chat".to_owned()),
            ("retry_budget_exhausted".to_owned(), "anthropic".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_burst_of_100_ejections_delivers_one_alert() {
    let (url, mut received, calls) = webhook_server(Vec::new()).await;
    let alerts = Alerts::builder()
        .sink(WebhookSink::new(&url).unwrap())
        .spawn();
    let telemetry = Telemetry::new().with_alerts(alerts.clone());

    for _ in 0..100 {
        telemetry.on_event(&ejected("openai"));
    }
    // A different provider after the burst: once it arrives, everything
    // queued before it has been delivered.
    telemetry.on_event(&ejected("anthropic"));

    let first = next(&mut received).await.json;
    assert_eq!(first["subject"], "openai");
    let second = next(&mut received).await.json;
    assert_eq!(second["subject"], "anthropic");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(alerts.suppressed(), 99);
    assert_eq!(alerts.dropped(), 0);
}

#[tokio::test]
async fn webhook_retries_server_errors_then_delivers() {
    let (url, mut received, calls) = webhook_server(vec![
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
    ])
    .await;
    let sink = WebhookSink::new(&url)
        .unwrap()
        .backoff(Duration::from_millis(10))
        .max_retries(2);
    let alert = Alert::new(
        AlertKind::ProviderEjected,
        "openai",
        "provider openai ejected",
    );
    tokio::time::timeout(PATIENCE, sink.deliver(&alert))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next(&mut received).await.json["subject"], "openai");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failed_delivery_is_logged_and_counted_without_the_url() {
    let (capture, logs, _guard) = common::capture_with_json();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let (url, _received, calls) = webhook_server(vec![StatusCode::FORBIDDEN]).await;

    let alerts = Alerts::builder()
        .sink(
            WebhookSink::new(&url)
                .unwrap()
                .backoff(Duration::from_millis(10)),
        )
        .spawn();
    Telemetry::new()
        .with_alerts(alerts)
        .on_event(&ejected("openai"));

    tokio::time::timeout(PATIENCE, async {
        while capture.events("alert_delivery_failed").is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the failure is logged");
    // A 403 is not retried.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let failed = &capture.events("alert_delivery_failed")[0];
    assert_eq!(failed.level, Level::WARN);
    assert_eq!(failed.field("sink"), Some("webhook"));
    assert!(failed.field("error").unwrap().contains("403"));
    let text = logs.text();
    assert!(text.contains("http://127.0.0.1:"), "{text}");
    assert!(!text.contains("secret-token"), "{text}");
    assert!(!text.contains("/hook/"), "{text}");

    let metrics = common::metrics(&snapshotter);
    assert_eq!(
        common::counter(
            &metrics,
            ALERT_DELIVERY_FAILURES_TOTAL,
            &[("sink", "webhook")]
        ),
        Some(1)
    );
}

#[tokio::test]
async fn a_dead_webhook_never_delays_a_request() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let sink = WebhookSink::new(&format!("http://{address}/hook"))
        .unwrap()
        .timeout(Duration::from_mins(10))
        .max_retries(0);
    let alerts = Alerts::builder().sink(sink).queue_capacity(2).spawn();
    let observer = Telemetry::new().with_alerts(alerts.clone()).into_shared();

    // A request during which 50 providers are ejected.
    let stack = service_fn(move |_: Request<String>| {
        let observer = observer.clone();
        async move {
            for i in 0..50 {
                observer.on_event(&ejected(&format!("provider-{i}")));
            }
            Ok::<_, Infallible>(Response::new(String::from("{}")))
        }
    });
    let response = tokio::time::timeout(
        Duration::from_secs(1),
        ObserveLayer::new()
            .layer(stack)
            .oneshot(Request::new(String::new())),
    )
    .await
    .expect("the request is not delayed")
    .unwrap();
    assert_eq!(response.status(), 200);

    // The queue holds two, the sink is stuck on at most one: the rest
    // were dropped and counted.
    let dropped = alerts.dropped();
    assert!((47..=48).contains(&dropped), "dropped {dropped}");
    let metrics = common::metrics(&snapshotter);
    assert_eq!(
        common::counter(&metrics, ALERTS_DROPPED_TOTAL, &[("sink", "webhook")]),
        Some(dropped)
    );
}

/// Collects alerts in memory.
struct Collect(mpsc::UnboundedSender<Alert>);

impl AlertSink for Collect {
    fn name(&self) -> &'static str {
        "collect"
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> DeliverFuture<'a> {
        let _ = self.0.send(alert.clone());
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test(start_paused = true)]
async fn repeats_pass_again_after_the_interval_and_say_how_many_were_suppressed() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let alerts = Alerts::builder()
        .sink(Collect(tx))
        .min_interval(Duration::from_mins(5))
        .spawn();
    let telemetry = Telemetry::new().with_alerts(alerts.clone());

    for _ in 0..100 {
        telemetry.on_event(&ejected("openai"));
    }
    let first = rx.recv().await.unwrap();
    assert_eq!(first.kind, AlertKind::ProviderEjected);
    assert!(!first.fields.contains_key("suppressed"));

    tokio::time::advance(Duration::from_mins(4)).await;
    telemetry.on_event(&ejected("openai"));
    tokio::time::advance(Duration::from_mins(1)).await;
    telemetry.on_event(&ejected("openai"));
    let second = rx.recv().await.unwrap();
    assert_eq!(second.fields["suppressed"], "100");
    assert_eq!(alerts.suppressed(), 100);

    // Another kind for the same provider is not a repeat.
    telemetry.on_event(&Event::ProviderStateChanged {
        provider: "openai",
        from: ProviderState::Ejected,
        to: ProviderState::Healthy,
        reason: StateChangeReason::ProbeSucceeded,
        duration: None,
    });
    assert_eq!(rx.recv().await.unwrap().kind, AlertKind::ProviderRestored);

    // A cooldown ending is not an alert.
    telemetry.on_event(&Event::ProviderStateChanged {
        provider: "anthropic",
        from: ProviderState::CoolingDown,
        to: ProviderState::Healthy,
        reason: StateChangeReason::CooldownEnded,
        duration: None,
    });
    drop(telemetry);
    drop(alerts);
    assert!(rx.recv().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn the_log_sink_emits_an_error_event() {
    let (capture, _guard) = common::capture();
    let alerts = Alerts::builder().sink(LogSink::new()).spawn();
    alerts.notify(
        Alert::new(
            AlertKind::RouteUnavailable,
            "chat",
            "every target of route chat is unavailable",
        )
        .with_field("attempts", "0"),
    );
    while capture.events("alert").is_empty() {
        tokio::task::yield_now().await;
    }
    let alert = &capture.events("alert")[0];
    assert_eq!(alert.level, Level::ERROR);
    assert_eq!(alert.field("kind"), Some("route_unavailable"));
    assert_eq!(alert.field("severity"), Some("critical"));
    assert_eq!(alert.field("subject"), Some("chat"));
    assert_eq!(alert.field("details"), Some("attempts=0"));
    assert_eq!(
        alert.field("message"),
        Some("every target of route chat is unavailable")
    );
}
