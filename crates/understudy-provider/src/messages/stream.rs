//! OpenAI `chat.completion.chunk` events → Anthropic Messages stream
//! events.

use std::borrow::Cow;
use std::collections::HashSet;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use understudy_core::sse::SseEvent;
use understudy_core::{ClassifiedError, Classify, FailureKind, Outcome, SharedClassifier};

use super::response::{ChatUsage, answer_stop_reason, message_id};
use crate::dialect::sse_translate::{EventTranslator, Flow, SseTranslation};
use crate::error::ProviderError;

/// Translates an OpenAI chat-completions stream (`data: {chunk}` …
/// `data: [DONE]`) into Anthropic's Messages stream events, incrementally,
/// as bytes arrive.
///
/// | OpenAI                                           | Anthropic events                                                  |
/// |--------------------------------------------------|-------------------------------------------------------------------|
/// | the first chunk                                  | `message_start`: the message with empty `content`, `stop_reason: null`, `usage` (zeros unless the chunk has usage) |
/// | `delta.content` (or `delta.refusal`), not empty  | `content_block_start` of a `text` block when none is open, then `content_block_delta` `text_delta` |
/// | `delta.tool_calls[]` of an index not seen yet    | `content_block_start` of a `tool_use` block `{id, name, input: {}}` |
/// | its `function.arguments` fragments               | `content_block_delta` `input_json_delta` `{partial_json}`, one per fragment |
/// | a block of another kind or tool call starting, or `finish_reason` | `content_block_stop` of the open block         |
/// | `finish_reason`                                  | remembered: [`stop_reason`](super::stop_reason), `tool_use` when tool calls were streamed |
/// | a chunk's `usage` (the last chunk, `stream_options.include_usage`) | remembered                                    |
/// | `data: [DONE]` after a `finish_reason`           | `message_delta` (`delta.stop_reason`, `stop_sequence: null`, `usage` with `output_tokens`, `input_tokens` and `cache_read_input_tokens` when known), then `message_stop` |
/// | `data: {"error": …}` (or `event: error`)         | an error, classified as the provider service's classifier reads it |
/// | `delta.role`, empty text, reasoning deltas, choices other than index 0 | nothing                                   |
///
/// Blocks are indexed from 0 in the order they start. A stream that ends
/// without `data: [DONE]`, or reaches it without a `finish_reason`, broke:
/// [`finish`](Self::finish) (or the `[DONE]`) is a
/// [`FailureKind::StreamBroken`] error. So is a chunk that cannot be read,
/// a tool call without a `name` when it starts, and arguments for a tool
/// call whose block was closed (a block cannot reopen).
///
/// # Bounds
///
/// A line or an event's data longer than
/// [`max_event_bytes`](Self::max_event_bytes) (default
/// [`DEFAULT_MAX_EVENT_BYTES`](understudy_core::sse::DEFAULT_MAX_EVENT_BYTES))
/// is a [`FailureKind::StreamBroken`] error; nothing else is held beyond
/// the block being written.
///
/// # Example
///
/// ```
/// use understudy_provider::messages::MessagesStreamTranslator;
///
/// let mut translator = MessagesStreamTranslator::new("claude-sonnet-4-5");
/// let mut out = Vec::new();
/// out.extend_from_slice(&translator.push(concat!(
///     "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"}}]}\n\n",
///     "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
///     "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n",
///     "data: [DONE]\n\n",
/// ).as_bytes()).unwrap());
/// out.extend_from_slice(&translator.finish().unwrap());
/// let text = String::from_utf8(out).unwrap();
/// let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
/// assert_eq!(events, [
///     "message_start", "content_block_start", "content_block_delta",
///     "content_block_stop", "message_delta", "message_stop",
/// ]);
/// assert!(text.contains(r#""delta":{"text":"Hi","type":"text_delta"}"#));
/// assert!(text.contains(r#""stop_reason":"end_turn""#));
/// assert!(translator.is_finished());
/// ```
#[derive(Debug)]
pub struct MessagesStreamTranslator {
    sse: SseTranslation<OpenAiEvents>,
}

/// The translation of OpenAI's chunks, one by one.
#[derive(Debug)]
struct OpenAiEvents {
    model: String,
    started: bool,
    /// The block being written, if any.
    open: Option<Open>,
    /// The index the next block gets.
    next_block: u64,
    /// The OpenAI indexes of the tool calls whose blocks started.
    tools: HashSet<u64>,
    stop_reason: Option<&'static str>,
    usage: Option<ChatUsage>,
    /// Reads error events.
    classifier: SharedClassifier,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Text { block: u64 },
    Tool { block: u64, call: u64 },
}

impl Open {
    fn block(self) -> u64 {
        match self {
            Self::Text { block } | Self::Tool { block, .. } => block,
        }
    }
}

impl MessagesStreamTranslator {
    /// A translator whose `message_start` names `model` (the caller's
    /// `model` field).
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            sse: SseTranslation::new(OpenAiEvents {
                model: model.into(),
                started: false,
                open: None,
                next_block: 0,
                tools: HashSet::new(),
                stop_reason: None,
                usage: None,
                classifier: SharedClassifier::default(),
            }),
        }
    }

    /// Reads error events with `classifier` instead of
    /// [`LlmClassifier`](understudy_core::LlmClassifier): the provider
    /// service's, so a stream's error means what an error answer would.
    #[must_use]
    pub fn classifier(mut self, classifier: impl Classify) -> Self {
        self.sse.translator_mut().classifier = SharedClassifier::new(classifier);
        self
    }

    /// A line or an event's data longer than `bytes` is a
    /// [`FailureKind::StreamBroken`] error. Defaults to
    /// [`DEFAULT_MAX_EVENT_BYTES`](understudy_core::sse::DEFAULT_MAX_EVENT_BYTES);
    /// give it [`AnswerContext::max_event_bytes`](crate::AnswerContext).
    #[must_use]
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.sse.set_max_event_bytes(bytes);
        self
    }

    /// Feeds bytes of the OpenAI stream as they arrive; returns the
    /// Anthropic SSE bytes for the events they completed, possibly none.
    ///
    /// An error event, or an event that cannot be read, is returned as the
    /// error, a [`ClassifiedError`]. When events were written before it in
    /// the same input, those are returned first and the error by the next
    /// call to `push` or [`finish`](Self::finish) (or
    /// [`take_error`](Self::take_error)). After `data: [DONE]` or an error,
    /// further input is ignored.
    pub fn push(&mut self, input: &[u8]) -> Result<Bytes, ClassifiedError> {
        self.sse.push(input)
    }

    /// Ends the translation when the OpenAI stream ends. A stream that ends
    /// before `data: [DONE]` broke: a [`FailureKind::StreamBroken`] error.
    pub fn finish(&mut self) -> Result<Bytes, ClassifiedError> {
        self.sse.finish()
    }

    /// An error held back by [`push`](Self::push) behind events it
    /// returned.
    pub fn take_error(&mut self) -> Option<ClassifiedError> {
        self.sse.take_error()
    }

    /// Has the stream ended (`data: [DONE]`, an error, or
    /// [`finish`](Self::finish))?
    pub fn is_finished(&self) -> bool {
        self.sse.is_finished()
    }
}

/// `data: [DONE]` ends the stream; ending before it is a broken stream
/// (the default [`end`](EventTranslator::end)).
impl EventTranslator for OpenAiEvents {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<Flow, ClassifiedError> {
        if event.is_done() {
            self.done(out)?;
            return Ok(Flow::Stop);
        }
        self.chunk(event, out)?;
        Ok(Flow::Continue)
    }
}

impl OpenAiEvents {
    /// One chunk (or error event) of the stream.
    fn chunk(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<(), ClassifiedError> {
        let data = event.data.as_bytes();
        if event.event.as_deref() == Some("error") {
            return Err(stream_error(data, &self.classifier));
        }
        let chunk: Chunk<'_> = serde_json::from_slice(data).map_err(|e| {
            broken(ProviderError::invalid_response(format!(
                "unreadable stream chunk: {e}"
            )))
        })?;
        if chunk.error.is_some() {
            return Err(stream_error(data, &self.classifier));
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        if !self.started {
            self.started = true;
            self.start(out, chunk.id.as_deref());
        }
        let Some(choice) = chunk.choices.iter().find(|choice| choice.index == 0) else {
            return Ok(());
        };
        if let Some(delta) = &choice.delta {
            for text in [delta.content.as_deref(), delta.refusal.as_deref()]
                .into_iter()
                .flatten()
            {
                if !text.is_empty() {
                    self.text(out, text);
                }
            }
            for call in delta.tool_calls.iter().flatten() {
                self.tool_call(out, call)?;
            }
        }
        if let Some(reason) = choice.finish_reason.as_deref() {
            self.close(out);
            self.stop_reason = Some(answer_stop_reason(Some(reason), !self.tools.is_empty()));
        }
        Ok(())
    }

    fn start(&mut self, out: &mut Vec<u8>, id: Option<&str>) {
        let usage = self.usage.unwrap_or_default().to_anthropic();
        let start = json!({
            "type": "message_start",
            "message": {
                "id": message_id(id),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage,
            },
        });
        write_event(out, "message_start", &start);
    }

    fn text(&mut self, out: &mut Vec<u8>, text: &str) {
        let block = if let Some(Open::Text { block }) = self.open {
            block
        } else {
            self.close(out);
            let block = self.open_block(out, &json!({ "type": "text", "text": "" }));
            self.open = Some(Open::Text { block });
            block
        };
        let delta = json!({
            "type": "content_block_delta",
            "index": block,
            "delta": { "type": "text_delta", "text": text },
        });
        write_event(out, "content_block_delta", &delta);
    }

    fn tool_call(
        &mut self,
        out: &mut Vec<u8>,
        call: &ToolDelta<'_>,
    ) -> Result<(), ClassifiedError> {
        let function = call.function.as_ref();
        let block = match self.open {
            Some(Open::Tool { block, call: open }) if open == call.index => block,
            _ if self.tools.contains(&call.index) => {
                return Err(broken(ProviderError::invalid_response(format!(
                    "tool call {} continued after another block started",
                    call.index
                ))));
            }
            _ => {
                let name = function
                    .and_then(|f| f.name.as_deref())
                    .filter(|name| !name.is_empty())
                    .ok_or_else(|| {
                        broken(ProviderError::invalid_response(format!(
                            "tool call {} started without a name",
                            call.index
                        )))
                    })?;
                self.close(out);
                let id = match call.id.as_deref().filter(|id| !id.is_empty()) {
                    Some(id) => id.to_owned(),
                    None => format!("toolu_{}", self.next_block),
                };
                let block = self.open_block(
                    out,
                    &json!({ "type": "tool_use", "id": id, "name": name, "input": {} }),
                );
                self.tools.insert(call.index);
                self.open = Some(Open::Tool {
                    block,
                    call: call.index,
                });
                block
            }
        };
        if let Some(arguments) = function.and_then(|f| f.arguments.as_deref())
            && !arguments.is_empty()
        {
            let delta = json!({
                "type": "content_block_delta",
                "index": block,
                "delta": { "type": "input_json_delta", "partial_json": arguments },
            });
            write_event(out, "content_block_delta", &delta);
        }
        Ok(())
    }

    /// Writes `content_block_start` for a new block; returns its index.
    fn open_block(&mut self, out: &mut Vec<u8>, content_block: &Value) -> u64 {
        let block = self.next_block;
        self.next_block = block.saturating_add(1);
        let start = json!({
            "type": "content_block_start",
            "index": block,
            "content_block": content_block,
        });
        write_event(out, "content_block_start", &start);
        block
    }

    /// Writes `content_block_stop` for the open block, if any.
    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(open) = self.open.take() {
            let stop = json!({ "type": "content_block_stop", "index": open.block() });
            write_event(out, "content_block_stop", &stop);
        }
    }

    /// `data: [DONE]`: `message_delta` and `message_stop`, if the answer
    /// finished.
    fn done(&mut self, out: &mut Vec<u8>) -> Result<(), ClassifiedError> {
        let Some(stop_reason) = self.stop_reason else {
            return Err(broken(ProviderError::invalid_response(
                "the stream ended without a finish reason",
            )));
        };
        self.close(out);
        let usage = self.usage.map_or_else(
            || json!({ "output_tokens": 0 }),
            |usage| Value::Object(usage.to_anthropic()),
        );
        let delta = json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason, "stop_sequence": null },
            "usage": usage,
        });
        write_event(out, "message_delta", &delta);
        write_event(out, "message_stop", &json!({ "type": "message_stop" }));
        Ok(())
    }
}

fn write_event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Writing a JSON value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

fn broken(error: ProviderError) -> ClassifiedError {
    error.classified(Outcome::Failure(FailureKind::StreamBroken))
}

/// An error event, classified as `classifier` reads an error envelope in a
/// 2xx body: overloaded, rate limited, context length exceeded, content
/// filtered, or else a broken stream.
fn stream_error(data: &[u8], classifier: &SharedClassifier) -> ClassifiedError {
    let outcome = match classifier.classify_parts(StatusCode::OK, &HeaderMap::new(), Some(data)) {
        Outcome::Success => Outcome::Failure(FailureKind::StreamBroken),
        outcome => outcome,
    };
    let error = serde_json::from_slice::<ErrorEvent>(data)
        .ok()
        .and_then(|event| event.error);
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let (kind, message) = match error {
        Some(error) => (
            text(error.get("type"))
                .or_else(|| text(error.get("code")))
                .unwrap_or_else(|| "unknown".to_owned()),
            text(error.get("message")).unwrap_or_default(),
        ),
        None => ("unknown".to_owned(), String::new()),
    };
    ProviderError::StreamError { kind, message }.classified(outcome)
}

#[derive(Deserialize)]
struct ErrorEvent {
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    usage: Option<ChatUsage>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow, default)]
    delta: Option<ChunkDelta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChunkDelta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}
