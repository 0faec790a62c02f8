//! [`FirstChunk`]: the commit point. A response leaves a target only once it
//! is safe to release: a non-streaming body read whole, a stream once its
//! first content chunk arrived.

mod body;
mod error;
pub mod future;
mod probe;
mod strip;
mod usage;
mod whole;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response, header};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;
use understudy_core::events::{Event, SharedObserver, noop_observer};
use understudy_core::sse::{DEFAULT_MAX_EVENT_BYTES, SseDecoder};
use understudy_core::time::saturating_add;
use understudy_core::{
    BoxError, ClassifiedError, Classify, FailureKind, Operation, Outcome, ResponseBody,
    SharedClassifier, TargetName, UnaskedUsage,
};

use self::body::CommittedBody;
pub use self::error::{FirstChunkTimeout, StreamEndedEarly, StreamNotUtf8};
use self::error::{body_failure, broken};
use self::future::ResponseFuture;
use self::probe::{Verdict, judge};
use self::whole::read_whole;
use crate::resume::Resumable;

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
    max_event_bytes: usize,
    observer: SharedObserver,
    classifier: SharedClassifier,
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
                max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
                observer: noop_observer(),
                classifier: SharedClassifier::default(),
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

    /// The longest SSE line, and the most data of one event, read before
    /// the commit; more is a provider failure (`stream_broken`). Defaults
    /// to [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.config_mut().max_event_bytes = bytes;
        self
    }

    /// Receives `Event::FirstContent` when an attempt commits, and
    /// `Event::StreamBrokenAfterCommit`.
    pub fn observer(mut self, observer: SharedObserver) -> Self {
        self.config_mut().observer = observer;
        self
    }

    /// Reads error bodies and error events before the commit with
    /// `classifier` instead of
    /// [`LlmClassifier`](understudy_core::LlmClassifier); give the whole
    /// stack the same one.
    pub fn classifier(mut self, classifier: impl Classify) -> Self {
        self.config_mut().classifier = SharedClassifier::new(classifier);
        self
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }
}

impl From<Duration> for FirstChunkLayer {
    /// A layer with this first-chunk timeout.
    fn from(first_chunk_timeout: Duration) -> Self {
        Self::new(first_chunk_timeout)
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
///   [`max_body`](FirstChunkLayer::max_body)) and released as one frame. It
///   is an answer only when it is UTF-8 JSON, an object, has no top-level
///   `error`, and has an answer's shape: a `choices` array (chat
///   completions) or a `data` array (embeddings). A JSON error envelope
///   comes back with its classified [`Outcome`] in the response extensions,
///   which the classifier trusts; anything else (`{}`, `{"ok":true}`,
///   `{not json}`, HTML, bytes that are not UTF-8) with
///   `Failure(StreamBroken)`, and a 502 status.
/// - A `text/event-stream` response is released when an event carrying
///   content arrives (text, a tool call, a refusal or a finish reason; not a
///   role-only delta, `message_start`, `ping` or a comment), within the
///   first-chunk timeout counted from the request. An error event, a cut,
///   `[DONE]`, bytes that are not UTF-8 ([`StreamNotUtf8`]) or the end of
///   the stream before that is an error classified as
///   a provider failure, so retry and fallback still act; the timeout is a
///   [`FirstChunkTimeout`] error, classified as a timeout.
/// - At the commit (a stream's first content, or a whole body judged an
///   answer), `Event::FirstContent` is reported with the time since the
///   call, once per attempt; a failed attempt reports none.
/// - A served answer's `usage` (a whole body's; a stream's usage chunk,
///   reported when the stream ends) is reported as `Event::Usage`. A
///   stream whose response carries [`UnaskedUsage`] (the provider asked
///   for the usage on the caller's behalf) loses its usage chunk and every
///   `"usage": null` on the way to the caller, once read.
/// - After release, a stream that fails or stalls past the idle timeout
///   ends with an SSE `data:` error event in the OpenAI shape, and
///   `Event::StreamBrokenAfterCommit` is reported (health counts it). On a
///   route that resumes ([`FallbackBuilder::resume`](crate::FallbackBuilder::resume)),
///   a chat-shaped stream ends with an error instead, and the
///   [`Fallback`](crate::Fallback) above continues it on another target.
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
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let target = request.extensions().get::<TargetName>().cloned();
        let resumable = request.extensions().get::<Resumable>().is_some();
        let config = self.config.clone();
        let start = Instant::now();
        let deadline = saturating_add(start, config.first_chunk_timeout);
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await.map_err(Into::into)?;
            if !response.status().is_success() {
                return Ok(response.map(ResponseBody::new));
            }
            let response = if is_event_stream(response.headers()) {
                commit_stream(response, deadline, target.clone(), resumable, &config).await?
            } else {
                let (response, tokens) = read_whole(response, &config).await?;
                let outcome = config.classifier.classify_head(
                    response.status(),
                    response.headers(),
                    response.extensions(),
                );
                if outcome != Outcome::Success {
                    return Ok(response);
                }
                if let Some(tokens) = tokens {
                    usage::report(&config.observer, target.as_ref(), tokens);
                }
                response
            };
            report_first_content(target.as_ref(), start, &config);
            Ok(response)
        })
    }
}

/// Reports the commit of an attempt to the observer: its time to first
/// content, counted from the call.
fn report_first_content(target: Option<&TargetName>, start: Instant, config: &Config) {
    if let Some(target) = target {
        config.observer.on_event(&Event::FirstContent {
            provider: &target.provider,
            model: &target.model,
            elapsed: start.elapsed(),
        });
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
    resumable: bool,
    config: &Config,
) -> Result<Response<ResponseBody>, BoxError>
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, mut body) = response.into_parts();
    // Usage the caller did not ask for: read here, not passed on.
    let strip_usage = parts.extensions.remove::<UnaskedUsage>().is_some();
    let mut decoder = SseDecoder::with_max_event_bytes(config.max_event_bytes);
    let mut held = BytesMut::new();
    let mut utf8 = Utf8Prefix::default();
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
        if held.len().saturating_add(data.len()) > config.max_body {
            // Megabytes without content: not a stream worth waiting for.
            return Err(broken(StreamEndedEarly));
        }
        decoder.push(&data);
        held.extend_from_slice(&data);
        // An event stream is UTF-8: anything else before the commit is a
        // broken stream, caught while fallback can still act.
        if !utf8.check(&held) {
            return Err(broken(StreamNotUtf8));
        }
        // An event larger than the decoder holds: a provider failure.
        while let Some(event) = decoder.next_event().map_err(broken)? {
            match judge(&event, &parts.headers, &config.classifier) {
                Verdict::Preamble => {}
                Verdict::Failed(outcome) => {
                    return Err(ClassifiedError::new(outcome)
                        .with_source(StreamEndedEarly)
                        .into());
                }
                Verdict::Content => {
                    let operation = Operation::of(&parts.extensions);
                    let body = CommittedBody::new(
                        held.freeze(),
                        body,
                        config.idle_timeout,
                        target,
                        operation,
                        config.observer.clone(),
                        // Only streams in the chat shape are resumed.
                        resumable && operation == Operation::ChatCompletions,
                    );
                    let body = if strip_usage {
                        body.strip_usage()
                    } else {
                        body
                    };
                    return Ok(Response::from_parts(parts, ResponseBody::new(body)));
                }
            }
        }
    }
}

/// Checks, frame by frame, that the bytes held before the commit are
/// UTF-8, without checking any byte twice. A character split between two
/// frames is waited for, not refused.
#[derive(Debug, Default)]
struct Utf8Prefix {
    /// How many leading bytes are known to be whole, valid characters.
    valid: usize,
}

impl Utf8Prefix {
    /// Is `held` (the previous bytes and a new frame) UTF-8 so far, maybe
    /// ending inside a character?
    fn check(&mut self, held: &[u8]) -> bool {
        let Some(unchecked) = held.get(self.valid..) else {
            return false;
        };
        match std::str::from_utf8(unchecked) {
            Ok(_) => {
                self.valid = held.len();
                true
            }
            // Incomplete at the end: the rest comes with the next frame.
            Err(error) if error.error_len().is_none() => {
                self.valid = self.valid.saturating_add(error.valid_up_to());
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Prefix;

    #[test]
    fn utf8_is_checked_across_frames() {
        let mut prefix = Utf8Prefix::default();
        let text = "data: {\"choices\":[{\"delta\":{\"content\":\"é\"}}]}".as_bytes();
        let split = text.iter().position(|b| *b == 0xC3).unwrap() + 1;
        // A character cut in two by the frames is waited for.
        assert!(prefix.check(&text[..split]));
        assert!(prefix.check(text));
        let mut bad = text.to_vec();
        bad.extend_from_slice(b"\xff");
        assert!(!prefix.check(&bad));
        assert!(!Utf8Prefix::default().check(b"data: \xc3\x28"));
    }
}
