//! A canned upstream over a loopback socket, and the requests sent to it.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use understudy::core::{ReplayBody, ResponseBody};

/// One canned upstream answer: status, headers, body chunks.
#[derive(Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Vec<Bytes>,
}

impl Canned {
    pub fn new(status: u16, content_type: &'static str, body: &[u8]) -> Self {
        Self {
            status,
            headers: vec![("content-type", content_type)],
            body: vec![Bytes::copy_from_slice(body)],
        }
    }

    pub fn json(status: u16, body: &str) -> Self {
        Self::new(status, "application/json", body.as_bytes())
    }

    pub fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A loopback server answering every request with `canned`, counting them.
pub struct Upstream {
    pub addr: SocketAddr,
    hits: Arc<AtomicU32>,
}

impl Upstream {
    pub async fn start(canned: Canned) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU32::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let canned = canned.clone();
                let hits = counted.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let canned = canned.clone();
                        hits.fetch_add(1, Ordering::SeqCst);
                        async move {
                            // Read the request whole before answering.
                            let _ = request.into_body().collect().await;
                            let body: Bytes = canned.body.concat().into();
                            let mut response = Response::new(Full::new(body));
                            *response.status_mut() = StatusCode::from_u16(canned.status).unwrap();
                            for (name, value) in &canned.headers {
                                response.headers_mut().append(*name, value.parse().unwrap());
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, hits }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn hits(&self) -> u32 {
        self.hits.load(Ordering::SeqCst)
    }
}

pub fn request(stream: bool) -> Request<ReplayBody> {
    let body = format!(
        r#"{{"model":"chat","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(ReplayBody::from(body))
        .unwrap()
}

pub async fn text(response: Response<ResponseBody>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}
