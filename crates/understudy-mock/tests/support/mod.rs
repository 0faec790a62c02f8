//! A small HTTP/1 client over real sockets, one connection per request
//! unless a test keeps one, and helpers to read answers.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use understudy_core::sse::{SseDecoder, SseEvent};

/// How long any single wait in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A client connection and the task driving it.
pub struct Connection {
    pub sender: SendRequest<Full<Bytes>>,
    pub driver: JoinHandle<hyper::Result<()>>,
}

pub async fn connect(addr: SocketAddr) -> io::Result<Connection> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    let driver = tokio::spawn(connection);
    Ok(Connection { sender, driver })
}

impl Connection {
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> hyper::Result<Response<Incoming>> {
        self.sender.ready().await?;
        self.sender.send_request(request).await
    }
}

pub fn post(path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "mock")
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-test")
        .body(Full::new(body.into()))
        .unwrap()
}

pub fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "mock")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

pub fn delete(path: &str) -> Request<Full<Bytes>> {
    Request::delete(path)
        .header("host", "mock")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A chat request body in either format (both take `model`, `messages`,
/// `stream`).
pub fn chat(model: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    })
    .to_string()
}

/// Sends one request on a fresh connection.
pub async fn send(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> hyper::Result<Response<Incoming>> {
    let mut connection = connect(addr).await.expect("connect to the mock");
    connection.send(request).await
}

/// Sends one request on a fresh connection and reads the whole answer.
pub async fn send_full(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let response = within(send(addr, request)).await.expect("an answer");
    let status = response.status();
    let headers = response.headers().clone();
    let body = within(response.into_body().collect())
        .await
        .expect("a whole body")
        .to_bytes();
    (status, headers, body)
}

pub fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// Reads a body event by event until it ends or fails.
pub async fn read_events(mut body: Incoming) -> (Vec<SseEvent>, Option<hyper::Error>) {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    loop {
        match within(body.frame()).await {
            None => return (events, None),
            Some(Err(error)) => return (events, Some(error)),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    decoder.push(data);
                    while let Some(event) = decoder.next_event().expect("event too large") {
                        events.push(event);
                    }
                }
            }
        }
    }
}

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("timed out")
}

/// Polls `check` until it holds, failing the test after [`PATIENCE`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let poll = async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    assert!(
        tokio::time::timeout(PATIENCE, poll).await.is_ok(),
        "timed out waiting for {what}"
    );
}

/// Tries to connect until the attempt's outcome is the one wanted.
pub async fn eventually_connect(addr: SocketAddr, refused: bool) {
    let poll = async {
        loop {
            let outcome = TcpStream::connect(addr).await;
            match (&outcome, refused) {
                (Err(e), true) if e.kind() == io::ErrorKind::ConnectionRefused => return,
                (Ok(_), false) => return,
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
    assert!(
        tokio::time::timeout(PATIENCE, poll).await.is_ok(),
        "timed out waiting for connections to be {}",
        if refused { "refused" } else { "accepted" }
    );
}
