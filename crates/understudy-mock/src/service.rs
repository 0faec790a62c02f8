//! Answering one request: routing, the control endpoint, faults, and the
//! normal answers.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::sync::Notify;

use crate::body::{MockBody, Pieces};
use crate::fault::{Fault, FaultPlan};
use crate::plan::Target;
use crate::server::{RecordedRequest, Shared};
use crate::stats::PathKind;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

/// The fields of a chat request the mock reads; the rest must be valid JSON
/// and is ignored.
#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[allow(dead_code)]
    messages: Vec<IgnoredAny>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Answers one request on a connection; `kill` closes that connection.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    request: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let kind = PathKind::of(request.uri().path());
    shared.counters.count_path(kind);
    let format = shared.wire.format();
    let response = match kind {
        PathKind::ControlFaults | PathKind::ControlStats => control(&shared, kind, request).await,
        PathKind::Models if request.method() == Method::GET => models(&shared, &kill).await,
        PathKind::ChatCompletions | PathKind::Messages
            if request.uri().path() == format.chat_path() =>
        {
            if request.method() == Method::POST {
                shared.counters.chat_requests.fetch_add(1, Relaxed);
                chat(&shared, &kill, request).await
            } else {
                reject(
                    &shared,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed",
                )
            }
        }
        PathKind::Models => reject(
            &shared,
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ),
        _ => reject(&shared, StatusCode::NOT_FOUND, "no such path on this mock"),
    };
    Ok(response)
}

async fn chat(shared: &Shared, kill: &Notify, request: Request<Incoming>) -> Response<MockBody> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
    else {
        return reject(
            shared,
            StatusCode::BAD_REQUEST,
            "could not read the request body",
        );
    };
    shared.record(RecordedRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body: body.clone(),
    });
    let parsed = serde_json::from_slice::<ChatRequest<'_>>(&body);
    let (model, stream, include_usage) = match &parsed {
        Ok(chat) => (
            chat.model.as_ref(),
            chat.stream,
            chat.stream_options
                .as_ref()
                .is_some_and(|o| o.include_usage),
        ),
        Err(_) => ("", false, false),
    };
    let answer = match &parsed {
        Ok(_) => Ok(shared.pick(Target::Chat)),
        Err(error) => Err(format!("invalid request body: {error}")),
    };
    match answer {
        Err(message) => reject(shared, StatusCode::BAD_REQUEST, &message),
        Ok(fault) => answer_chat(shared, kill, fault, model, stream, include_usage).await,
    }
}

async fn answer_chat(
    shared: &Shared,
    kill: &Notify,
    fault: Option<Fault>,
    model: &str,
    stream: bool,
    include_usage: bool,
) -> Response<MockBody> {
    let wire = &shared.wire;
    let fault = fault.unwrap_or(Fault::None);
    if fault != Fault::None {
        shared.counters.faulted.fetch_add(1, Relaxed);
        tracing::debug!(mock = %wire_name(shared), %fault, "injecting fault");
    }
    match fault {
        Fault::Status(_) | Fault::RateLimit(_) | Fault::Reset | Fault::Hang | Fault::Refuse => {
            return fail(shared, kill, fault).await;
        }
        Fault::Delay(wait) => tokio::time::sleep(wait).await,
        Fault::FirstChunkDelay(wait) if !stream => tokio::time::sleep(wait).await,
        Fault::Garbage => {
            let content_type = if stream { EVENT_STREAM } else { JSON };
            return respond(
                shared,
                StatusCode::OK,
                content_type,
                MockBody::full(wire.garbage()),
            );
        }
        Fault::ErrorEvent if stream => {
            return stream_response(
                shared,
                Pieces::new(vec![wire.error_event()]).counted_in(&shared.counters),
            );
        }
        Fault::ErrorEvent => {
            let body = wire.error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded (injected error in a 200 body)",
            );
            return respond(shared, StatusCode::OK, JSON, MockBody::full(body));
        }
        _ => {}
    }
    if stream {
        let mut pieces = Pieces::new(wire.stream(model, include_usage));
        match fault {
            Fault::FirstChunkDelay(wait) => pieces = pieces.first_delay(wait),
            Fault::Drip(wait) => pieces = pieces.every_delay(wait),
            Fault::DropAfter(n) => pieces = pieces.cut_after(n),
            _ => {}
        }
        if !matches!(fault, Fault::DropAfter(_)) {
            shared.counters.served_ok.fetch_add(1, Relaxed);
        }
        return stream_response(shared, pieces.counted_in(&shared.counters));
    }
    match fault {
        Fault::Drip(wait) => {
            shared.counters.served_ok.fetch_add(1, Relaxed);
            paced_full(shared, model, |p, _| p.every_delay(wait))
        }
        Fault::DropAfter(n) => paced_full(shared, model, |p, count| {
            p.cut_after(n.min(count.saturating_sub(1)))
        }),
        _ => {
            shared.counters.served_ok.fetch_add(1, Relaxed);
            respond(
                shared,
                StatusCode::OK,
                JSON,
                MockBody::full(wire.full(model)),
            )
        }
    }
}

/// A non-streaming answer sent in pieces, with its full length announced.
fn paced_full(
    shared: &Shared,
    model: &str,
    pace: impl FnOnce(Pieces, usize) -> Pieces,
) -> Response<MockBody> {
    let items = shared.wire.split_full(model);
    let length: usize = items.iter().map(Bytes::len).sum();
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
            let status = StatusCode::TOO_MANY_REQUESTS;
            let body = shared.wire.fault_error(status);
            let mut response = respond(shared, status, JSON, MockBody::full(body));
            let headers = response.headers_mut();
            headers.insert(RETRY_AFTER, HeaderValue::from(wait.as_secs()));
            headers.insert(
                "retry-after-ms",
                HeaderValue::from(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            );
            response
        }
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = shared.wire.fault_error(status);
            respond(shared, status, JSON, MockBody::full(body))
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
        (PathKind::ControlStats, Method::GET) => json_response(&shared.counters.snapshot()),
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
    shared.counters.rejected.fetch_add(1, Relaxed);
    let body = shared.wire.error_body(status, message);
    respond(shared, status, JSON, MockBody::full(body))
}

fn stream_response(shared: &Shared, pieces: Pieces) -> Response<MockBody> {
    let mut response = respond(
        shared,
        StatusCode::OK,
        EVENT_STREAM,
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
    response
}

fn wire_name(shared: &Shared) -> &str {
    shared.wire.name_header().to_str().unwrap_or("mock")
}
