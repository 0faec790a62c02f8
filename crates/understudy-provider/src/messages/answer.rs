//! An answer of the stack turned into the Messages endpoint's: errors in
//! Anthropic's shape, chat-shaped answers translated, native ones as they
//! are.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use understudy_core::{BoxError, OpenAiError, Operation, ResponseBody, SharedClassifier};

use super::{MessagesStreamTranslator, error_body, from_chat};
use crate::dialect::stream_body::{StreamTranslate, TranslatedBody};

/// How an answer is converted.
#[derive(Clone, Debug)]
pub(super) struct Convert {
    /// The most bytes of a whole answer or an error read to convert it.
    pub(super) max_body: usize,
    /// The longest SSE event read from a chat stream.
    pub(super) max_event_bytes: usize,
    /// What an in-stream error event means.
    pub(super) classifier: SharedClassifier,
}

impl Convert {
    /// `response` as the Messages endpoint answers it, for a caller who
    /// asked for `model`. Marked [`Operation::Messages`]: its body has that
    /// shape now.
    pub(super) async fn answer(
        &self,
        response: Response<ResponseBody>,
        model: String,
    ) -> Response<ResponseBody> {
        let shape = Operation::of(response.extensions());
        let mut response = if !response.status().is_success() {
            self.error(response).await
        } else if shape == Operation::Messages {
            response
        } else if is_event_stream(&response) {
            let translator = MessagesStreamTranslator::new(model)
                .classifier(self.classifier.clone())
                .max_event_bytes(self.max_event_bytes);
            response.map(|body| {
                ResponseBody::new(ErrorEventAtEnd {
                    inner: TranslatedBody::new(body, translator),
                    done: false,
                })
            })
        } else {
            self.whole(response, &model).await
        };
        response.extensions_mut().insert(Operation::Messages);
        response
    }

    /// An error answer, in Anthropic's shape with the same status and
    /// headers.
    async fn error(&self, response: Response<ResponseBody>) -> Response<ResponseBody> {
        let (mut parts, body) = response.into_parts();
        let bytes = read(body, self.max_body).await.unwrap_or_default();
        let (status, json) = error_body(parts.status, &bytes);
        parts.status = status;
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Response::from_parts(parts, ResponseBody::full(json))
    }

    /// A whole chat completion, as a Messages answer.
    async fn whole(&self, response: Response<ResponseBody>, model: &str) -> Response<ResponseBody> {
        let (mut parts, body) = response.into_parts();
        let converted = match read(body, self.max_body).await {
            Ok(bytes) => from_chat(&bytes, model).map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match converted {
            Ok(json) => Response::from_parts(parts, ResponseBody::full(json)),
            Err(reason) => {
                let error = OpenAiError::bad_gateway(format!(
                    "the provider's answer could not be read as a chat completion: {reason}"
                ));
                parts.status = StatusCode::BAD_GATEWAY;
                Response::from_parts(parts, ResponseBody::full(error.to_anthropic_json()))
            }
        }
    }
}

/// The most bytes of an error body [`to_messages_error`] reads.
const MAX_ERROR_BODY: usize = 1024 * 1024;

/// An answer for the Messages endpoint that did not pass through
/// [`MessagesLayer`](super::MessagesLayer) (an error of a layer above it:
/// a full queue, a body too large, a slow caller): an error in OpenAI's
/// shape is rewritten in Anthropic's, status and headers kept. An answer
/// already in the Messages shape, and any success, is returned as it is.
///
/// ```
/// use http::StatusCode;
/// use understudy_core::{OpenAiError, ResponseBody};
/// use understudy_provider::messages::to_messages_error;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let busy = OpenAiError::service_unavailable("too many requests in flight").to_response::<ResponseBody>();
/// let answer = to_messages_error(busy).await;
/// assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
/// let body = http_body_util::BodyExt::collect(answer.into_body()).await.unwrap().to_bytes();
/// assert_eq!(
///     &body[..],
///     br#"{"type":"error","error":{"type":"overloaded_error","message":"too many requests in flight"}}"#,
/// );
/// # }
/// ```
pub async fn to_messages_error(response: Response<ResponseBody>) -> Response<ResponseBody> {
    if response.status().is_success() || Operation::of(response.extensions()) == Operation::Messages
    {
        return response;
    }
    let convert = Convert {
        max_body: MAX_ERROR_BODY,
        max_event_bytes: 0,
        classifier: SharedClassifier::default(),
    };
    let mut response = convert.error(response).await;
    response.extensions_mut().insert(Operation::Messages);
    response
}

fn is_event_stream(response: &Response<ResponseBody>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"))
}

/// Reads a body whole, at most `limit` bytes.
async fn read(body: ResponseBody, limit: usize) -> Result<Bytes, BoxError> {
    http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
}

pin_project! {
    /// A translated stream whose failure ends it with Anthropic's `error`
    /// event instead of a cut: whatever broke below (the provider, or the
    /// commit point's own error event), the caller's SDK reads an error.
    struct ErrorEventAtEnd<B> {
        #[pin]
        inner: B,
        done: bool,
    }
}

impl<B> Body for ErrorEventAtEnd<B>
where
    B: Body<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match ready!(this.inner.poll_frame(cx)) {
            Some(Err(error)) => {
                *this.done = true;
                let event = OpenAiError::bad_gateway(error.to_string())
                    .with_code("stream_broken")
                    .to_sse_event_for(Operation::Messages);
                Poll::Ready(Some(Ok(Frame::data(event))))
            }
            None => {
                *this.done = true;
                Poll::Ready(None)
            }
            frame => Poll::Ready(frame),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl StreamTranslate for MessagesStreamTranslator {
    fn push(&mut self, input: &[u8]) -> Result<Bytes, understudy_core::ClassifiedError> {
        Self::push(self, input)
    }

    fn finish(&mut self) -> Result<Bytes, understudy_core::ClassifiedError> {
        Self::finish(self)
    }

    fn take_error(&mut self) -> Option<understudy_core::ClassifiedError> {
        Self::take_error(self)
    }

    fn is_finished(&self) -> bool {
        Self::is_finished(self)
    }
}
