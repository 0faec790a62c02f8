use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};

use super::*;

#[tokio::test]
async fn collects_chunks_into_one_buffer() {
    let Test { seen, service, .. } = Test::new(64);
    let response = service
        .oneshot(Request::new(Chunks::new(&["{\"model\":", "\"chat\"", "}"])))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [Bytes::from("{\"model\":\"chat\"}")]
    );
}

#[tokio::test]
async fn clones_share_memory_and_replay_from_the_start() {
    let body = ReplayBody::new(Bytes::from(vec![7u8; 1024]));
    let mut clones: Vec<ReplayBody> = (0..3).map(|_| body.clone()).collect();
    clones.push(body);
    let pointer = clones[0].bytes().as_ptr();
    for clone in clones {
        assert_eq!(clone.bytes().as_ptr(), pointer);
        let frames = collect_frames(clone).await;
        // One frame, the shared buffer itself: no copy on the way out either.
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].as_ptr(), pointer);
        assert_eq!(frames[0].len(), 1024);
    }
}

#[tokio::test]
async fn clone_of_a_read_body_reads_again() {
    let mut body = ReplayBody::from("hello");
    assert_eq!(body.size_hint().exact(), Some(5));
    assert!(!body.is_end_stream());
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "hello");
    assert!(body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(0));
    assert!(body.frame().await.is_none());

    let again = body.clone();
    assert!(!again.is_end_stream());
    assert_eq!(again.size_hint().exact(), Some(5));
    assert_eq!(again.collect().await.unwrap().to_bytes(), "hello");
}

#[tokio::test]
async fn empty_body_ends_at_once() {
    let body = ReplayBody::default();
    assert!(body.is_end_stream());
    assert!(body.is_empty());
    assert!(collect_frames(body).await.is_empty());
}

#[tokio::test]
async fn content_length_over_limit_is_refused_unread() {
    let Test { calls, service, .. } = Test::new(10);
    let body = Unreadable { declared: 11 };
    let response = service.oneshot(Request::new(body)).await.unwrap();
    assert_openai_413(response, 10).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn streamed_body_over_limit_stops_reading() {
    let Test { calls, service, .. } = Test::new(25);
    let endless = Endless::new(10);
    let read = endless.read.clone();
    let response = service.oneshot(Request::new(endless)).await.unwrap();
    assert_openai_413(response, 25).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Three 10-byte frames pass the limit of 25: the fourth is never read.
    assert_eq!(read.load(Ordering::SeqCst), 30);
}

#[tokio::test]
async fn body_exactly_at_limit_is_accepted() {
    let Test { seen, service, .. } = Test::new(5);
    let response = service
        .oneshot(Request::new(Full::new(Bytes::from_static(b"12345"))))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.lock().unwrap()[0], "12345");
}

#[tokio::test]
async fn failing_body_is_a_400() {
    let Test { calls, service, .. } = Test::new(64);
    let response = service.oneshot(Request::new(Failing)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let json = json_body(response).await;
    assert_eq!(json["error"]["type"], "invalid_request_error");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn headers_and_extensions_reach_the_inner_service() {
    let inner = service_fn(|request: Request<ReplayBody>| async move {
        let header = request.headers()["x-caller"].clone();
        let route = request.extensions().get::<crate::RouteName>().cloned();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
            "{}:{}",
            header.to_str().unwrap(),
            route.unwrap()
        )))))
    });
    let mut request = Request::builder()
        .header("x-caller", "abc")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    request
        .extensions_mut()
        .insert(crate::RouteName::new("chat"));
    let response = ReplayLayer::new(64)
        .layer(inner)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "abc:chat"
    );
}

#[test]
fn services_and_futures_are_send() {
    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}
    assert_send::<ReplayBody>();
    assert_sync::<ReplayBody>();
    assert_send::<Replay<Inner>>();
    assert_sync::<Replay<Inner>>();
    assert_send::<ResponseFuture<Full<Bytes>, Inner>>();
}

// === fixtures ===

type Seen = Arc<std::sync::Mutex<Vec<Bytes>>>;

struct Test<S> {
    seen: Seen,
    calls: Arc<AtomicUsize>,
    service: S,
}

type Inner =
    tower::util::BoxCloneSyncService<Request<ReplayBody>, Response<Full<Bytes>>, Infallible>;

impl Test<Replay<Inner>> {
    fn new(limit: usize) -> Self {
        let seen = Seen::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let inner = {
            let seen = seen.clone();
            let calls = calls.clone();
            service_fn(move |request: Request<ReplayBody>| {
                calls.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap().push(request.body().bytes().clone());
                async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
            })
        };
        Test {
            seen,
            calls,
            service: ReplayLayer::new(limit).layer(Inner::new(inner)),
        }
    }
}

/// Yields its chunks one frame at a time.
struct Chunks(std::collections::VecDeque<Bytes>);

impl Chunks {
    fn new(chunks: &[&'static str]) -> Self {
        Self(
            chunks
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
        )
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// Declares a length and panics if read.
struct Unreadable {
    declared: u64,
}

impl Body for Unreadable {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        panic!("a body whose length is over the limit must not be read");
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.declared)
    }
}

/// Yields frames of `size` bytes forever, counting what was read.
struct Endless {
    size: usize,
    read: Arc<AtomicUsize>,
}

impl Endless {
    fn new(size: usize) -> Self {
        Self {
            size,
            read: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.read.fetch_add(self.size, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; self.size])))))
    }
}

/// Fails on the first read.
struct Failing;

impl Body for Failing {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        ))))
    }
}

async fn collect_frames(mut body: ReplayBody) -> Vec<Bytes> {
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        frames.push(frame.unwrap().into_data().unwrap());
    }
    frames
}

async fn json_body<B>(response: Response<B>) -> serde_json::Value
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

async fn assert_openai_413<B>(response: Response<B>, limit: usize)
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.headers()["content-type"], "application/json");
    let json = json_body(response).await;
    assert_eq!(json["error"]["type"], "invalid_request_error");
    assert_eq!(json["error"]["code"], "request_too_large");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&limit.to_string())
    );
}
