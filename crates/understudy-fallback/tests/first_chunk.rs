//! The commit point: streams and bodies through `FirstChunk` under a
//! `Fallback`, with paused time.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt};
use understudy_core::events::SharedObserver;
use understudy_core::{BoxError, ReplayBody, ResponseBody, RouteName, TargetName};
use understudy_fallback::{Fallback, FirstChunkLayer, Target};
use understudy_health::{HealthConfig, HealthRegistry};

use support::{
    Events, Log, ROLE_CHUNK, TargetService, body_string, chunk, completion, json, sse, target,
};

const FIRST_CHUNK: Duration = Duration::from_secs(5);

type Sender = tokio::sync::mpsc::UnboundedSender<Result<Bytes, BoxError>>;

fn request() -> Request<ReplayBody> {
    let mut request = Request::post("/v1/chat/completions")
        .body(ReplayBody::from(
            r#"{"model":"chat","stream":true,"messages":[]}"#,
        ))
        .unwrap();
    request.extensions_mut().insert(RouteName::new("chat"));
    request
}

fn guarded(name: &str, service: TargetService, observer: &SharedObserver) -> Target<TargetService> {
    let layer = FirstChunkLayer::new(FIRST_CHUNK).observer(observer.clone());
    Target::new(
        TargetName::new(name, "m"),
        TargetService::new(layer.layer(service)),
    )
}

/// A target whose every answer is a stream fed by the test: the sender is
/// handed over through `senders`.
fn streaming(log: &Log, senders: &Arc<Mutex<Vec<Sender>>>) -> TargetService {
    let senders = senders.clone();
    target(log, move || {
        let (response, tx) = sse();
        senders.lock().unwrap().push(tx);
        std::future::ready(Ok(response))
    })
}

/// A target that streams a whole good answer at once.
fn good_stream(log: &Log) -> TargetService {
    target(log, || {
        let (response, tx) = sse();
        tx.send(Ok(Bytes::from_static(ROLE_CHUNK.as_bytes())))
            .unwrap();
        tx.send(Ok(chunk("Hello"))).unwrap();
        tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n")))
            .unwrap();
        std::future::ready(Ok(response))
    })
}

fn setup() -> (Arc<Events>, SharedObserver) {
    let events = Arc::new(Events::default());
    let observer: SharedObserver = events.clone();
    (events, observer)
}

#[tokio::test(start_paused = true)]
async fn an_error_before_the_first_chunk_falls_back_to_a_whole_stream() {
    let (events, observer) = setup();
    let senders = Arc::new(Mutex::new(Vec::new()));
    let (primary, backup) = (Log::default(), Log::default());
    let fallback = Fallback::builder()
        .target(guarded("primary", streaming(&primary, &senders), &observer))
        .target(guarded("backup", good_stream(&backup), &observer))
        .observer(observer.clone())
        .build();

    let call = tokio::spawn(fallback.oneshot(request()));
    // The primary sends its head and a role-only delta, then breaks.
    while senders.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    let tx = senders.lock().unwrap().remove(0);
    tx.send(Ok(Bytes::from_static(ROLE_CHUNK.as_bytes())))
        .unwrap();
    tx.send(Err("connection reset".into())).unwrap();

    let response = call.await.unwrap().unwrap();
    assert_eq!(response.headers()["x-understudy-provider"], "backup");
    let body = body_string(response).await;
    assert_eq!(
        body,
        format!(
            "{ROLE_CHUNK}{}data: [DONE]\n\n",
            String::from_utf8(chunk("Hello").to_vec()).unwrap()
        )
    );
    assert_eq!(
        events.lines(),
        [r#"fallback primary->backup (stream broken) route=Some("chat")"#]
    );
}

#[tokio::test(start_paused = true)]
async fn a_primary_stalling_past_the_first_chunk_timeout_falls_back() {
    let (events, observer) = setup();
    let senders = Arc::new(Mutex::new(Vec::new()));
    let (primary, backup) = (Log::default(), Log::default());
    let fallback = Fallback::builder()
        .target(guarded("primary", streaming(&primary, &senders), &observer))
        .target(guarded("backup", good_stream(&backup), &observer))
        .observer(observer.clone())
        .build();

    let started = tokio::time::Instant::now();
    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.headers()["x-understudy-provider"], "backup");
    assert_eq!(started.elapsed(), FIRST_CHUNK);
    assert_eq!(
        events.lines(),
        [r#"fallback primary->backup (timed out) route=Some("chat")"#]
    );
    drop(senders);
}

#[tokio::test(start_paused = true)]
async fn an_error_event_before_content_falls_back_with_its_classification() {
    let (events, observer) = setup();
    let (primary, backup) = (Log::default(), Log::default());
    let overloaded = target(&primary, || {
        let (response, tx) = sse();
        tx.send(Ok(Bytes::from_static(
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        )))
        .unwrap();
        std::future::ready(Ok(response))
    });
    let fallback = Fallback::builder()
        .target(guarded("primary", overloaded, &observer))
        .target(guarded("backup", good_stream(&backup), &observer))
        .observer(observer.clone())
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.headers()["x-understudy-provider"], "backup");
    assert_eq!(
        events.lines(),
        [r#"fallback primary->backup (overloaded) route=Some("chat")"#]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_the_first_chunk_ends_the_stream_with_an_error_event() {
    let (events, telemetry) = setup();
    let registry = HealthRegistry::new(HealthConfig::default());
    let observer: SharedObserver = Arc::new((telemetry, registry.clone()));
    let senders = Arc::new(Mutex::new(Vec::new()));
    let (primary, backup) = (Log::default(), Log::default());
    let fallback = Fallback::builder()
        .target(guarded("primary", streaming(&primary, &senders), &observer))
        .target(guarded("backup", good_stream(&backup), &observer))
        .observer(observer.clone())
        .build();

    let call = tokio::spawn(fallback.oneshot(request()));
    while senders.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    let tx = senders.lock().unwrap().remove(0);
    tx.send(Ok(chunk("Hel"))).unwrap();
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-understudy-provider"], "primary");

    tx.send(Ok(chunk("lo"))).unwrap();
    tx.send(Err("connection reset".into())).unwrap();
    let body = body_string(response).await;

    let events_in_body: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events_in_body.len(), 3, "{body}");
    let last: serde_json::Value =
        serde_json::from_str(events_in_body[2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_broken");
    assert_eq!(last["error"]["type"], "server_error");
    assert_eq!(backup.len(), 0);
    assert_eq!(events.lines(), ["stream broken after commit primary/m"]);
    assert_eq!(registry.snapshot()[0].consecutive_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn a_stream_stalling_after_the_commit_is_ended_after_the_idle_timeout() {
    let (events, observer) = setup();
    let senders = Arc::new(Mutex::new(Vec::new()));
    let log = Log::default();
    let layer = FirstChunkLayer::new(FIRST_CHUNK)
        .idle_timeout(Duration::from_secs(2))
        .observer(observer.clone());
    let service = layer.layer(streaming(&log, &senders));
    let mut request = request();
    request
        .extensions_mut()
        .insert(TargetName::new("primary", "m"));

    let call = tokio::spawn(service.oneshot(request));
    while senders.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    let tx = senders.lock().unwrap().remove(0);
    tx.send(Ok(chunk("Hi"))).unwrap();
    let response = call.await.unwrap().unwrap();
    let started = tokio::time::Instant::now();
    let body = body_string(response).await;

    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(
        body.ends_with("\n\n") && body.contains("stalled for 2000 ms"),
        "{body}"
    );
    assert_eq!(events.lines(), ["stream broken after commit primary/m"]);
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn a_non_json_success_body_falls_back() {
    let (events, observer) = setup();
    let (primary, backup) = (Log::default(), Log::default());
    let garbage = target(&primary, || {
        std::future::ready(Ok(Response::new(ResponseBody::from(
            "<html>gateway hiccup</html>",
        ))))
    });
    let fallback = Fallback::builder()
        .target(guarded("primary", garbage, &observer))
        .target(guarded(
            "backup",
            target(&backup, || std::future::ready(Ok(completion("backup")))),
            &observer,
        ))
        .observer(observer.clone())
        .build();

    let started = tokio::time::Instant::now();
    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(response.headers()["x-understudy-provider"], "backup");
    assert_eq!(
        events.lines(),
        [r#"fallback primary->backup (stream broken) route=Some("chat")"#]
    );
}

#[tokio::test(start_paused = true)]
async fn a_non_streaming_body_is_released_whole() {
    let log = Log::default();
    let service = FirstChunkLayer::new(FIRST_CHUNK).layer(target(&log, || {
        let (mut response, tx) = sse();
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        tx.send(Ok(Bytes::from_static(b"{\"choices\":"))).unwrap();
        tx.send(Ok(Bytes::from_static(b"[]}"))).unwrap();
        drop(tx);
        std::future::ready(Ok(response))
    }));

    let response = service.oneshot(request()).await.unwrap();

    assert_eq!(response.headers()["content-length"], "14");
    assert_eq!(body_string(response).await, r#"{"choices":[]}"#);
}

#[tokio::test(start_paused = true)]
async fn error_statuses_pass_through_untouched() {
    let log = Log::default();
    let service = FirstChunkLayer::new(FIRST_CHUNK).layer(target(&log, || {
        std::future::ready(Ok(json(503, r#"{"error":{"message":"busy"}}"#)))
    }));

    let response = service.oneshot(request()).await.unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body_string(response).await,
        r#"{"error":{"message":"busy"}}"#
    );
}

/// Commits a stream through `FirstChunk` alone and hands back its body and
/// the sender that feeds it.
async fn committed(idle: Duration) -> (ResponseBody, Sender) {
    let senders = Arc::new(Mutex::new(Vec::new()));
    let log = Log::default();
    let layer = FirstChunkLayer::new(FIRST_CHUNK).idle_timeout(idle);
    let service = layer.layer(streaming(&log, &senders));
    let call = tokio::spawn(service.oneshot(request()));
    while senders.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    let tx = senders.lock().unwrap().remove(0);
    tx.send(Ok(chunk("first"))).unwrap();
    let response = call.await.unwrap().unwrap();
    (response.into_body(), tx)
}

#[tokio::test(start_paused = true)]
async fn a_stream_slower_than_nothing_but_steady_is_never_cut() {
    use http_body_util::BodyExt;

    let (mut body, tx) = committed(Duration::from_secs(2)).await;
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, chunk("first"));
    // Ten chunks 1.5 s apart: 15 s in all, never 2 s of silence.
    for i in 0..10 {
        tokio::time::advance(Duration::from_millis(1500)).await;
        tx.send(Ok(chunk(&format!("n{i}")))).unwrap();
        let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(frame, chunk(&format!("n{i}")), "chunk {i}");
    }
    drop(tx);
    assert!(body.frame().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_burst_goes_out_as_one_frame_and_a_lone_chunk_is_not_held() {
    use http_body_util::BodyExt;

    let (mut body, tx) = committed(Duration::from_secs(2)).await;
    for i in 0..5 {
        tx.send(Ok(chunk(&format!("b{i}")))).unwrap();
    }
    // The held first chunk and the burst that was already there: one frame.
    let burst = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let expected: Vec<u8> = std::iter::once(chunk("first"))
        .chain((0..5).map(|i| chunk(&format!("b{i}"))))
        .flat_map(|b| b.to_vec())
        .collect();
    assert_eq!(burst, expected);

    // A lone chunk comes out without waiting for another.
    tx.send(Ok(chunk("lone"))).unwrap();
    let started = tokio::time::Instant::now();
    let lone = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(lone, chunk("lone"));
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_stream_sending_only_preamble_past_the_bound_fails_over() {
    let (events, observer) = setup();
    let (primary, backup) = (Log::default(), Log::default());
    // The stream stays open: without the bound it would be waited on until
    // the first-chunk timeout.
    let open = Arc::new(Mutex::new(Vec::new()));
    let kept = open.clone();
    let chatty = target(&primary, move || {
        let (response, tx) = sse();
        for _ in 0..100 {
            tx.send(Ok(Bytes::from_static(ROLE_CHUNK.as_bytes())))
                .unwrap();
        }
        kept.lock().unwrap().push(tx);
        std::future::ready(Ok(response))
    });
    let bounded = FirstChunkLayer::new(FIRST_CHUNK)
        .max_body(4096)
        .observer(observer.clone());
    let fallback = Fallback::builder()
        .target(Target::new(
            TargetName::new("primary", "m"),
            TargetService::new(bounded.layer(chatty)),
        ))
        .target(guarded("backup", good_stream(&backup), &observer))
        .observer(observer.clone())
        .build();

    let started = tokio::time::Instant::now();
    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(response.headers()["x-understudy-provider"], "backup");
    assert_eq!(
        events.lines(),
        [r#"fallback primary->backup (stream broken) route=Some("chat")"#]
    );
    assert_eq!(open.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stream_sending_one_endless_line_fails_over() {
    let (events, observer) = setup();
    let (primary, backup) = (Log::default(), Log::default());
    let open = Arc::new(Mutex::new(Vec::new()));
    let kept = open.clone();
    // 2 MiB of one `data:` line that never ends: under `max_body`, over the
    // decoder's limit on one event.
    let endless = target(&primary, move || {
        let (response, tx) = sse();
        tx.send(Ok(Bytes::from_static(b"data: "))).unwrap();
        for _ in 0..32 {
            tx.send(Ok(Bytes::from(vec![b'x'; 64 * 1024]))).unwrap();
        }
        kept.lock().unwrap().push(tx);
        std::future::ready(Ok(response))
    });
    let fallback = Fallback::builder()
        .target(guarded("primary", endless, &observer))
        .target(guarded("backup", good_stream(&backup), &observer))
        .observer(observer.clone())
        .build();

    let started = tokio::time::Instant::now();
    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(response.headers()["x-understudy-provider"], "backup");
    assert_eq!(
        events.lines(),
        [r#"fallback primary->backup (stream broken) route=Some("chat")"#]
    );
    assert_eq!(open.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_event_limit_is_set_on_the_layer() {
    let (events, observer) = setup();
    let (primary, backup) = (Log::default(), Log::default());
    // A whole, well-formed content event of about 200 bytes.
    let long_event = target(&primary, || {
        let (response, tx) = sse();
        tx.send(Ok(chunk(&"y".repeat(120)))).unwrap();
        std::future::ready(Ok(response))
    });
    let small = FirstChunkLayer::new(FIRST_CHUNK)
        .max_event_bytes(64)
        .observer(observer.clone());
    let fallback = Fallback::builder()
        .target(Target::new(
            TargetName::new("primary", "m"),
            TargetService::new(small.layer(long_event)),
        ))
        .target(guarded("backup", good_stream(&backup), &observer))
        .observer(observer.clone())
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.headers()["x-understudy-provider"], "backup");
    assert_eq!(
        events.lines(),
        [r#"fallback primary->backup (stream broken) route=Some("chat")"#]
    );
}
