//! [`Continuer`]: asks a route's remaining targets, one by one, to continue
//! a broken stream.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Request, Response, header};
use tower_service::Service;
use understudy_core::{
    AttemptCounter, Availability, BoxError, Operation, ReplayBody, ResponseBody, RouteName,
};

use super::body::{Continuation, Resume, ResumeBody, Resumed};
use super::prefill::{Prefill, continuation_body};
use crate::service::{Shared, Step, attempt, in_flight};

/// The targets after the one that served, in route order; each is asked at
/// most once.
pub(crate) struct Continuer<S> {
    shared: Arc<Shared<S>>,
    parts: http::request::Parts,
    original: ReplayBody,
    counter: AttemptCounter,
    remaining: Arc<Mutex<VecDeque<usize>>>,
}

impl<S> Continuer<S> {
    pub(crate) fn new(
        shared: Arc<Shared<S>>,
        parts: &http::request::Parts,
        original: &ReplayBody,
        counter: &AttemptCounter,
        after: usize,
    ) -> Self {
        let mut parts = parts.clone();
        parts.headers.remove(header::CONTENT_LENGTH);
        let remaining = Arc::new(Mutex::new(
            (after.saturating_add(1)..shared.targets.len()).collect(),
        ));
        Self {
            shared,
            parts,
            original: original.clone(),
            counter: counter.clone(),
            remaining,
        }
    }
}

impl<S> Resume for Continuer<S>
where
    S: Service<Request<ReplayBody>, Response = Response<ResponseBody>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    fn next(&mut self, prefix: &str) -> Continuation {
        let shared = self.shared.clone();
        let parts = self.parts.clone();
        let original = self.original.clone().into_bytes();
        let counter = self.counter.clone();
        let remaining = self.remaining.clone();
        let prefix = prefix.to_owned();
        Box::pin(async move {
            loop {
                let i = match remaining.lock() {
                    Ok(mut queue) => queue.pop_front()?,
                    Err(poisoned) => poisoned.into_inner().pop_front()?,
                };
                let Some(target) = shared.targets.get(i) else {
                    continue;
                };
                if let Availability::Unavailable { .. } =
                    shared.availability.availability(target.provider())
                {
                    continue;
                }
                let prefill = target.prefill_form();
                let body = ReplayBody::from(continuation_body(&original, &prefix, prefill)?);
                let step = attempt(
                    &shared,
                    target,
                    in_flight(&shared, i),
                    Cow::Borrowed(&parts),
                    &body,
                    &counter,
                    false,
                )
                .await;
                if let Step::Serve(response) = step
                    && continues(&response)
                {
                    // What a native prefill trimmed may come first.
                    let trimmed = match prefill {
                        Prefill::Native => prefix
                            .get(prefix.trim_end().len()..)
                            .unwrap_or_default()
                            .to_owned(),
                        _ => String::new(),
                    };
                    return Some(Resumed {
                        response,
                        target: target.name().clone(),
                        strip: vec![prefix, trimmed],
                    });
                }
            }
        })
    }
}

/// The served `response` of target `i`, wrapped to resume when the route
/// resumes and the response is a chat-shaped stream.
pub(crate) fn resumable<S>(
    shared: &Arc<Shared<S>>,
    i: usize,
    response: Response<ResponseBody>,
    parts: &http::request::Parts,
    body: &ReplayBody,
    counter: &AttemptCounter,
) -> Response<ResponseBody>
where
    S: Service<Request<ReplayBody>, Response = Response<ResponseBody>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let Some(settings) = shared.resume else {
        return response;
    };
    let Some(target) = shared.targets.get(i) else {
        return response;
    };
    if !continues(&response) {
        return response;
    }
    let include_usage = serde_json::from_slice::<serde_json::Value>(&body.clone().into_bytes())
        .ok()
        .and_then(|request| request.pointer("/stream_options/include_usage")?.as_bool())
        .unwrap_or(false);
    let continuer = Continuer::new(shared.clone(), parts, body, counter, i);
    let route = parts.extensions.get::<RouteName>().cloned();
    let from = target.name().clone();
    let observer = shared.observer.clone();
    response.map(|inner| {
        ResponseBody::new(ResumeBody::new(
            inner,
            from,
            include_usage,
            Box::new(continuer),
            settings.max_resume_bytes,
            route,
            observer,
            settings.max_event_bytes,
        ))
    })
}

/// Is this answer a chat-shaped stream that committed?
fn continues(response: &Response<ResponseBody>) -> bool {
    response.status().is_success()
        && Operation::of(response.extensions()) == Operation::ChatCompletions
        && is_event_stream(response.headers())
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/event-stream"))
}
