//! Gemini `streamGenerateContent?alt=sse` events → OpenAI
//! `chat.completion.chunk` events.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::json;
use understudy_core::sse::SseEvent;
use understudy_core::{ClassifiedError, Classify, FailureKind, Outcome, SharedClassifier};

use super::error::Envelope;
use super::response::{GenerateContentResponse, UsageMetadata, completion_id, finish_reason};
use crate::dialect::chunk::{ChunkWriter, upstream_label};
use crate::dialect::sse_translate::{EventTranslator, Flow, SseTranslation};
use crate::dialect::stream_body::StreamTranslate;
use crate::error::ProviderError;

/// Translates Gemini's SSE events (each `data:` a whole
/// `GenerateContentResponse`) into OpenAI chat-completion chunks,
/// incrementally, as bytes arrive.
///
/// | Gemini event                                    | OpenAI chunk(s)                                              |
/// |-------------------------------------------------|--------------------------------------------------------------|
/// | the first event                                 | `delta: {"role":"assistant","content":""}`                   |
/// | a `text` part (not a thought)                   | `delta: {"content":…}`                                       |
/// | a `functionCall` part                           | `delta.tool_calls: [{index, id, type:"function", function:{name, arguments}}]`, the whole call at once |
/// | a candidate's `finishReason`                    | `delta: {}`, `finish_reason` by [`finish_reason`](super::finish_reason) |
/// | `usageMetadata`                                 | kept; the last one is the usage chunk (when asked for)       |
/// | the end of the stream, after a `finishReason`   | the usage chunk, then `data: [DONE]`                         |
/// | the end of the stream, before a `finishReason`  | a [`FailureKind::StreamBroken`] error                        |
/// | a blocked prompt (`promptFeedback.blockReason`, no candidate) | a [`ClientErrorKind::ContentFiltered`](understudy_core::ClientErrorKind::ContentFiltered) error |
/// | `{"error": {…}}`                                | an error classified by its `status` (as an error answer would be) |
///
/// Every chunk carries the same `id` (`chatcmpl-` and Gemini's
/// `responseId`), `created` and `model` (Gemini's `modelVersion`, else the
/// model asked for). A line or event longer than the
/// [`max_event_bytes`](Self::max_event_bytes) bound is a
/// [`FailureKind::StreamBroken`] error.
///
/// # Example
///
/// ```
/// use understudy_provider::dialect::gemini::GeminiStreamTranslator;
///
/// let mut translator = GeminiStreamTranslator::new("gemini-2.5-flash", true);
/// let out = translator.push(concat!(
///     "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hi\"}]}}],",
///     "\"responseId\":\"r1\",\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n",
///     "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"!\"}]},\"finishReason\":\"STOP\"}],",
///     "\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":2,\"totalTokenCount\":6}}\r\n\r\n",
/// ).as_bytes()).unwrap();
/// let text = std::str::from_utf8(&out).unwrap();
/// assert!(text.contains(r#""delta":{"content":"","role":"assistant"}"#));
/// assert!(text.contains(r#""finish_reason":"stop""#));
/// let end = translator.finish().unwrap();
/// let end = std::str::from_utf8(&end).unwrap();
/// assert!(end.contains(r#""total_tokens":6"#));
/// assert!(end.ends_with("data: [DONE]\n\n"));
/// ```
#[derive(Debug)]
pub struct GeminiStreamTranslator {
    sse: SseTranslation<GeminiEvents>,
}

/// The translation of Gemini's events, one by one.
#[derive(Debug)]
struct GeminiEvents {
    model: String,
    created: u64,
    include_usage: bool,
    usage_chunk: bool,
    /// Set by the first event.
    writer: Option<ChunkWriter>,
    tool_calls: usize,
    usage: Option<UsageMetadata>,
    finish_seen: bool,
    classifier: SharedClassifier,
}

impl GeminiStreamTranslator {
    /// A translator for a stream asked of `model`; `include_usage` says
    /// whether the caller asked for `stream_options.include_usage`.
    pub fn new(model: impl Into<String>, include_usage: bool) -> Self {
        Self::with_created(model, include_usage, super::unix_now())
    }

    /// A translator whose chunks carry this `created` timestamp.
    pub fn with_created(model: impl Into<String>, include_usage: bool, created: u64) -> Self {
        Self {
            sse: SseTranslation::new(GeminiEvents {
                model: model.into(),
                created,
                include_usage,
                usage_chunk: false,
                writer: None,
                tool_calls: 0,
                usage: None,
                finish_seen: false,
                classifier: SharedClassifier::default(),
            }),
        }
    }

    /// Reads error events Gemini's envelope does not explain with
    /// `classifier` instead of
    /// [`LlmClassifier`](understudy_core::LlmClassifier).
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

    /// A line or an event's data longer than `bytes` is a
    /// [`FailureKind::StreamBroken`] error. Defaults to
    /// [`DEFAULT_MAX_EVENT_BYTES`](understudy_core::sse::DEFAULT_MAX_EVENT_BYTES).
    #[must_use]
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.sse.set_max_event_bytes(bytes);
        self
    }

    /// Feeds bytes of the Gemini stream as they arrive; returns the OpenAI
    /// SSE bytes for the events they completed, possibly none.
    ///
    /// An error event, a blocked prompt, or an event that cannot be read
    /// is returned as the error, a [`ClassifiedError`]. When chunks were
    /// translated before it in the same input, those are returned first
    /// and the error by the next call to `push` or
    /// [`finish`](Self::finish).
    pub fn push(&mut self, input: &[u8]) -> Result<Bytes, ClassifiedError> {
        self.sse.push(input)
    }

    /// Ends the translation when the Gemini stream ends: the usage chunk
    /// (when asked for) and `data: [DONE]`, or, when no `finishReason`
    /// came, a [`FailureKind::StreamBroken`] error.
    pub fn finish(&mut self) -> Result<Bytes, ClassifiedError> {
        self.sse.finish()
    }
}

impl EventTranslator for GeminiEvents {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<Flow, ClassifiedError> {
        // Gemini ends its stream without `[DONE]`; one is ignored.
        if !event.is_done() {
            self.handle(event.data.as_bytes(), out)?;
        }
        Ok(Flow::Continue)
    }

    /// The usage chunk (when asked for) and `data: [DONE]` after a
    /// `finishReason`; a broken stream before one.
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), ClassifiedError> {
        let writer = match &self.writer {
            Some(writer) if self.finish_seen => writer,
            _ => {
                return Err(ProviderError::StreamCut
                    .classified(Outcome::Failure(FailureKind::StreamBroken)));
            }
        };
        writer.usage(out, &self.usage.unwrap_or_default().to_openai());
        ChunkWriter::done(out);
        Ok(())
    }
}

impl GeminiEvents {
    fn handle(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), ClassifiedError> {
        if let Ok(envelope) = serde_json::from_slice::<Envelope>(data) {
            return Err(self.stream_error(&envelope, data));
        }
        let event: GenerateContentResponse = serde_json::from_slice(data).map_err(|e| {
            ProviderError::invalid_response(format!("unreadable stream event: {e}"))
                .classified(Outcome::Failure(FailureKind::StreamBroken))
        })?;
        if let Some(reason) = event.block_reason() {
            return Err(ProviderError::StreamError {
                kind: "prompt_blocked".to_owned(),
                message: format!("the prompt was blocked ({reason})"),
            }
            .classified(Outcome::ClientError(
                understudy_core::ClientErrorKind::ContentFiltered,
            )));
        }
        if let Some(usage) = event.usage_metadata {
            self.usage = Some(usage);
        }
        if self.writer.is_none() {
            // Every chunk repeats both: an unfit one is not the stream's.
            let id = completion_id(
                event.response_id.as_deref().and_then(upstream_label),
                self.created,
            );
            let model = event
                .model_version
                .as_deref()
                .and_then(upstream_label)
                .map_or_else(|| self.model.clone(), str::to_owned);
            let writer = ChunkWriter::new(id, self.created, model, self.include_usage)
                .with_usage_chunk(self.usage_chunk);
            writer.delta(out, &json!({ "role": "assistant", "content": "" }), None);
            self.writer = Some(writer);
        }
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        if self.finish_seen {
            // Nothing follows the finish reason but usage.
            return Ok(());
        }
        let Some(candidate) = event.candidates.first() else {
            return Ok(());
        };
        for part in candidate.parts() {
            if let Some(text) = part.answer_text().filter(|t| !t.is_empty()) {
                writer.delta(out, &json!({ "content": text }), None);
            }
            if let Some(call) = &part.function_call {
                let index = self.tool_calls;
                self.tool_calls = self.tool_calls.saturating_add(1);
                let delta = json!({ "tool_calls": [{
                    "index": index,
                    "id": call.call_id(index),
                    "type": "function",
                    "function": { "name": call.name, "arguments": call.arguments() },
                }]});
                writer.delta(out, &delta, None);
            }
        }
        if let Some(reason) = candidate.finish_reason.as_deref() {
            self.finish_seen = true;
            let reason = finish_reason(reason, self.tool_calls > 0);
            writer.delta(out, &json!({}), Some(reason));
        }
        Ok(())
    }

    /// An `{"error": …}` event: classified by its status as an error
    /// answer with its `code` would be; by the classifier when the status
    /// says nothing; a broken stream when neither does.
    fn stream_error(&self, envelope: &Envelope, data: &[u8]) -> ClassifiedError {
        let status = envelope
            .error
            .code
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let outcome = envelope
            .error
            .outcome(status, &HeaderMap::new())
            .unwrap_or_else(|| {
                self.classifier
                    .classify_parts(status, &HeaderMap::new(), Some(data))
            });
        let outcome = match outcome {
            Outcome::Success => Outcome::Failure(FailureKind::StreamBroken),
            outcome => outcome,
        };
        ProviderError::StreamError {
            kind: envelope
                .error
                .status
                .clone()
                .unwrap_or_else(|| "UNKNOWN".to_owned()),
            message: envelope.error.message.clone().unwrap_or_default(),
        }
        .classified(outcome)
    }
}

impl StreamTranslate for GeminiStreamTranslator {
    fn push(&mut self, input: &[u8]) -> Result<Bytes, ClassifiedError> {
        Self::push(self, input)
    }

    fn finish(&mut self) -> Result<Bytes, ClassifiedError> {
        Self::finish(self)
    }

    fn take_error(&mut self) -> Option<ClassifiedError> {
        self.sse.take_error()
    }

    fn is_finished(&self) -> bool {
        self.sse.is_finished()
    }
}
