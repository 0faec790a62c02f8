//! [`MessagesLayer`]: Anthropic's Messages API served by a chat stack.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use serde::Deserialize;
use tower_layer::Layer;
use tower_service::Service;
use understudy_core::sse::DEFAULT_MAX_EVENT_BYTES;
use understudy_core::{Classify, Operation, ReplayBody, ResponseBody, SharedClassifier};

use super::answer::Convert;

/// The most bytes of a whole answer converted, by default (64 MiB).
const DEFAULT_MAX_BODY: usize = 64 * 1024 * 1024;

/// Serves `POST /v1/messages` with the same stack as chat completions: the
/// same routes, fallback, retry, health, commit point and telemetry.
///
/// The layer marks each request [`Operation::Messages`]. Each provider then
/// serves it as its API allows: an Anthropic provider gets the caller's
/// body as it is (only `model` changes) and answers natively; every other
/// provider gets it converted to a chat completion
/// ([`to_chat`](super::to_chat)). On the way back the layer turns what the
/// stack answers into the Messages API's shape:
///
/// - a chat completion into a `message` ([`from_chat`](super::from_chat));
/// - a chat stream into Anthropic's events
///   ([`MessagesStreamTranslator`](super::MessagesStreamTranslator)); a
///   stream that breaks after its commit point ends with Anthropic's
///   `error` event;
/// - an error (a provider's, the router's, every target failed) into
///   Anthropic's error shape, status and headers kept;
/// - a native answer as it came.
///
/// The service below must be a chat stack over [`ReplayBody`] requests
/// (after a `ReplayLayer`), whose errors are already answers.
///
/// # Example
///
/// ```
/// use http::{Request, Response};
/// use tower::{ServiceExt, service_fn};
/// use understudy_core::{Operation, ReplayBody, ResponseBody};
/// use understudy_provider::messages::MessagesLayer;
/// use tower::Layer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A stand-in chat stack answering one chat completion.
/// let chat = service_fn(|request: Request<ReplayBody>| async move {
///     assert_eq!(Operation::of(request.extensions()), Operation::Messages);
///     Ok::<_, std::convert::Infallible>(Response::new(ResponseBody::full(
///         r#"{"id":"c1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#,
///     )))
/// });
/// let messages = MessagesLayer::new().layer(chat);
/// let request = Request::new(ReplayBody::from(
///     r#"{"model":"claude","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}"#,
/// ));
/// let response = messages.oneshot(request).await.unwrap();
/// let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
/// let message: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(message["type"], "message");
/// assert_eq!(message["model"], "claude");
/// assert_eq!(message["content"][0]["text"], "Hi");
/// assert_eq!(message["stop_reason"], "end_turn");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MessagesLayer {
    convert: Convert,
}

impl Default for MessagesLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl MessagesLayer {
    /// The layer, reading whole answers up to 64 MiB and stream events up
    /// to [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self {
            convert: Convert {
                max_body: DEFAULT_MAX_BODY,
                max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
                classifier: SharedClassifier::default(),
            },
        }
    }

    /// Sets the most bytes of a whole answer (or an error) read to convert
    /// it; a longer answer is a 502.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.convert.max_body = bytes;
        self
    }

    /// Sets the longest SSE event read from a chat stream; longer breaks
    /// the stream.
    #[must_use]
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.convert.max_event_bytes = bytes;
        self
    }

    /// Reads in-stream error events with `classifier`.
    #[must_use]
    pub fn classifier(mut self, classifier: impl Classify) -> Self {
        self.convert.classifier = SharedClassifier::new(classifier);
        self
    }
}

impl<S> Layer<S> for MessagesLayer {
    type Service = Messages<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Messages {
            inner,
            convert: self.convert.clone(),
        }
    }
}

/// The service of [`MessagesLayer`].
#[derive(Clone)]
pub struct Messages<S> {
    inner: S,
    convert: Convert,
}

impl<S> fmt::Debug for Messages<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Messages").finish_non_exhaustive()
    }
}

/// The one field of the caller's request the answer repeats.
#[derive(Deserialize)]
struct Model {
    #[serde(default)]
    model: Option<String>,
}

impl<S> Service<Request<ReplayBody>> for Messages<S>
where
    S: Service<Request<ReplayBody>, Response = Response<ResponseBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReplayBody>) -> Self::Future {
        request.extensions_mut().insert(Operation::Messages);
        let model = serde_json::from_slice::<Model>(request.body().bytes())
            .ok()
            .and_then(|m| m.model)
            .unwrap_or_default();
        let convert = self.convert.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(convert.answer(response, model).await)
        })
    }
}
