//! A stream that breaks after its commit, resumed by `Fallback` on the next
//! target through the real first-chunk guard.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt, service_fn};
use understudy_core::{BoxError, ReplayBody, ResponseBody, TargetName};
use understudy_fallback::{Fallback, FirstChunkLayer, Target};

type Service = BoxCloneSyncService<Request<ReplayBody>, Response<ResponseBody>, BoxError>;

fn chunk(delta: &Value, finish: &Value) -> String {
    let chunk = json!({"id": "x", "created": 1, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {chunk}\n\n")
}

/// A target answering a stream of `events`, then a cut when `cut`; the
/// last request body it got goes to `seen`.
fn target(
    name: &str,
    events: Vec<String>,
    cut: bool,
    seen: Arc<Mutex<Option<Bytes>>>,
) -> Target<Service> {
    let service = service_fn(move |request: Request<ReplayBody>| {
        let events = events.clone();
        let seen = seen.clone();
        async move {
            *seen.lock().unwrap() = Some(request.into_body().into_bytes());
            let mut frames: Vec<Result<Frame<Bytes>, BoxError>> = events
                .into_iter()
                .map(|e| Ok(Frame::data(Bytes::from(e))))
                .collect();
            if cut {
                frames.push(Err("connection reset".into()));
            }
            let body = StreamBody::new(futures_util::stream::iter(frames));
            let response = Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(body)
                .unwrap();
            Ok::<_, BoxError>(response)
        }
    });
    let guarded = FirstChunkLayer::new(Duration::from_secs(5)).layer(service);
    Target::new(
        TargetName::new(name, "m"),
        BoxCloneSyncService::new(guarded),
    )
}

async fn run(primary_events: Vec<String>, resume: bool) -> (String, Option<Value>) {
    let seen = Arc::new(Mutex::new(None));
    let backup_events = vec![
        chunk(&json!({"role": "assistant", "content": ""}), &Value::Null),
        // The backup sends the prefix again first.
        chunk(&json!({"content": "Hello from b"}), &Value::Null),
        chunk(&json!({"content": "ackup."}), &Value::Null),
        chunk(&json!({}), &json!("stop")),
        "data: [DONE]\n\n".to_owned(),
    ];
    let builder = Fallback::builder()
        .target(target(
            "primary",
            primary_events,
            true,
            Arc::new(Mutex::new(None)),
        ))
        .target(target("backup", backup_events, false, seen.clone()));
    let fallback = if resume {
        builder.resume(1 << 20, 1 << 20)
    } else {
        builder
    }
    .build();
    let request = Request::new(ReplayBody::from(
        r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    ));
    let response = fallback.oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let backup_request = seen
        .lock()
        .unwrap()
        .as_ref()
        .map(|b| serde_json::from_slice(b).unwrap());
    (String::from_utf8(body.to_vec()).unwrap(), backup_request)
}

fn text(body: &str) -> String {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

fn primary_text() -> Vec<String> {
    vec![
        chunk(&json!({"role": "assistant", "content": ""}), &Value::Null),
        chunk(&json!({"content": "Hello"}), &Value::Null),
        chunk(&json!({"content": " fr"}), &Value::Null),
    ]
}

#[tokio::test]
async fn a_cut_stream_is_continued_on_the_next_target_as_one_stream() {
    let (body, backup_request) = run(primary_text(), true).await;
    assert_eq!(text(&body), "Hello from backup.", "{body}");
    assert!(
        body.contains(": resumed from primary to backup\n\n"),
        "{body}"
    );
    assert_eq!(body.matches(r#""role""#).count(), 1, "{body}");
    assert!(!body.contains("error"), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let messages = &backup_request.unwrap()["messages"];
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": "Hello fr"})
    );
    assert_eq!(messages[2]["role"], "user");
}

#[tokio::test]
async fn without_resume_the_cut_ends_with_an_error_event() {
    let (body, backup_request) = run(primary_text(), false).await;
    assert!(body.contains(r#""code":"stream_broken""#), "{body}");
    assert!(backup_request.is_none());
}

#[tokio::test]
async fn a_cut_inside_a_tool_call_is_not_resumed() {
    let events = vec![
        chunk(&json!({"role": "assistant", "content": null}), &Value::Null),
        chunk(
            &json!({"tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"ci"}}]}),
            &Value::Null,
        ),
    ];
    let (body, backup_request) = run(events, true).await;
    assert!(body.contains(r#""code":"stream_broken""#), "{body}");
    assert!(!body.contains(": resumed"));
    assert!(backup_request.is_none());
}
