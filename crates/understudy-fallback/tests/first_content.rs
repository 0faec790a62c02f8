//! Time to first content: `FirstChunk` reports `Event::FirstContent` once
//! per committed attempt, timed from the attempt's start, with paused time.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, ServiceExt};
use understudy_core::events::SharedObserver;
use understudy_core::{BoxError, ReplayBody, ResponseBody, RouteName, TargetName};
use understudy_fallback::{Fallback, FirstChunkLayer, Target};

use support::{
    Commits, Log, ROLE_CHUNK, TargetService, body_string, chunk, completion, json, sse, target,
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

fn setup() -> (Arc<Commits>, SharedObserver) {
    let commits = Arc::new(Commits::default());
    let observer: SharedObserver = commits.clone();
    (commits, observer)
}

fn commit(provider: &str, elapsed: Duration) -> (String, String, Duration) {
    (provider.to_owned(), "m".to_owned(), elapsed)
}

#[tokio::test(start_paused = true)]
async fn a_stream_commits_once_at_its_first_content_chunk_not_its_role_chunk() {
    let (commits, observer) = setup();
    let senders: Arc<Mutex<Vec<Sender>>> = Arc::new(Mutex::new(Vec::new()));
    let log = Log::default();
    let streaming = {
        let senders = senders.clone();
        target(&log, move || {
            let (response, tx) = sse();
            senders.lock().unwrap().push(tx);
            std::future::ready(Ok(response))
        })
    };
    let fallback = Fallback::builder()
        .target(guarded("primary", streaming, &observer))
        .observer(observer.clone())
        .build();

    let call = tokio::spawn(fallback.oneshot(request()));
    while senders.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    let tx = senders.lock().unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send(Ok(Bytes::from_static(ROLE_CHUNK.as_bytes())))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The role-only chunk has been read, and is no content.
    assert!(!call.is_finished());
    assert_eq!(commits.all(), []);

    tx.send(Ok(chunk("Hi"))).unwrap();
    let response = call.await.unwrap().unwrap();
    assert_eq!(
        commits.all(),
        [commit("primary", Duration::from_millis(300))]
    );

    // More content after the commit is not another commit.
    tx.send(Ok(chunk("there"))).unwrap();
    tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n")))
        .unwrap();
    drop(tx);
    let body = body_string(response).await;
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert_eq!(commits.all().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn failed_attempts_report_no_commit_and_the_answer_that_follows_does() {
    let (commits, observer) = setup();
    let log = Log::default();
    // An error status, a success status without an answer, a stream that
    // breaks after its role chunk: three failures before the commit.
    let busy = target(&log, || {
        std::future::ready(Ok(json(503, r#"{"error":{"message":"busy"}}"#)))
    });
    let garbage = target(&log, || {
        std::future::ready(Ok(Response::new(ResponseBody::from(
            "<html>gateway hiccup</html>",
        ))))
    });
    let envelope = target(&log, || {
        std::future::ready(Ok(json(
            200,
            r#"{"error":{"type":"server_error","message":"boom"}}"#,
        )))
    });
    let broken = target(&log, || {
        let (response, tx) = sse();
        tx.send(Ok(Bytes::from_static(ROLE_CHUNK.as_bytes())))
            .unwrap();
        tx.send(Err("connection reset".into())).unwrap();
        std::future::ready(Ok(response))
    });
    // A whole answer, after 50 ms of the provider's own time.
    let slow = target(&log, || async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(completion("slow"))
    });
    let fallback = Fallback::builder()
        .target(guarded("busy", busy, &observer))
        .target(guarded("garbage", garbage, &observer))
        .target(guarded("envelope", envelope, &observer))
        .target(guarded("broken", broken, &observer))
        .target(guarded("slow", slow, &observer))
        .observer(observer.clone())
        .build();

    let response = fallback.oneshot(request()).await.unwrap();

    assert_eq!(response.headers()["x-understudy-provider"], "slow");
    assert_eq!(log.len(), 5);
    assert_eq!(commits.all(), [commit("slow", Duration::from_millis(50))]);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_without_a_target_reports_nothing() {
    let (commits, observer) = setup();
    let log = Log::default();
    let service = FirstChunkLayer::new(FIRST_CHUNK)
        .observer(observer)
        .layer(target(&log, || std::future::ready(Ok(completion("alone")))));

    let response = service.oneshot(request()).await.unwrap();

    assert!(response.status().is_success());
    assert_eq!(commits.all(), []);
}
