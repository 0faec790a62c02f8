//! A provider whose API the crate has never heard of, spoken through a
//! `Dialect` defined here and nowhere else: the trait is enough to put any
//! API behind a failover route.
//!
//! The toy API: `POST {base}/ask` with the key in `x-toy-key` and
//! `{"ask": "<the last user message>", "engine": "<model>"}`; it answers
//! `{"said": "…"}`, always whole, streams included, and errors as
//! `{"problem": "…"}` with a status. It stands behind an OpenAI-compatible
//! primary that answers 503.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::ServiceExt;
use understudy::core::{
    BoxError, ClassifiedError, ClientErrorKind, FailureKind, OpenAiError, Outcome, ReplayBody,
    ResponseBody, TargetName,
};
use understudy::fallback::{Fallback, Target};
use understudy::provider::dialect::error_shape;
use understudy::provider::{
    AnswerContext, ApiKey, ClientConfig, ConfigError, Dialect, HttpClient, Operation,
    ProviderError, ProviderService, ShapedError, UpstreamRequest,
};
use understudy::stack::{TargetService, TargetStack};
use understudy_mock::{FaultRule, MockConfig, MockProvider};

/// No test waits longer than this for anything.
const PATIENCE: Duration = Duration::from_secs(10);

// ===== the dialect =====

/// The toy API, as a dialect.
struct Toy;

impl Dialect for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn endpoint(&self, operation: Operation, _model: &str, _stream: bool) -> Option<Cow<'_, str>> {
        match operation {
            Operation::ChatCompletions => Some(Cow::Borrowed("ask")),
            _ => None,
        }
    }

    fn auth_headers(&self, key: &ApiKey) -> Result<HeaderMap, ConfigError> {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::try_from(key.expose()).map_err(|_| ConfigError::InvalidApiKey)?;
        headers.insert("x-toy-key", value);
        Ok(headers)
    }

    fn translate_request(
        &self,
        _operation: Operation,
        body: &[u8],
        model: &str,
    ) -> Result<UpstreamRequest, ProviderError> {
        let request: Value = serde_json::from_slice(body)
            .map_err(|_| ProviderError::invalid_request("the body is not JSON"))?;
        let ask = request["messages"]
            .as_array()
            .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|message| message["content"].as_str())
            .ok_or_else(|| {
                ProviderError::invalid_request("`messages` must hold a user message of text")
            })?;
        let body = Bytes::from(json!({ "ask": ask, "engine": model }).to_string());
        Ok(if request["stream"] == true {
            UpstreamRequest::stream(body, false)
        } else {
            UpstreamRequest::whole(body)
        })
    }

    fn translate_response(
        &self,
        body: Bytes,
        context: &AnswerContext,
    ) -> Result<Bytes, ProviderError> {
        let said = said(&body)?;
        let completion = json!({
            "id": "toy-1",
            "object": "chat.completion",
            "created": 0,
            "model": &*context.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": said },
                "finish_reason": "stop",
            }],
        });
        Ok(Bytes::from(completion.to_string()))
    }

    fn translate_stream(&self, body: ResponseBody, context: &AnswerContext) -> ResponseBody {
        ResponseBody::new(SaidAsEvents {
            upstream: body,
            read: BytesMut::new(),
            limit: context.max_event_bytes,
            model: context.model.clone(),
            done: false,
        })
    }

    fn shape_error(
        &self,
        status: StatusCode,
        _headers: &HeaderMap,
        outcome: Outcome,
        body: &[u8],
    ) -> ShapedError {
        let problem = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|json| json["problem"].as_str().map(str::to_owned))
            .unwrap_or_else(|| error_shape::fallback_message(status, body));
        let error = OpenAiError::new(status, error_shape::default_error_type(outcome), problem);
        ShapedError::Rewritten(error_shape::with_outcome_code(error, outcome))
    }

    fn classify_hint(&self, status: StatusCode, _: &HeaderMap, body: &[u8]) -> Option<Outcome> {
        let json: Value = serde_json::from_slice(body).ok()?;
        let too_long = json["problem"].as_str()?.contains("too long");
        (status == StatusCode::BAD_REQUEST && too_long)
            .then_some(Outcome::ClientError(ClientErrorKind::ContextLengthExceeded))
    }
}

/// The text of a `{"said": …}` body.
fn said(body: &[u8]) -> Result<String, ProviderError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|json| json["said"].as_str().map(str::to_owned))
        .ok_or_else(|| ProviderError::invalid_response("no `said`"))
}

/// The toy's whole answer, read to its end, as OpenAI SSE: one content
/// chunk, a finishing chunk, `[DONE]`.
struct SaidAsEvents {
    upstream: ResponseBody,
    read: BytesMut,
    limit: usize,
    model: Arc<str>,
    done: bool,
}

impl SaidAsEvents {
    fn events(&self) -> Result<Bytes, BoxError> {
        let said = said(&self.read).map_err(|e| {
            ClassifiedError::new(Outcome::Failure(FailureKind::StreamBroken)).with_source(e)
        })?;
        let chunk = |delta: Value, finish: Value| {
            let chunk = json!({
                "id": "toy-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": &*self.model,
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
            });
            format!("data: {chunk}\n\n")
        };
        let events = chunk(json!({ "role": "assistant", "content": said }), Value::Null)
            + &chunk(json!({}), json!("stop"))
            + "data: [DONE]\n\n";
        Ok(Bytes::from(events))
    }
}

impl Body for SaidAsEvents {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        while !this.done {
            match ready!(Pin::new(&mut this.upstream).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if this.read.len().saturating_add(data.len()) > this.limit {
                            this.done = true;
                            let broken =
                                ClassifiedError::new(Outcome::Failure(FailureKind::StreamBroken));
                            return Poll::Ready(Some(Err(broken.into())));
                        }
                        this.read.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(error)));
                }
                None => {
                    this.done = true;
                    return Poll::Ready(Some(this.events().map(Frame::data)));
                }
            }
        }
        Poll::Ready(None)
    }
}

// ===== the toy server =====

/// What the toy server was sent.
struct Asked {
    path: String,
    headers: HeaderMap,
    body: Value,
}

/// The toy provider on a loopback socket: answers `{"said": "You asked: …"}`,
/// or, when the question holds `fail with <status>`, that status and a
/// `{"problem": …}` body.
struct ToyServer {
    addr: SocketAddr,
    asked: mpsc::UnboundedReceiver<Asked>,
}

impl ToyServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, asked) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let body: Value = serde_json::from_slice(&body).unwrap();
                            let answer = toy_answer(&body);
                            let _ = tx.send(Asked {
                                path: parts.uri.path().to_owned(),
                                headers: parts.headers,
                                body,
                            });
                            Ok::<_, Infallible>(answer)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, asked }
    }

    fn base_url(&self) -> String {
        format!("http://{}/toy", self.addr)
    }

    async fn asked(&mut self) -> Asked {
        within(self.asked.recv())
            .await
            .expect("the toy server stopped")
    }
}

fn toy_answer(body: &Value) -> Response<Full<Bytes>> {
    let ask = body["ask"].as_str().unwrap_or_default();
    let (status, json) = match ask.strip_prefix("fail with ") {
        Some(failure) => {
            let (code, problem) = failure.split_once(": ").unwrap();
            (code.parse().unwrap(), json!({ "problem": problem }))
        }
        None => (200, json!({ "said": format!("You asked: {ask}") })),
    };
    let mut response = Response::new(Full::new(Bytes::from(json.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

// ===== the route =====

async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("nothing happened in time")
}

fn client() -> HttpClient {
    HttpClient::new(ClientConfig::default()).unwrap()
}

fn toy_service(toy: &ToyServer) -> ProviderService {
    ProviderService::with_dialect(
        client(),
        Arc::new(Toy),
        &toy.base_url(),
        Some(ApiKey::new("toy-secret")),
        "toy-engine",
    )
    .unwrap()
}

/// One target: the commit point, then the provider.
fn target(name: &'static str, provider: ProviderService) -> Target<TargetService> {
    let model = provider.model().to_owned();
    TargetStack::new(name, model, provider)
        .first_chunk(PATIENCE)
        .build()
}

/// An OpenAI-compatible primary that answers 503, then the toy.
async fn route(toy: &ToyServer) -> (Fallback<TargetService>, MockProvider) {
    let primary = MockProvider::start(MockConfig::openai().name("primary"))
        .await
        .unwrap();
    primary.set_fault("status:503".parse::<FaultRule>().unwrap());
    let openai = ProviderService::openai(
        client(),
        &primary.base_url(),
        Some(ApiKey::new("sk-primary")),
        "gpt-4o-mini",
    )
    .unwrap();
    let fallback = Fallback::builder()
        .target(target("primary", openai))
        .target(target("toy", toy_service(toy)))
        .build();
    (fallback, primary)
}

fn chat(stream: bool) -> Request<ReplayBody> {
    let body = json!({
        "model": "chat",
        "stream": stream,
        "messages": [
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": "hi" },
        ],
    });
    Request::post("/v1/chat/completions")
        .header("authorization", "Bearer caller-key")
        .body(ReplayBody::from(body.to_string()))
        .unwrap()
}

async fn text(response: Response<ResponseBody>) -> String {
    let bytes = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn served_by(response: &Response<ResponseBody>) -> Option<&str> {
    response
        .extensions()
        .get::<TargetName>()
        .map(|target| target.provider.as_ref())
}

// ===== tests =====

#[tokio::test]
async fn the_toy_answers_when_the_primary_fails() {
    let mut toy = ToyServer::start().await;
    let (fallback, primary) = route(&toy).await;

    let response = within(fallback.oneshot(chat(false))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(served_by(&response), Some("toy"));
    assert_eq!(response.headers()["x-understudy-attempts"], "2");
    assert_eq!(response.headers()["content-type"], "application/json");
    let completion: Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "toy-engine");
    assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "You asked: hi"
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");

    // The primary was asked once; the toy got its own shape and its own key.
    assert_eq!(primary.stats().faulted, 1);
    let asked = toy.asked().await;
    assert_eq!(asked.path, "/toy/ask");
    assert_eq!(asked.body, json!({ "ask": "hi", "engine": "toy-engine" }));
    assert_eq!(asked.headers["x-toy-key"], "toy-secret");
    assert!(asked.headers.get("authorization").is_none());
    primary.shutdown().await;
}

#[tokio::test]
async fn the_toy_streams_openai_chunks_when_the_primary_fails() {
    let mut toy = ToyServer::start().await;
    let (fallback, primary) = route(&toy).await;

    let response = within(fallback.oneshot(chat(true))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(served_by(&response), Some("toy"));
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = text(response).await;
    let events: Vec<&str> = body
        .split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| event.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{body}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|chunk| chunk["object"] == "chat.completion.chunk")
    );
    let content: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "You asked: hi");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );

    assert_eq!(primary.stats().faulted, 1);
    assert_eq!(toy.asked().await.body["ask"], "hi");
    primary.shutdown().await;
}

#[tokio::test]
async fn toy_errors_reach_the_caller_in_the_openai_shape() {
    let mut toy = ToyServer::start().await;
    let service = toy_service(&toy);
    let ask = |question: &str| {
        let body = json!({ "messages": [{ "role": "user", "content": question }] });
        Request::post("/v1/chat/completions")
            .body(ReplayBody::from(body.to_string()))
            .unwrap()
    };

    // Classified by the dialect's hint, shaped by the dialect.
    let response = within(
        service
            .clone()
            .oneshot(ask("fail with 400: the question is too long")),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::ClientError(
            ClientErrorKind::ContextLengthExceeded
        ))
    );
    assert_eq!(response.headers()["content-type"], "application/json");
    let error: Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(
        error,
        json!({ "error": {
            "message": "the question is too long",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }})
    );

    // Classified by the status, shaped by the dialect.
    let response = within(service.clone().oneshot(ask("fail with 503: busy")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.extensions().get::<Outcome>(),
        Some(&Outcome::Failure(FailureKind::Overloaded))
    );
    let error: Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(error["error"]["message"], "busy");
    assert_eq!(error["error"]["type"], "overloaded_error");
    assert_eq!(error["error"]["code"], "overloaded");
    assert_eq!(
        toy.asked().await.body["ask"],
        "fail with 400: the question is too long"
    );
    assert_eq!(toy.asked().await.body["ask"], "fail with 503: busy");

    // A request the dialect cannot translate is the caller's 400, and is
    // not sent.
    let response = within(
        service.oneshot(
            Request::post("/v1/chat/completions")
                .body(ReplayBody::from(r#"{"messages":[]}"#))
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(
        error["error"]["message"],
        "`messages` must hold a user message of text"
    );
    assert!(toy.asked.try_recv().is_err());
}
