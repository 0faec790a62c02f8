//! [`FirstChunk`]: the commit point. A response leaves a target only once it
//! is safe to release: a non-streaming body read whole, a stream once its
//! first content chunk arrived.

mod body;
mod probe;

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;
use understudy_core::events::{SharedObserver, noop_observer};
use understudy_core::sse::SseDecoder;
use understudy_core::{
    BoxError, ClassifiedError, FailureKind, LlmClassifier, Outcome, ResponseBody, TargetName,
    cause_ref,
};

use self::body::CommittedBody;
use self::probe::{Verdict, judge};

/// The largest non-streaming body read by default: 32 MiB.
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;

/// Wraps a target's service with [`FirstChunk`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::{Request, Response};
/// use tower::{Layer, ServiceExt, service_fn};
/// use understudy_core::{BoxError, FailureKind, LlmClassifier, Classify, Outcome, ResponseBody};
/// use understudy_fallback::FirstChunkLayer;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // A 200 whose JSON body is an error envelope is a failure, caught before release.
/// let provider = service_fn(|_: Request<()>| async {
///     Ok::<_, BoxError>(Response::new(ResponseBody::from(r#"{"error":{"type":"server_error","message":"boom"}}"#)))
/// });
/// let guarded = FirstChunkLayer::new(Duration::from_secs(15)).layer(provider);
/// let response = guarded.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(LlmClassifier::new().classify_response(&response), Outcome::Failure(FailureKind::StreamBroken));
/// # }
/// ```
#[derive(Clone)]
pub struct FirstChunkLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    first_chunk_timeout: Duration,
    idle_timeout: Duration,
    max_body: usize,
    observer: SharedObserver,
}

impl FirstChunkLayer {
    /// Streams must deliver their first content chunk within
    /// `first_chunk_timeout` of the request being sent.
    pub fn new(first_chunk_timeout: Duration) -> Self {
        Self {
            config: Arc::new(Config {
                first_chunk_timeout,
                idle_timeout: first_chunk_timeout,
                max_body: DEFAULT_MAX_BODY,
                observer: noop_observer(),
            }),
        }
    }

    /// After the commit, a stream that sends nothing for this long is ended
    /// with an error event. Defaults to the first-chunk timeout.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().idle_timeout = timeout;
        self
    }

    /// The largest non-streaming body read before release, and the most a
    /// stream may send before its first content; more is a provider
    /// failure. Defaults to [`DEFAULT_MAX_BODY`].
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.config_mut().max_body = bytes;
        self
    }

    /// Receives `Event::StreamBrokenAfterCommit`.
    pub fn observer(mut self, observer: SharedObserver) -> Self {
        self.config_mut().observer = observer;
        self
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }
}

impl fmt::Debug for FirstChunkLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirstChunkLayer")
            .field("first_chunk_timeout", &self.config.first_chunk_timeout)
            .field("idle_timeout", &self.config.idle_timeout)
            .field("max_body", &self.config.max_body)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for FirstChunkLayer {
    type Service = FirstChunk<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FirstChunk {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Holds a target's successful response until it is safe to release.
///
/// - Non-2xx responses pass at once: they are already classified.
/// - A non-streaming 2xx body is read whole (up to
///   [`max_body`](FirstChunkLayer::max_body)) and released as one frame. A
///   body that is not JSON, or is a JSON error envelope, comes back with its
///   [`Outcome`] in the response extensions, which the classifier trusts.
/// - A `text/event-stream` response is released when an event carrying
///   content arrives (text, a tool call, a refusal or a finish reason; not a
///   role-only delta, `message_start`, `ping` or a comment), within the
///   first-chunk timeout counted from the request. An error event, a cut,
///   `[DONE]` or the end of the stream before that is an error classified as
///   a provider failure, so retry and fallback still act; the timeout is a
///   [`FirstChunkTimeout`] error, classified as a timeout.
/// - After release, a stream that fails or stalls past the idle timeout
///   ends with an SSE `data:` error event in the OpenAI shape, and
///   `Event::StreamBrokenAfterCommit` is reported (health counts it).
///
/// The inner service may answer any `Unpin` body of [`Bytes`]; responses
/// leave as [`ResponseBody`], boxed once.
#[derive(Clone)]
pub struct FirstChunk<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for FirstChunk<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirstChunk")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, B> Service<Request<ReqBody>> for FirstChunk<S>
where
    S: Service<Request<ReqBody>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let target = request.extensions().get::<TargetName>().cloned();
        let config = self.config.clone();
        let deadline = Instant::now() + config.first_chunk_timeout;
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await.map_err(Into::into)?;
            if !response.status().is_success() {
                return Ok(response.map(ResponseBody::new));
            }
            if is_event_stream(response.headers()) {
                commit_stream(response, deadline, target, &config).await
            } else {
                read_whole(response, config.max_body).await
            }
        })
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/event-stream"))
}

/// Waits for the first event with content, holding what came before it.
async fn commit_stream<B>(
    response: Response<B>,
    deadline: Instant,
    target: Option<TargetName>,
    config: &Config,
) -> Result<Response<ResponseBody>, BoxError>
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, mut body) = response.into_parts();
    let mut decoder = SseDecoder::new();
    let mut held = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(ClassifiedError::new(Outcome::Failure(FailureKind::Timeout))
                    .with_source(FirstChunkTimeout {
                        after: config.first_chunk_timeout,
                    })
                    .into());
            }
            Ok(None) => return Err(broken(StreamEndedEarly)),
            Ok(Some(Err(error))) => return Err(body_failure(error.into())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            // Trailers before any content: the stream is over.
            return Err(broken(StreamEndedEarly));
        };
        if held.len() + data.len() > config.max_body {
            // Megabytes without content: not a stream worth waiting for.
            return Err(broken(StreamEndedEarly));
        }
        decoder.push(&data);
        held.extend_from_slice(&data);
        // An event larger than the decoder holds: a provider failure.
        while let Some(event) = decoder.next_event().map_err(broken)? {
            match judge(&event, &parts.headers) {
                Verdict::Preamble => {}
                Verdict::Failed(outcome) => {
                    return Err(ClassifiedError::new(outcome)
                        .with_source(StreamEndedEarly)
                        .into());
                }
                Verdict::Content => {
                    let body = CommittedBody::new(
                        held.freeze(),
                        body,
                        config.idle_timeout,
                        target,
                        config.observer.clone(),
                    );
                    return Ok(Response::from_parts(parts, ResponseBody::new(body)));
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    error: Option<IgnoredAny>,
}

/// What a whole non-streaming body is.
#[derive(Debug, PartialEq, Eq)]
enum Whole {
    /// A JSON object without a top-level `error`.
    Answer,
    /// A JSON object with a top-level `error`.
    ErrorEnvelope,
    /// Not a JSON object.
    NotJson,
}

/// Judges a body cheaply on the hot path: an answer is an object, so it
/// must be delimited by braces; only a body that mentions `"error"` is
/// parsed, to tell an error envelope from an answer whose text holds the
/// word.
fn judge_whole(bytes: &[u8]) -> Whole {
    let trimmed = bytes.trim_ascii();
    if !(trimmed.starts_with(b"{") && trimmed.ends_with(b"}")) {
        return Whole::NotJson;
    }
    if !trimmed.windows(7).any(|window| window == b"\"error\"") {
        return Whole::Answer;
    }
    match serde_json::from_slice::<Envelope>(trimmed) {
        Ok(Envelope { error: None }) => Whole::Answer,
        Ok(Envelope { error: Some(_) }) => Whole::ErrorEnvelope,
        Err(_) => Whole::NotJson,
    }
}

/// Reads a non-streaming body whole and checks it is a JSON answer.
async fn read_whole<B>(
    response: Response<B>,
    max_body: usize,
) -> Result<Response<ResponseBody>, BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = response.into_parts();
    let bytes: Bytes = match Limited::new(body, max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return Err(body_failure(error)),
    };
    let outcome = match judge_whole(&bytes) {
        Whole::Answer => None,
        Whole::ErrorEnvelope => Some(
            match LlmClassifier::new().classify_parts(parts.status, &parts.headers, Some(&bytes)) {
                Outcome::Success => Outcome::Failure(FailureKind::StreamBroken),
                outcome => outcome,
            },
        ),
        Whole::NotJson => Some(Outcome::Failure(FailureKind::StreamBroken)),
    };
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, bytes.len().into());
    if let Some(outcome) = outcome {
        parts.extensions.insert(outcome);
        if outcome.is_provider_failure() {
            // Whatever the upstream said, this was no success.
            parts.status = StatusCode::BAD_GATEWAY;
        }
    }
    Ok(Response::from_parts(parts, ResponseBody::full(bytes)))
}

/// A body error before the commit point: the error's own classification
/// when it carries one (an Anthropic `error` event translated upstream),
/// otherwise a broken stream.
fn body_failure(error: BoxError) -> BoxError {
    let outcome = cause_ref::<ClassifiedError>(&*error).map_or(
        Outcome::Failure(FailureKind::StreamBroken),
        ClassifiedError::outcome,
    );
    ClassifiedError::new(outcome).with_source(error).into()
}

fn broken(source: impl Error + Send + Sync + 'static) -> BoxError {
    ClassifiedError::new(Outcome::Failure(FailureKind::StreamBroken))
        .with_source(source)
        .into()
}

/// A stream sent no content within the first-chunk timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstChunkTimeout {
    after: Duration,
}

impl FirstChunkTimeout {
    /// The timeout that passed.
    pub const fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for FirstChunkTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no content chunk within the first-chunk timeout of {} ms",
            self.after.as_millis()
        )
    }
}

impl Error for FirstChunkTimeout {}

/// A stream ended, failed or reported an error before any content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamEndedEarly;

impl fmt::Display for StreamEndedEarly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the stream ended before any content")
    }
}

impl Error for StreamEndedEarly {}

#[cfg(test)]
mod tests {
    use super::{Whole, judge_whole};

    #[test]
    fn whole_bodies_are_judged_by_shape_and_parsed_only_when_they_mention_error() {
        assert_eq!(judge_whole(br#" {"choices":[]} "#), Whole::Answer);
        assert_eq!(
            judge_whole(br#"{"choices":[{"message":{"content":"the \"error\" was mine"}}]}"#),
            Whole::Answer
        );
        assert_eq!(
            judge_whole(br#"{"error":{"message":"boom"}}"#),
            Whole::ErrorEnvelope
        );
        assert_eq!(judge_whole(b"<html>502</html>"), Whole::NotJson);
        assert_eq!(judge_whole(b""), Whole::NotJson);
        assert_eq!(judge_whole(br#"{"error": oops}"#), Whole::NotJson);
    }
}
