//! Scripted targets for the fallback tests.
#![allow(
    dead_code,
    missing_debug_implementations,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::len_without_is_empty
)]

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot};
use tower::service_fn;
use tower::util::BoxCloneSyncService;
use understudy_core::events::{Event, Observer};
use understudy_core::{BoxError, Outcome, ReplayBody, ResponseBody, TargetName};

pub type TargetService = BoxCloneSyncService<Request<ReplayBody>, Response<ResponseBody>, BoxError>;

/// A body fed from a channel: each message is a frame or an error.
pub struct ChannelBody(pub mpsc::UnboundedReceiver<Result<Bytes, BoxError>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }
}

/// A streaming response and the sender that feeds it.
pub fn sse() -> (
    Response<ResponseBody>,
    mpsc::UnboundedSender<Result<Bytes, BoxError>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let response = Response::builder()
        .header("content-type", "text/event-stream")
        .body(ResponseBody::new(ChannelBody(rx)))
        .unwrap();
    (response, tx)
}

pub fn chunk(text: &str) -> Bytes {
    Bytes::from(format!(
        "data: {{\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n"
    ))
}

pub const ROLE_CHUNK: &str = "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n";

pub fn json(status: u16, body: &str) -> Response<ResponseBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(ResponseBody::from(body.to_owned()))
        .unwrap()
}

pub fn completion(from: &str) -> Response<ResponseBody> {
    json(
        200,
        &format!(
            r#"{{"object":"chat.completion","choices":[{{"message":{{"role":"assistant","content":"hello from {from}"}},"finish_reason":"stop"}}]}}"#
        ),
    )
}

/// What a target saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub target: Option<TargetName>,
    pub method: http::Method,
    pub uri: http::Uri,
    pub route: Option<understudy_core::RouteName>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Records the requests a target receives.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<Seen>>>);

impl Log {
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn get(&self, i: usize) -> Seen {
        self.0.lock().unwrap()[i].clone()
    }
}

/// A target answering each request with `answer`, recording what it saw.
pub fn target<F, Fut>(log: &Log, answer: F) -> TargetService
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<ResponseBody>, BoxError>> + Send + 'static,
{
    let log = log.clone();
    BoxCloneSyncService::new(service_fn(move |request: Request<ReplayBody>| {
        let log = log.clone();
        let answer = answer.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            log.0.lock().unwrap().push(Seen {
                target: parts.extensions.get::<TargetName>().cloned(),
                method: parts.method,
                uri: parts.uri,
                route: parts
                    .extensions
                    .get::<understudy_core::RouteName>()
                    .cloned(),
                headers: parts.headers,
                body,
            });
            answer().await
        }
    }))
}

/// Collects the events reported to it, as strings; commits
/// (`Event::FirstContent`) are left to [`Commits`].
#[derive(Default)]
pub struct Events(pub Mutex<Vec<String>>);

impl Observer for Events {
    fn on_event(&self, event: &Event<'_>) {
        let line = match event {
            Event::FirstContent { .. } => return,
            Event::Fallback {
                from,
                to,
                outcome,
                route,
            } => {
                format!("fallback {from}->{to} ({outcome}) route={route:?}")
            }
            Event::AllTargetsFailed {
                attempts,
                all_unavailable,
                ..
            } => {
                format!("all failed attempts={attempts} all_unavailable={all_unavailable}")
            }
            Event::StreamBrokenAfterCommit { provider, model } => {
                format!("stream broken after commit {provider}/{model}")
            }
            other => format!("{other:?}"),
        };
        self.0.lock().unwrap().push(line);
    }
}

impl Events {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Collects the commits reported to it: provider, model and time to first
/// content.
#[derive(Default)]
pub struct Commits(pub Mutex<Vec<(String, String, Duration)>>);

impl Observer for Commits {
    fn on_event(&self, event: &Event<'_>) {
        if let Event::FirstContent {
            provider,
            model,
            elapsed,
        } = event
        {
            self.0
                .lock()
                .unwrap()
                .push(((*provider).to_owned(), (*model).to_owned(), *elapsed));
        }
    }
}

impl Commits {
    pub fn all(&self) -> Vec<(String, String, Duration)> {
        self.0.lock().unwrap().clone()
    }
}

/// Signals when dropped: proves a future was cancelled.
pub struct DropSignal(pub Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

pub fn outcome_of(response: &Response<ResponseBody>) -> Option<Outcome> {
    response.extensions().get::<Outcome>().copied()
}

pub async fn body_string(response: Response<ResponseBody>) -> String {
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}
