//! Answering one request: routing, the control endpoint, faults, and the
//! normal answers to chat and embeddings requests.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::Notify;

use crate::body::{MockBody, Pieces};
use crate::fault::{Fault, FaultPlan};
use crate::plan::Target;
use crate::server::{RecordedRequest, Shared};
use crate::stats::PathKind;
use crate::wire::{ChatCall, ChatRequest, EmbedCall, ErrorAnswer, Filtered};

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

/// What a request's path names.
enum Route {
    /// The control endpoint.
    Control(PathKind),
    /// The format's chat call.
    Chat(ChatCall),
    /// The format's embeddings call.
    Embed(EmbedCall),
    /// The format's models listing.
    Models,
    /// Nothing this mock serves.
    Other(PathKind),
}

impl Route {
    fn of(shared: &Shared, uri: &Uri) -> Self {
        let format = shared.wire.format();
        if let Some(kind) = PathKind::control(uri.path()) {
            Self::Control(kind)
        } else if let Some(call) = format.chat_call(uri) {
            Self::Chat(call)
        } else if let Some(call) = format.embed_call(uri) {
            Self::Embed(call)
        } else if format.is_models_path(uri) {
            Self::Models
        } else {
            Self::Other(PathKind::other(format, uri.path()))
        }
    }

    const fn kind(&self) -> PathKind {
        match self {
            Self::Control(kind) | Self::Other(kind) => *kind,
            Self::Chat(call) => call.kind,
            Self::Embed(call) => call.kind,
            Self::Models => PathKind::Models,
        }
    }
}

/// Answers one request on a connection; `kill` closes that connection.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    request: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    if request.uri().path() == LAST_REQUEST_PATH && request.method() == Method::GET {
        return Ok(last_request(&shared));
    }
    let route = Route::of(&shared, request.uri());
    shared.counters.count_path(route.kind());
    let response = match route {
        Route::Control(kind) => control(&shared, kind, request).await,
        Route::Models if request.method() == Method::GET => {
            match shared.wire.format().authorize(request.headers()) {
                Ok(()) => models(&shared, &kill).await,
                Err(answer) => reject_with(&shared, answer),
            }
        }
        Route::Chat(call) if request.method() == Method::POST => {
            shared.counters.chat_requests.fetch_add(1, Relaxed);
            chat(&shared, &kill, &call, request).await
        }
        Route::Embed(call) if request.method() == Method::POST => {
            shared.counters.embeddings_requests.fetch_add(1, Relaxed);
            embeddings(&shared, &kill, &call, request).await
        }
        Route::Chat(_) | Route::Embed(_) | Route::Models => reject(
            &shared,
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ),
        Route::Other(_) => reject(
            &shared,
            StatusCode::NOT_FOUND,
            shared.wire.not_found_message(),
        ),
    };
    Ok(response)
}

/// Reads a request's body and records the request; the answer to send
/// instead when the body cannot be read or the format lets the request
/// in (Bedrock's signature) no further.
async fn read_body(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<Bytes, Response<MockBody>> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
    else {
        return Err(reject(
            shared,
            StatusCode::BAD_REQUEST,
            "could not read the request body",
        ));
    };
    let authorized = shared.wire.format().authorize(&parts.headers);
    shared.record(RecordedRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body: body.clone(),
    });
    match authorized {
        Ok(()) => Ok(body),
        Err(answer) => Err(reject_with(shared, answer)),
    }
}

async fn chat(
    shared: &Shared,
    kill: &Notify,
    call: &ChatCall,
    request: Request<Incoming>,
) -> Response<MockBody> {
    let body = match read_body(shared, request).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    match shared.wire.format().read_request(call, &body) {
        Err(message) => reject(shared, StatusCode::BAD_REQUEST, &message),
        Ok(chat) => {
            let fault = shared.pick(Target::Chat);
            answer_chat(shared, kill, fault, &chat).await
        }
    }
}

async fn embeddings(
    shared: &Shared,
    kill: &Notify,
    call: &EmbedCall,
    request: Request<Incoming>,
) -> Response<MockBody> {
    let body = match read_body(shared, request).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    match shared.wire.format().read_embeddings(call, &body) {
        Err(message) => reject(shared, StatusCode::BAD_REQUEST, &message),
        Ok(embed) => {
            let fault = picked(shared, shared.pick(Target::Chat));
            // No provider's content filter refuses an input to embed: the
            // fault is answered as a 400.
            let filtered =
                || Filtered::Refused(shared.wire.fault_error(StatusCode::BAD_REQUEST, None));
            if let Some(answer) = fault_answer(shared, kill, fault, false, filtered).await {
                return answer;
            }
            whole(shared, fault, shared.wire.embeddings(&embed))
        }
    }
}

/// The fault picked for a request (`none` when no rule matched), counted
/// and logged.
fn picked(shared: &Shared, fault: Option<Fault>) -> Fault {
    let fault = fault.unwrap_or(Fault::None);
    if fault != Fault::None {
        shared.counters.faulted.fetch_add(1, Relaxed);
        tracing::debug!(mock = %wire_name(shared), %fault, "injecting fault");
    }
    fault
}

/// The answer `fault` gives in place of the content, if it gives one;
/// waits first for a delay. `filtered` is the content filter's answer.
async fn fault_answer(
    shared: &Shared,
    kill: &Notify,
    fault: Fault,
    stream: bool,
    filtered: impl FnOnce() -> Filtered,
) -> Option<Response<MockBody>> {
    let wire = &shared.wire;
    match fault {
        Fault::Status(_) | Fault::RateLimit(_) | Fault::Reset | Fault::Hang | Fault::Refuse => {
            Some(fail(shared, kill, fault).await)
        }
        Fault::Delay(wait) => {
            tokio::time::sleep(wait).await;
            None
        }
        Fault::FirstChunkDelay(wait) if !stream => {
            tokio::time::sleep(wait).await;
            None
        }
        Fault::Garbage => {
            let content_type = if stream {
                wire.stream_content_type()
            } else {
                JSON
            };
            Some(respond(
                shared,
                StatusCode::OK,
                content_type,
                MockBody::full(wire.garbage(stream)),
            ))
        }
        Fault::ErrorEvent if stream => Some(stream_response(
            shared,
            Pieces::new(vec![wire.error_event()]).counted_in(&shared.counters),
        )),
        Fault::ContentFilter => Some(match filtered() {
            Filtered::Refused(answer) => error_response(shared, answer),
            Filtered::Full(body) => respond(shared, StatusCode::OK, JSON, MockBody::full(body)),
            Filtered::Stream(events) => {
                stream_response(shared, Pieces::new(events).counted_in(&shared.counters))
            }
        }),
        Fault::ErrorEvent => {
            let answer = wire.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded (injected error in a 200 body)",
            );
            Some(respond(
                shared,
                StatusCode::OK,
                JSON,
                MockBody::full(answer.body),
            ))
        }
        _ => None,
    }
}

async fn answer_chat(
    shared: &Shared,
    kill: &Notify,
    fault: Option<Fault>,
    chat: &ChatRequest,
) -> Response<MockBody> {
    let wire = &shared.wire;
    let stream = chat.stream;
    let fault = picked(shared, fault);
    if let Some(answer) =
        fault_answer(shared, kill, fault, stream, || wire.content_filter(chat)).await
    {
        return answer;
    }
    if stream {
        let mut events = wire.stream(chat);
        let content_at = |n: usize| wire.content_offset().saturating_add(n);
        if let Fault::ErrorEventAfterChunks(n) = fault {
            events.truncate(content_at(n));
            events.push(wire.error_event());
        }
        let mut pieces = Pieces::new(events);
        match fault {
            Fault::FirstChunkDelay(wait) => pieces = pieces.first_delay(wait),
            Fault::Drip(wait) => pieces = pieces.every_delay(wait),
            Fault::DropAfter(n) => pieces = pieces.cut_after(n),
            Fault::CutAfterChunks(n) => pieces = pieces.cut_after(content_at(n)),
            Fault::StallAfterChunks(n, wait) => pieces = pieces.stall_before(content_at(n), wait),
            _ => {}
        }
        if !matches!(
            fault,
            Fault::DropAfter(_) | Fault::CutAfterChunks(_) | Fault::ErrorEventAfterChunks(_)
        ) {
            shared.counters.served_ok.fetch_add(1, Relaxed);
        }
        return stream_response(shared, pieces.counted_in(&shared.counters));
    }
    whole(shared, fault, wire.full(chat))
}

/// A non-streaming answer with `body`, dripped or cut as `fault` says.
fn whole(shared: &Shared, fault: Fault, body: Bytes) -> Response<MockBody> {
    match fault {
        Fault::Drip(wait) => {
            shared.counters.served_ok.fetch_add(1, Relaxed);
            paced_full(shared, &body, |p, _| p.every_delay(wait))
        }
        Fault::DropAfter(n) => paced_full(shared, &body, |p, count| {
            p.cut_after(n.min(count.saturating_sub(1)))
        }),
        _ => {
            shared.counters.served_ok.fetch_add(1, Relaxed);
            respond(shared, StatusCode::OK, JSON, MockBody::full(body))
        }
    }
}

/// A non-streaming answer sent in pieces, with its full length announced.
fn paced_full(
    shared: &Shared,
    body: &Bytes,
    pace: impl FnOnce(Pieces, usize) -> Pieces,
) -> Response<MockBody> {
    let items = shared.wire.split(body);
    let length = body.len();
    let count = items.len();
    let mut response = respond(
        shared,
        StatusCode::OK,
        JSON,
        MockBody::pieces(pace(Pieces::new(items), count)),
    );
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// The answers of the faults that make a provider look down.
async fn fail(shared: &Shared, kill: &Notify, fault: Fault) -> Response<MockBody> {
    match fault {
        Fault::Reset | Fault::Refuse => {
            kill.notify_one();
            std::future::pending().await
        }
        Fault::Hang => std::future::pending().await,
        Fault::RateLimit(wait) => {
            let answer = shared
                .wire
                .fault_error(StatusCode::TOO_MANY_REQUESTS, Some(wait));
            error_response(shared, answer)
        }
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error_response(shared, shared.wire.fault_error(status, None))
        }
        _ => respond(shared, StatusCode::OK, JSON, MockBody::full(Bytes::new())),
    }
}

async fn models(shared: &Shared, kill: &Notify) -> Response<MockBody> {
    match shared.pick(Target::Models) {
        Some(fault) if fault != Fault::None => {
            shared.counters.faulted.fetch_add(1, Relaxed);
            fail(shared, kill, fault).await
        }
        _ => {
            shared.counters.served_ok.fetch_add(1, Relaxed);
            respond(
                shared,
                StatusCode::OK,
                JSON,
                MockBody::full(shared.wire.models()),
            )
        }
    }
}

async fn control(
    shared: &Shared,
    kind: PathKind,
    request: Request<Incoming>,
) -> Response<MockBody> {
    let method = request.method().clone();
    match (kind, method) {
        (PathKind::ControlStats, Method::GET) => {
            json_response(&shared.counters.snapshot(shared.wire.format()))
        }
        (PathKind::ControlFaults, Method::GET) => json_response(&shared.faults()),
        (PathKind::ControlFaults, Method::DELETE) => {
            shared.set_faults(FaultPlan::none());
            json_response(&FaultPlan::none())
        }
        (PathKind::ControlFaults, Method::POST | Method::PUT) => {
            let Ok(body) = request
                .into_body()
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
            else {
                return control_error(StatusCode::BAD_REQUEST, "could not read the request body");
            };
            match serde_json::from_slice::<FaultPlan>(&body) {
                Ok(plan) => {
                    shared.set_faults(plan.clone());
                    json_response(&plan)
                }
                Err(error) => control_error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid fault plan: {error}"),
                ),
            }
        }
        _ => control_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

/// The control path that shows the last chat or embeddings request.
const LAST_REQUEST_PATH: &str = "/__mock/last-request";

/// `GET /__mock/last-request`: the last chat or embeddings request's
/// method, path and body (as JSON when it is JSON), or `null`.
fn last_request(shared: &Shared) -> Response<MockBody> {
    let last = shared.last_request().map(|request| {
        serde_json::json!({
            "method": request.method.as_str(),
            "path": request.path,
            "body": request
                .json()
                .unwrap_or_else(|| String::from_utf8_lossy(&request.body).into_owned().into()),
        })
    });
    json_response(&last)
}

fn json_response(value: &impl serde::Serialize) -> Response<MockBody> {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = Response::new(MockBody::full(body));
            response.headers_mut().insert(CONTENT_TYPE, JSON);
            response
        }
        Err(error) => control_error(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

fn control_error(status: StatusCode, message: &str) -> Response<MockBody> {
    let error = understudy_core::OpenAiError::new(status, "invalid_request_error", message);
    let mut response = Response::new(MockBody::full(error.to_json()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

/// A request the mock turns down as the provider would.
fn reject(shared: &Shared, status: StatusCode, message: &str) -> Response<MockBody> {
    reject_with(shared, shared.wire.error(status, message))
}

/// A request turned down with `answer`.
fn reject_with(shared: &Shared, answer: ErrorAnswer) -> Response<MockBody> {
    shared.counters.rejected.fetch_add(1, Relaxed);
    error_response(shared, answer)
}

/// An error answer with its status and headers.
fn error_response(shared: &Shared, answer: ErrorAnswer) -> Response<MockBody> {
    let mut response = respond(shared, answer.status, JSON, MockBody::full(answer.body));
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        headers.insert(name, value);
    }
    response
}

fn stream_response(shared: &Shared, pieces: Pieces) -> Response<MockBody> {
    let mut response = respond(
        shared,
        StatusCode::OK,
        shared.wire.stream_content_type(),
        MockBody::pieces(pieces),
    );
    response.headers_mut().insert(CACHE_CONTROL, NO_CACHE);
    response
}

fn respond(
    shared: &Shared,
    status: StatusCode,
    content_type: HeaderValue,
    body: MockBody,
) -> Response<MockBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert("x-mock-name", shared.wire.name_header().clone());
    for &(name, value) in shared.wire.common_headers() {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

fn wire_name(shared: &Shared) -> &str {
    shared.wire.name_header().to_str().unwrap_or("mock")
}
