//! Loopback servers that speak a provider's wire format and record what
//! they were sent.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use understudy_core::{BoxError, ClassifiedError, Outcome, ReplayBody, ResponseBody};
use understudy_provider::{ClientConfig, HttpClient, ProviderError};

/// What a test server received.
#[derive(Clone, Debug)]
pub(crate) struct Captured {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Captured {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A server's answer body: whole, or fed from a channel.
pub(crate) enum TestBody {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Bytes>),
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Channel(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }
}

/// A running server; stops when dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<Captured>,
    task: JoinHandle<()>,
}

impl Server {
    /// `http://` and the server's address.
    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The origin with `/v1`, where OpenAI-style APIs live.
    pub(crate) fn base_url(&self) -> String {
        format!("{}/v1", self.origin())
    }

    /// The next request the server received.
    pub(crate) async fn request(&mut self) -> Captured {
        within(self.requests.recv()).await.expect("server stopped")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Handler =
    Arc<dyn Fn(Captured) -> Pin<Box<dyn Future<Output = Response<TestBody>> + Send>> + Send + Sync>;

fn handler<H, F>(handle: H) -> Handler
where
    H: Fn(Captured) -> F + Send + Sync + 'static,
    F: Future<Output = Response<TestBody>> + Send + 'static,
{
    Arc::new(move |captured| Box::pin(handle(captured)))
}

/// Serves plain HTTP on a loopback port.
pub(crate) async fn serve<H, F>(handle: H) -> Server
where
    H: Fn(Captured) -> F + Send + Sync + 'static,
    F: Future<Output = Response<TestBody>> + Send + 'static,
{
    serve_with(None, handler(handle)).await
}

/// Serves HTTPS (HTTP/1.1 and HTTP/2 by ALPN) on a loopback port.
pub(crate) async fn serve_tls<H, F>(acceptor: tokio_rustls::TlsAcceptor, handle: H) -> Server
where
    H: Fn(Captured) -> F + Send + Sync + 'static,
    F: Future<Output = Response<TestBody>> + Send + 'static,
{
    serve_with(Some(acceptor), handler(handle)).await
}

async fn serve_with(tls: Option<tokio_rustls::TlsAcceptor>, handle: Handler) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, requests) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            stream.set_nodelay(true).unwrap();
            let tx = tx.clone();
            let handle = handle.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => connection(stream, tx, handle).await,
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            connection(stream, tx, handle).await;
                        }
                    }
                }
            });
        }
    });
    Server {
        addr,
        requests,
        task,
    }
}

async fn connection<IO>(io: IO, tx: mpsc::UnboundedSender<Captured>, handle: Handler)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let tx = tx.clone();
        let handle = handle.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let captured = Captured {
                method: parts.method,
                uri: parts.uri,
                version: parts.version,
                headers: parts.headers,
                body,
            };
            let _ = tx.send(captured.clone());
            Ok::<_, Infallible>(handle(captured).await)
        }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A whole answer.
pub(crate) fn answer(status: u16, content_type: &str, body: &str) -> Response<TestBody> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", content_type)
        .body(TestBody::Full(Some(Bytes::from(body.to_owned()))))
        .unwrap()
}

/// A whole JSON answer.
pub(crate) fn json(status: u16, body: &str) -> Response<TestBody> {
    answer(status, "application/json", body)
}

/// A streamed answer fed by the returned sender.
pub(crate) fn sse() -> (mpsc::Sender<Bytes>, Response<TestBody>) {
    let (tx, rx) = mpsc::channel(16);
    let response = Response::builder()
        .header("content-type", "text/event-stream")
        .body(TestBody::Channel(rx))
        .unwrap();
    (tx, response)
}

/// A client with the default configuration.
pub(crate) fn client() -> HttpClient {
    HttpClient::new(ClientConfig::default()).unwrap()
}

/// A caller's request, with the caller's own credentials and cookies that
/// must not travel.
pub(crate) fn caller_request(body: &str) -> Request<ReplayBody> {
    Request::post("http://gateway.local/v1/chat/completions")
        .header("authorization", "Bearer caller-secret")
        .header("x-api-key", "caller-anthropic-secret")
        .header("anthropic-version", "1999-01-01")
        .header("cookie", "session=caller")
        .header("host", "gateway.local")
        .header("content-length", body.len().to_string())
        .header("content-type", "application/json; charset=utf-8")
        .header("accept-encoding", "gzip")
        .header("user-agent", "openai-python/1.50")
        .header("x-request-id", "req-123")
        .body(ReplayBody::from(body.to_owned()))
        .unwrap()
}

/// Awaits `future` for at most ten seconds.
pub(crate) async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("timed out")
}

/// The next frame of a body, which must be data.
pub(crate) async fn next_data(body: &mut ResponseBody) -> Bytes {
    within(body.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap()
}

/// Asserts that a stream's error is classified as `outcome` and is the
/// provider's own error event of this `kind`.
pub(crate) fn assert_stream_error(error: &BoxError, outcome: Outcome, kind: &str) {
    let classified = error.downcast_ref::<ClassifiedError>().unwrap();
    assert_eq!(classified.outcome(), outcome);
    let source = std::error::Error::source(classified).unwrap();
    assert!(
        matches!(
            source.downcast_ref::<ProviderError>(),
            Some(ProviderError::StreamError { kind: got, .. }) if got == kind
        ),
        "{source:?}"
    );
}

/// The whole body as text.
pub(crate) async fn text(body: ResponseBody) -> String {
    let bytes = within(body.collect()).await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The `data:` payloads of an SSE text.
pub(crate) fn data_lines(sse: &str) -> Vec<&str> {
    sse.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| event.strip_prefix("data: ").expect(event))
        .collect()
}
