//! Anthropic streaming events → OpenAI `chat.completion.chunk` events.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use understudy_core::sse::SseEvent;
use understudy_core::{ClassifiedError, Classify, FailureKind, Outcome, SharedClassifier};

mod body;
mod wire;

pub use self::body::AnthropicStreamBody;
use self::wire::{
    BlockDelta, BlockStart, Choice, Chunk, Delta, ErrorEvent, FunctionDelta, MessageDelta,
    MessageStart, Null, Tagged, ToolCallDelta, UsageChunk,
};
use super::response::{Usage, answer_finish_reason};
use crate::dialect::chunk::{ChunkWriter, upstream_label, write_event};
use crate::dialect::completion::unix_now;
use crate::dialect::sse_translate::{EventTranslator, Flow, SseTranslation};
use crate::dialect::structured::FORCED_TOOL_NAME;
use crate::error::ProviderError;

/// The most raw stream bytes an [`AnthropicStreamTranslator`] reads before
/// the first content by default: 32 MiB, the fallback layer's default bound
/// on what a stream may send before its first content.
pub const DEFAULT_MAX_BYTES_BEFORE_CONTENT: usize = 32 * 1024 * 1024;

/// Translates Anthropic's SSE events into OpenAI chat-completion chunks,
/// incrementally, as bytes arrive.
///
/// | Anthropic event                                   | OpenAI chunk(s)                                                   |
/// |---------------------------------------------------|-------------------------------------------------------------------|
/// | `message_start`                                   | `delta: {"role":"assistant","content":""}`                        |
/// | `content_block_start` (text with text)            | `delta: {"content":…}`                                            |
/// | `content_block_start` (`tool_use`)                | `delta.tool_calls: [{index, id, type:"function", function:{name, arguments:""}}]` |
/// | `content_block_delta` (`text_delta`)              | `delta: {"content":…}`                                            |
/// | `content_block_delta` (`input_json_delta`)        | `delta.tool_calls: [{index, function:{arguments:…}}]`            |
/// | `content_block_start` (`tool_use` of [`FORCED_TOOL_NAME`]) | nothing: the structured answer follows as content        |
/// | `content_block_delta` (its `input_json_delta`)   | `delta: {"content":…}`                                            |
/// | `message_delta` with a `stop_reason`              | `delta: {}`, `finish_reason` mapped by [`finish_reason`](super::finish_reason); `stop` for the `tool_use` stop of a structured answer without other tool calls |
/// | `message_stop`                                    | the usage chunk (when asked for), then `data: [DONE]`             |
/// | `ping`, `content_block_stop`, thinking deltas     | nothing                                                           |
/// | `error`                                           | an error, a [`ClassifiedError`] with the outcome the error type says |
///
/// Tool-call indexes count tool calls, as OpenAI's do, not content blocks.
/// The tool that carries structured output ([`FORCED_TOOL_NAME`]) is no
/// tool call: its input, as it arrives, is the answer's content.
/// With `include_usage`, every chunk carries `"usage":null` and a last chunk
/// with empty `choices` carries the usage, as OpenAI streams do.
///
/// # Bounds
///
/// An upstream that streams without ever saying anything costs at most a
/// bounded amount: a line or event longer than
/// [`max_event_bytes`](Self::max_event_bytes) (default
/// [`DEFAULT_MAX_EVENT_BYTES`](understudy_core::sse::DEFAULT_MAX_EVENT_BYTES)), or more than
/// [`max_bytes_before_content`](Self::max_bytes_before_content) raw bytes
/// (default [`DEFAULT_MAX_BYTES_BEFORE_CONTENT`]) before the first content
/// (text, a tool call or a finish reason; the role chunk of
/// `message_start` is not content), is a
/// [`FailureKind::StreamBroken`] error.
///
/// # Example
///
/// ```
/// use understudy_provider::anthropic::AnthropicStreamTranslator;
///
/// let mut translator = AnthropicStreamTranslator::new(false);
/// let out = translator.push(concat!(
///     "event: message_start\n",
///     "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
///     "event: ping\ndata: {\"type\":\"ping\"}\n\n",
///     "event: content_block_delta\n",
///     "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
/// ).as_bytes()).unwrap();
/// let text = std::str::from_utf8(&out).unwrap();
/// assert_eq!(text.matches("data: ").count(), 2);
/// assert!(text.contains(r#""delta":{"role":"assistant","content":""}"#));
/// assert!(text.contains(r#""delta":{"content":"Hi"}"#));
///
/// let end = translator.push(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n").unwrap();
/// assert!(end.ends_with(b"data: [DONE]\n\n"));
/// assert!(translator.is_finished());
/// ```
#[derive(Debug)]
pub struct AnthropicStreamTranslator {
    sse: SseTranslation<AnthropicEvents>,
}

/// The translation of Anthropic's events, one by one.
#[derive(Debug)]
struct AnthropicEvents {
    include_usage: bool,
    /// Write the usage chunk even when the caller did not ask.
    usage_chunk: bool,
    id: String,
    model: String,
    created: u64,
    usage: Usage,
    /// (content block index, tool call index) of each tool-use block.
    tools: Vec<(u64, u32)>,
    /// Content block index of each tool-use block of the structured
    /// output's tool.
    structured: Vec<u64>,
    /// Content (text, a tool call, a finish reason) was written.
    content_seen: bool,
    /// Raw bytes pushed while no content was written.
    bytes_before_content: usize,
    max_bytes_before_content: usize,
    /// Reads `error` events.
    classifier: SharedClassifier,
}

impl AnthropicStreamTranslator {
    /// A translator; `include_usage` says whether the caller asked for
    /// `stream_options.include_usage`.
    pub fn new(include_usage: bool) -> Self {
        Self::with_created(include_usage, unix_now())
    }

    /// A translator whose chunks carry this `created` timestamp.
    pub fn with_created(include_usage: bool, created: u64) -> Self {
        Self {
            sse: SseTranslation::new(AnthropicEvents {
                include_usage,
                usage_chunk: false,
                id: String::new(),
                model: String::new(),
                created,
                usage: Usage::default(),
                tools: Vec::new(),
                structured: Vec::new(),
                content_seen: false,
                bytes_before_content: 0,
                max_bytes_before_content: DEFAULT_MAX_BYTES_BEFORE_CONTENT,
                classifier: SharedClassifier::default(),
            }),
        }
    }

    /// Reads `error` events with `classifier` instead of
    /// [`LlmClassifier`](understudy_core::LlmClassifier): the provider
    /// service's, so a stream's error means what an error answer would.
    #[must_use]
    pub fn classifier(mut self, classifier: impl Classify) -> Self {
        self.sse.translator_mut().classifier = SharedClassifier::new(classifier);
        self
    }

    /// Writes the usage chunk even when the caller did not ask, without
    /// `"usage": null` on the other chunks
    /// ([`AnswerContext::usage_chunk`](crate::dialect::AnswerContext::usage_chunk)).
    #[must_use]
    pub fn usage_chunk(mut self, on: bool) -> Self {
        self.sse.translator_mut().usage_chunk = on;
        self
    }

    /// More than `bytes` raw bytes before the first content is a
    /// [`FailureKind::StreamBroken`] error. Defaults to
    /// [`DEFAULT_MAX_BYTES_BEFORE_CONTENT`].
    pub fn max_bytes_before_content(mut self, bytes: usize) -> Self {
        self.sse.translator_mut().max_bytes_before_content = bytes;
        self
    }

    /// A line or an event's data longer than `bytes` is a
    /// [`FailureKind::StreamBroken`] error. Defaults to
    /// [`DEFAULT_MAX_EVENT_BYTES`](understudy_core::sse::DEFAULT_MAX_EVENT_BYTES).
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.sse.set_max_event_bytes(bytes);
        self
    }

    /// Feeds bytes of the Anthropic stream as they arrive; returns the
    /// OpenAI SSE bytes for the events they completed, possibly none.
    ///
    /// An `error` event, or an event that cannot be read, is returned as
    /// the error, a [`ClassifiedError`]. When chunks were translated before
    /// it in the same input, those are returned first and the error by the
    /// next call to `push` or [`finish`](Self::finish). After `message_stop`
    /// or an error, further input is ignored.
    ///
    /// Input that takes the stream past
    /// [`max_bytes_before_content`](Self::max_bytes_before_content) without
    /// content, or holds a line or event larger than
    /// [`max_event_bytes`](Self::max_event_bytes), is a
    /// [`FailureKind::StreamBroken`] error.
    pub fn push(&mut self, input: &[u8]) -> Result<Bytes, ClassifiedError> {
        self.sse.push(input)
    }

    /// Ends the translation when the Anthropic stream ends. A stream that
    /// ends before `message_stop` is an error (the stream broke).
    pub fn finish(&mut self) -> Result<Bytes, ClassifiedError> {
        self.sse.finish()
    }

    /// An error held back by [`push`](Self::push) behind chunks it returned.
    pub fn take_error(&mut self) -> Option<ClassifiedError> {
        self.sse.take_error()
    }

    /// Has the stream ended (`message_stop`, an error, or [`finish`](Self::finish))?
    pub fn is_finished(&self) -> bool {
        self.sse.is_finished()
    }
}

/// `message_stop` ends the stream; ending before it is a broken stream
/// (the default [`end`](EventTranslator::end)).
impl EventTranslator for AnthropicEvents {
    /// Counts the raw bytes before the first content against
    /// `max_bytes_before_content`.
    fn admit(&mut self, input: &[u8]) -> Result<(), ClassifiedError> {
        if !self.content_seen {
            self.bytes_before_content = self.bytes_before_content.saturating_add(input.len());
            if self.bytes_before_content > self.max_bytes_before_content {
                return Err(ProviderError::invalid_response(format!(
                    "more than {} bytes of stream before any content",
                    self.max_bytes_before_content
                ))
                .classified(Outcome::Failure(FailureKind::StreamBroken)));
            }
        }
        Ok(())
    }

    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<Flow, ClassifiedError> {
        let data = event.data.as_bytes();
        let kind: Cow<'_, str> = match event.event.as_deref() {
            Some(name) if name != "message" => Cow::Borrowed(name),
            _ => parse::<Tagged<'_>>(data)?.kind,
        };
        match &*kind {
            "message_start" => {
                let start: MessageStart<'_> = parse(data)?;
                // Every chunk repeats both: an unfit one is left empty.
                self.id.clear();
                self.id
                    .push_str(upstream_label(&start.message.id).unwrap_or_default());
                self.model.clear();
                self.model
                    .push_str(upstream_label(&start.message.model).unwrap_or_default());
                self.usage.update(&start.message.usage);
                self.write_chunk(
                    out,
                    Delta {
                        role: Some("assistant"),
                        content: Some(""),
                        tool_calls: None,
                    },
                    None,
                );
            }
            "content_block_start" => {
                let start: BlockStart<'_> = parse(data)?;
                match &*start.content_block.kind {
                    "text" => {
                        if let Some(text) = start.content_block.text.as_deref()
                            && !text.is_empty()
                        {
                            self.write_chunk(out, Delta::content(text), None);
                        }
                    }
                    "tool_use" if start.content_block.name.as_deref() == Some(FORCED_TOOL_NAME) => {
                        self.structured.push(start.index);
                    }
                    "tool_use" => {
                        let tool_index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                        self.tools.push((start.index, tool_index));
                        let call = ToolCallDelta {
                            index: tool_index,
                            id: start.content_block.id.as_deref(),
                            kind: Some("function"),
                            function: FunctionDelta {
                                name: start.content_block.name.as_deref(),
                                arguments: "",
                            },
                        };
                        self.write_chunk(out, Delta::tool_call(call), None);
                    }
                    // thinking, redacted_thinking, server tools: no equivalent.
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta: BlockDelta<'_> = parse(data)?;
                match &*delta.delta.kind {
                    "text_delta" => {
                        if let Some(text) = delta.delta.text.as_deref() {
                            self.write_chunk(out, Delta::content(text), None);
                        }
                    }
                    "input_json_delta" if self.structured.contains(&delta.index) => {
                        if let Some(json) = delta.delta.partial_json.as_deref()
                            && !json.is_empty()
                        {
                            self.write_chunk(out, Delta::content(json), None);
                        }
                    }
                    "input_json_delta" => {
                        let tool = self.tools.iter().find(|(block, _)| *block == delta.index);
                        if let (Some(&(_, tool_index)), Some(json)) =
                            (tool, delta.delta.partial_json.as_deref())
                            && !json.is_empty()
                        {
                            let call = ToolCallDelta {
                                index: tool_index,
                                id: None,
                                kind: None,
                                function: FunctionDelta {
                                    name: None,
                                    arguments: json,
                                },
                            };
                            self.write_chunk(out, Delta::tool_call(call), None);
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                let delta: MessageDelta<'_> = parse(data)?;
                if let Some(usage) = &delta.usage {
                    self.usage.update(usage);
                }
                if let Some(reason) = delta.delta.stop_reason.as_deref() {
                    let structured_only = !self.structured.is_empty() && self.tools.is_empty();
                    let finish = answer_finish_reason(reason, structured_only);
                    self.write_chunk(out, Delta::default(), Some(finish));
                }
            }
            "message_stop" => {
                if self.include_usage || self.usage_chunk {
                    let usage = self.usage.to_openai();
                    let chunk = UsageChunk {
                        id: &self.id,
                        object: "chat.completion.chunk",
                        created: self.created,
                        model: &self.model,
                        choices: [],
                        usage: &usage,
                    };
                    write_event(out, &chunk);
                }
                ChunkWriter::done(out);
                return Ok(Flow::Stop);
            }
            "error" => return Err(stream_error(data, &self.classifier)),
            // ping, content_block_stop and anything newer.
            _ => {}
        }
        Ok(Flow::Continue)
    }
}

impl AnthropicEvents {
    fn write_chunk(&mut self, out: &mut Vec<u8>, delta: Delta<'_>, finish: Option<&str>) {
        if finish.is_some()
            || delta.tool_calls.is_some()
            || delta.content.is_some_and(|text| !text.is_empty())
        {
            self.content_seen = true;
        }
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: [Choice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish,
            }],
            usage: self.include_usage.then_some(Null),
        };
        write_event(out, &chunk);
    }
}

fn parse<'a, T: Deserialize<'a>>(data: &'a [u8]) -> Result<T, ClassifiedError> {
    serde_json::from_slice(data).map_err(|e| {
        ProviderError::invalid_response(format!("unreadable stream event: {e}"))
            .classified(Outcome::Failure(FailureKind::StreamBroken))
    })
}

/// An `error` event, classified as its error type says: `overloaded_error`
/// is overload, `rate_limit_error` rate limiting, anything else a broken
/// stream.
fn stream_error(data: &[u8], classifier: &SharedClassifier) -> ClassifiedError {
    let outcome = match classifier.classify_parts(StatusCode::OK, &HeaderMap::new(), Some(data)) {
        Outcome::Success => Outcome::Failure(FailureKind::StreamBroken),
        outcome => outcome,
    };
    let (kind, message) = match serde_json::from_slice::<ErrorEvent<'_>>(data) {
        Ok(event) => (
            event.error.kind.into_owned(),
            event.error.message.into_owned(),
        ),
        Err(_) => ("unknown".to_owned(), String::new()),
    };
    ProviderError::StreamError { kind, message }.classified(outcome)
}
