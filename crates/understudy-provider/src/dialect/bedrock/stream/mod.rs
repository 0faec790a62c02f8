//! Bedrock `ConverseStream` event-stream frames → OpenAI
//! `chat.completion.chunk` events.

use std::borrow::Cow;

use aws_smithy_types::event_stream::Message;
use aws_smithy_types::str_bytes::StrBytes;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use understudy_core::sse::DEFAULT_MAX_EVENT_BYTES;
use understudy_core::{ClassifiedError, Classify, FailureKind, Outcome, SharedClassifier};

mod frames;

use self::frames::FrameReader;
use super::error::outcome_of;
use super::is_forced_tool;
use super::response::{Usage, finish_reason, structured_finish_reason};
use crate::dialect::chunk::ChunkWriter;
use crate::dialect::stream_body::StreamTranslate;
use crate::error::ProviderError;

/// Translates a Bedrock `ConverseStream` answer
/// (`application/vnd.amazon.eventstream` frames) into OpenAI
/// chat-completion chunks, incrementally, as bytes arrive.
///
/// Each frame is decoded and its CRCs checked by `aws-smithy-eventstream`;
/// its `:message-type` header says whether it is an event, an exception or
/// an error, and `:event-type` which event:
///
/// | Bedrock frame                                      | OpenAI chunk(s)                                                     |
/// |----------------------------------------------------|---------------------------------------------------------------------|
/// | `messageStart`                                     | `delta: {"role":"assistant","content":""}`                          |
/// | `contentBlockStart` with `toolUse`                 | `delta.tool_calls: [{index, id, type:"function", function:{name, arguments:""}}]` |
/// | `contentBlockDelta` with `text`                    | `delta: {"content":…}`                                              |
/// | `contentBlockDelta` with `toolUse.input`           | `delta.tool_calls: [{index, function:{arguments:…}}]`              |
/// | `contentBlockStop`, reasoning deltas, newer events | nothing                                                             |
/// | any event but `metadata` after `messageStop`       | nothing                                                             |
/// | `messageStop`                                      | `delta: {}`, `finish_reason` mapped by [`finish_reason`](super::finish_reason) |
/// | `metadata` (after `messageStop`)                   | the usage chunk (when asked for), then `data: [DONE]`               |
/// | `exception` or `error` frame                       | an error, a [`ClassifiedError`] with the outcome its name says      |
///
/// The forced tool of `response_format` is the answer: its input
/// fragments are `content` deltas, no tool call is announced, and the
/// finish reason is `stop`. Tool-call indexes count tool calls, as
/// OpenAI's do, not content blocks. With `include_usage`, every chunk
/// carries `"usage":null` and a last chunk with empty `choices` carries
/// the usage.
///
/// Exceptions classify as errors do ([`classify_error`](super::classify_error)):
/// `throttlingException` is rate limiting, `serviceUnavailableException`
/// and `modelNotReadyException` overload, `internalServerException` a
/// server error, `modelStreamErrorException` a broken stream,
/// `validationException` the caller's error (or context length exceeded);
/// others are read by the service's classifier, and are a broken stream
/// when it sees no error.
///
/// # Bounds
///
/// A frame longer than [`max_event_bytes`](Self::max_event_bytes) is a
/// [`FailureKind::StreamBroken`] error as soon as its length is read, and
/// so is a corrupt frame (a CRC or a header that does not check out) and a
/// stream that ends before `messageStop`.
///
/// # Example
///
/// ```
/// use aws_smithy_eventstream::frame::write_message_to;
/// use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
/// use understudy_provider::bedrock::BedrockStreamTranslator;
///
/// fn event(kind: &'static str, payload: &'static str) -> Vec<u8> {
///     let message = Message::new(payload.as_bytes())
///         .add_header(Header::new(":message-type", HeaderValue::String("event".into())))
///         .add_header(Header::new(":event-type", HeaderValue::String(kind.into())));
///     let mut frame = Vec::new();
///     write_message_to(&message, &mut frame).unwrap();
///     frame
/// }
///
/// let mut translator = BedrockStreamTranslator::new("chatcmpl-1".into(), "amazon.nova-lite-v1:0".into(), 0, false);
/// let mut input = event("messageStart", r#"{"role":"assistant"}"#);
/// input.extend(event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#));
/// let out = translator.push(&input).unwrap();
/// let text = std::str::from_utf8(&out).unwrap();
/// assert!(text.contains(r#""role":"assistant""#));
/// assert!(text.contains(r#""delta":{"content":"Hi"}"#));
///
/// let mut end = event("messageStop", r#"{"stopReason":"end_turn"}"#);
/// end.extend(event("metadata", r#"{"usage":{"inputTokens":3,"outputTokens":1,"totalTokens":4}}"#));
/// let out = translator.push(&end).unwrap();
/// assert!(std::str::from_utf8(&out).unwrap().contains(r#""finish_reason":"stop""#));
/// assert!(out.ends_with(b"data: [DONE]\n\n"));
/// assert!(translator.is_finished());
/// ```
#[derive(Debug)]
pub struct BedrockStreamTranslator {
    frames: FrameReader,
    writer: ChunkWriter,
    usage: Usage,
    /// (content block index, tool call index) of each tool-use block.
    tools: Vec<(u64, u32)>,
    /// The content block of the forced tool, whose input is the answer.
    structured_block: Option<u64>,
    role_sent: bool,
    phase: Phase,
    pending_error: Option<ClassifiedError>,
    /// Reads exceptions this dialect does not know.
    classifier: SharedClassifier,
}

impl BedrockStreamTranslator {
    /// A translator whose chunks carry this `id`, `model` and `created`;
    /// `include_usage` says whether the caller asked for
    /// `stream_options.include_usage`.
    pub fn new(id: String, model: String, created: u64, include_usage: bool) -> Self {
        Self {
            frames: FrameReader::new(DEFAULT_MAX_EVENT_BYTES),
            writer: ChunkWriter::new(id, created, model, include_usage),
            usage: Usage::default(),
            tools: Vec::new(),
            structured_block: None,
            role_sent: false,
            phase: Phase::Open,
            pending_error: None,
            classifier: SharedClassifier::default(),
        }
    }

    /// Reads exceptions this dialect does not know with `classifier`
    /// instead of [`LlmClassifier`](understudy_core::LlmClassifier).
    #[must_use]
    pub fn classifier(mut self, classifier: SharedClassifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// Writes the usage chunk even when the caller did not ask, without
    /// `"usage": null` on the other chunks
    /// ([`AnswerContext::usage_chunk`](crate::dialect::AnswerContext::usage_chunk)).
    #[must_use]
    pub fn usage_chunk(mut self, on: bool) -> Self {
        self.writer = self.writer.with_usage_chunk(on);
        self
    }

    /// A frame longer than `bytes` is a [`FailureKind::StreamBroken`]
    /// error. Defaults to
    /// [`DEFAULT_MAX_EVENT_BYTES`](understudy_core::sse::DEFAULT_MAX_EVENT_BYTES).
    #[must_use]
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.frames.set_max_frame_bytes(bytes);
        self
    }

    /// Feeds bytes of the Bedrock stream as they arrive; returns the OpenAI
    /// SSE bytes for the frames they completed, possibly none.
    ///
    /// An exception or error frame, or a frame that cannot be read, is
    /// returned as the error, a [`ClassifiedError`]. When chunks were
    /// translated before it in the same input, those are returned first
    /// and the error by the next call to `push` or
    /// [`finish`](Self::finish). After the stream's end or an error,
    /// further input is ignored.
    pub fn push(&mut self, input: &[u8]) -> Result<Bytes, ClassifiedError> {
        if let Some(error) = self.pending_error.take() {
            return Err(error);
        }
        if self.phase == Phase::Finished {
            return Ok(Bytes::new());
        }
        self.frames.push(input);
        let mut out = Vec::new();
        loop {
            let handled = match self.frames.next_frame() {
                Ok(None) => break,
                Ok(Some(message)) => self.handle(&message, &mut out),
                Err(error) => Err(error.classified(Outcome::Failure(FailureKind::StreamBroken))),
            };
            if let Err(error) = handled {
                self.phase = Phase::Finished;
                if out.is_empty() {
                    return Err(error);
                }
                self.pending_error = Some(error);
                break;
            }
            if self.phase == Phase::Finished {
                break;
            }
        }
        Ok(Bytes::from(out))
    }

    /// Ends the translation when the Bedrock stream ends. After
    /// `messageStop` this writes what `metadata` would have (the usage
    /// chunk, `data: [DONE]`); a stream that ends before `messageStop` is
    /// an error (the stream broke).
    pub fn finish(&mut self) -> Result<Bytes, ClassifiedError> {
        if let Some(error) = self.pending_error.take() {
            return Err(error);
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Finished);
        if phase == Phase::Finished {
            return Ok(Bytes::new());
        }
        if phase == Phase::Stopped {
            let mut out = Vec::new();
            self.write_end(&mut out);
            return Ok(Bytes::from(out));
        }
        let error = if self.frames.has_partial_frame() {
            ProviderError::invalid_response("the stream ended inside an event-stream frame")
        } else {
            ProviderError::StreamCut
        };
        Err(error.classified(Outcome::Failure(FailureKind::StreamBroken)))
    }

    /// An error held back by [`push`](Self::push) behind chunks it returned.
    pub fn take_error(&mut self) -> Option<ClassifiedError> {
        self.pending_error.take()
    }

    /// Has the stream ended (its last event, an error, or
    /// [`finish`](Self::finish))?
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished && self.pending_error.is_none()
    }

    fn handle(&mut self, message: &Message, out: &mut Vec<u8>) -> Result<(), ClassifiedError> {
        let payload = message.payload().as_ref();
        match header(message, ":message-type") {
            Some("event") => {}
            Some("exception") => {
                let name = header(message, ":exception-type").unwrap_or("unknown");
                let text = serde_json::from_slice::<ExceptionBody<'_>>(payload)
                    .ok()
                    .and_then(|body| body.message)
                    .unwrap_or_default();
                return Err(self.stream_error(name, &text, payload));
            }
            Some("error") => {
                let name = header(message, ":error-code").unwrap_or("unknown");
                let text = header(message, ":error-message").unwrap_or_default();
                return Err(self.stream_error(name, text, payload));
            }
            other => {
                return Err(ProviderError::invalid_response(format!(
                    "an event-stream frame of message type {}",
                    other.unwrap_or("(none)")
                ))
                .classified(Outcome::Failure(FailureKind::StreamBroken)));
            }
        }
        let kind = header(message, ":event-type").unwrap_or_default();
        if self.phase == Phase::Stopped && kind != "metadata" {
            // Nothing follows the finish reason but usage.
            return Ok(());
        }
        match kind {
            "messageStart" => self.write_role(out),
            "contentBlockStart" => {
                let start: BlockStart<'_> = parse(payload)?;
                if let Some(tool) = start.start.and_then(|start| start.tool_use) {
                    self.write_role(out);
                    if is_forced_tool(&tool.name) {
                        self.structured_block = Some(start.content_block_index);
                    } else {
                        let tool_index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                        self.tools.push((start.content_block_index, tool_index));
                        let delta = json!({"tool_calls": [{
                            "index": tool_index,
                            "id": tool.tool_use_id,
                            "type": "function",
                            "function": {"name": tool.name, "arguments": ""},
                        }]});
                        self.writer.delta(out, &delta, None);
                    }
                }
            }
            "contentBlockDelta" => {
                let delta: BlockDelta<'_> = parse(payload)?;
                let index = delta.content_block_index;
                let Some(body) = delta.delta else {
                    return Ok(());
                };
                if let Some(text) = body.text.as_deref().filter(|text| !text.is_empty()) {
                    self.write_role(out);
                    self.writer.delta(out, &json!({ "content": text }), None);
                }
                if let Some(input) = body
                    .tool_use
                    .as_ref()
                    .map(|tool| tool.input.as_ref())
                    .filter(|input| !input.is_empty())
                {
                    if self.structured_block == Some(index) {
                        self.writer.delta(out, &json!({ "content": input }), None);
                    } else if let Some(&(_, tool_index)) =
                        self.tools.iter().find(|(block, _)| *block == index)
                    {
                        let delta = json!({"tool_calls": [{
                            "index": tool_index,
                            "function": {"arguments": input},
                        }]});
                        self.writer.delta(out, &delta, None);
                    }
                }
            }
            "messageStop" => {
                let stop: MessageStop<'_> = parse(payload)?;
                self.write_role(out);
                let reason = stop.stop_reason.as_deref().unwrap_or("end_turn");
                let finish = if self.structured_block.is_some() {
                    structured_finish_reason(reason)
                } else {
                    finish_reason(reason)
                };
                self.writer.delta(out, &json!({}), Some(finish));
                self.phase = Phase::Stopped;
            }
            "metadata" => {
                let metadata: Metadata = parse(payload)?;
                if let Some(usage) = metadata.usage {
                    self.usage = usage;
                }
                if self.phase == Phase::Stopped {
                    self.write_end(out);
                    self.phase = Phase::Finished;
                }
            }
            // contentBlockStop and anything newer.
            _ => {}
        }
        Ok(())
    }

    /// An exception or error frame, classified by its name, else by the
    /// service's classifier, else a broken stream.
    fn stream_error(&self, name: &str, message: &str, payload: &[u8]) -> ClassifiedError {
        let outcome =
            outcome_of(name, message, StatusCode::OK, &HeaderMap::new()).unwrap_or_else(|| {
                match self.classifier.classify_parts(
                    StatusCode::OK,
                    &HeaderMap::new(),
                    Some(payload),
                ) {
                    Outcome::Success => Outcome::Failure(FailureKind::StreamBroken),
                    outcome => outcome,
                }
            });
        ProviderError::StreamError {
            kind: name.to_owned(),
            message: message.to_owned(),
        }
        .classified(outcome)
    }

    /// The role chunk, once, before anything else.
    fn write_role(&mut self, out: &mut Vec<u8>) {
        if self.role_sent {
            return;
        }
        self.role_sent = true;
        self.writer
            .delta(out, &json!({ "role": "assistant", "content": "" }), None);
    }

    /// The usage chunk (when asked for), then `data: [DONE]`.
    fn write_end(&self, out: &mut Vec<u8>) {
        self.writer.usage(out, &self.usage.to_openai());
        ChunkWriter::done(out);
    }
}

impl StreamTranslate for BedrockStreamTranslator {
    fn push(&mut self, input: &[u8]) -> Result<Bytes, ClassifiedError> {
        Self::push(self, input)
    }

    fn finish(&mut self) -> Result<Bytes, ClassifiedError> {
        Self::finish(self)
    }

    fn take_error(&mut self) -> Option<ClassifiedError> {
        Self::take_error(self)
    }

    fn is_finished(&self) -> bool {
        Self::is_finished(self)
    }
}

/// A string header of a frame.
fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|header| header.name().as_str() == name)
        .and_then(|header| header.value().as_string().ok())
        .map(StrBytes::as_str)
}

fn parse<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, ClassifiedError> {
    serde_json::from_slice(payload).map_err(|e| {
        ProviderError::invalid_response(format!("unreadable stream event: {e}"))
            .classified(Outcome::Failure(FailureKind::StreamBroken))
    })
}

/// Where a stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before `messageStop`.
    Open,
    /// `messageStop` was read; `metadata` may follow.
    Stopped,
    /// `data: [DONE]` or an error was written, or the stream ended.
    Finished,
}

// ===== Bedrock events, borrowed from the frame's payload =====

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart<'a> {
    #[serde(default)]
    content_block_index: u64,
    #[serde(borrow, default)]
    start: Option<StartBody<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBody<'a> {
    #[serde(borrow, default)]
    tool_use: Option<ToolStart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolStart<'a> {
    #[serde(borrow)]
    tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta<'a> {
    #[serde(default)]
    content_block_index: u64,
    #[serde(borrow, default)]
    delta: Option<DeltaBody<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaBody<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_use: Option<ToolDelta<'a>>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    #[serde(borrow, default)]
    input: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop<'a> {
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ExceptionBody<'a> {
    #[serde(borrow, default, alias = "Message")]
    message: Option<Cow<'a, str>>,
}
