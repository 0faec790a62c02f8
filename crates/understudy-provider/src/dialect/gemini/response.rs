//! Gemini `GenerateContentResponse` → OpenAI chat completion.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::dialect::completion::{self, Completion, tool_call};
use crate::error::ProviderError;

/// A `GenerateContentResponse`, as much of it as the translation reads.
/// Streams send one per event.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentResponse {
    #[serde(default)]
    pub(crate) candidates: Vec<Candidate>,
    #[serde(default)]
    pub(crate) prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub(crate) usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub(crate) model_version: Option<String>,
    #[serde(default)]
    pub(crate) response_id: Option<String>,
}

impl GenerateContentResponse {
    /// Why the prompt was blocked, when it was and no candidate came back.
    pub(crate) fn block_reason(&self) -> Option<&str> {
        if !self.candidates.is_empty() {
            return None;
        }
        self.prompt_feedback
            .as_ref()
            .and_then(|feedback| feedback.block_reason.as_deref())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    #[serde(default)]
    pub(crate) content: Option<Content>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
}

impl Candidate {
    pub(crate) fn parts(&self) -> &[Part] {
        self.content.as_ref().map_or(&[], |c| c.parts.as_slice())
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Content {
    #[serde(default)]
    pub(crate) parts: Vec<Part>,
}

/// One part of a candidate's content. Parts other than text and function
/// calls (inline data, executable code, …) have no OpenAI equivalent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Part {
    #[serde(default)]
    pub(crate) text: Option<String>,
    /// A thought summary, not the answer.
    #[serde(default)]
    pub(crate) thought: bool,
    #[serde(default)]
    pub(crate) function_call: Option<FunctionCall>,
}

impl Part {
    /// The answer text of this part (not a thought).
    pub(crate) fn answer_text(&self) -> Option<&str> {
        self.text.as_deref().filter(|_| !self.thought)
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FunctionCall {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) args: Option<Value>,
}

impl FunctionCall {
    /// The OpenAI call id: Gemini's when it gives one, else `call_<index>`.
    pub(crate) fn call_id(&self, index: usize) -> String {
        self.id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("call_{index}"))
    }

    /// The arguments, serialised (`{}` when absent).
    pub(crate) fn arguments(&self) -> String {
        match &self.args {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(args) => args.to_string(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    #[serde(default)]
    pub(crate) block_reason: Option<String>,
}

/// Gemini's token counts. Every field may be absent.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(clippy::struct_field_names)] // Gemini's field names.
pub(crate) struct UsageMetadata {
    #[serde(default)]
    pub(crate) prompt_token_count: Option<u64>,
    #[serde(default)]
    pub(crate) candidates_token_count: Option<u64>,
    #[serde(default)]
    pub(crate) thoughts_token_count: Option<u64>,
    #[serde(default)]
    pub(crate) total_token_count: Option<u64>,
    #[serde(default)]
    pub(crate) cached_content_token_count: Option<u64>,
}

impl UsageMetadata {
    /// The OpenAI `usage` object: thoughts count as completion tokens (and
    /// as `reasoning_tokens`), cached content as `cached_tokens`.
    pub(crate) fn to_openai(self) -> Value {
        let prompt = self.prompt_token_count.unwrap_or(0);
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        let completion = self
            .candidates_token_count
            .unwrap_or(0)
            .saturating_add(thoughts);
        let mut usage = completion::usage(
            prompt,
            completion,
            self.total_token_count,
            self.cached_content_token_count,
        );
        if thoughts > 0 {
            usage["completion_tokens_details"] = json!({ "reasoning_tokens": thoughts });
        }
        usage
    }
}

/// Gemini's `finishReason` → OpenAI's `finish_reason`; `has_tool_calls`
/// says whether the message holds function calls (Gemini ends those with
/// `STOP`, OpenAI with `tool_calls`).
///
/// ```
/// use understudy_provider::dialect::gemini::finish_reason;
///
/// assert_eq!(finish_reason("STOP", false), "stop");
/// assert_eq!(finish_reason("STOP", true), "tool_calls");
/// assert_eq!(finish_reason("MAX_TOKENS", false), "length");
/// assert_eq!(finish_reason("SAFETY", false), "content_filter");
/// assert_eq!(finish_reason("RECITATION", true), "content_filter");
/// assert_eq!(finish_reason("MALFORMED_FUNCTION_CALL", false), "stop");
/// ```
pub fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        _ if is_filtered(reason) => "content_filter",
        _ if has_tool_calls => "tool_calls",
        // STOP, OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL and anything newer.
        _ => "stop",
    }
}

/// Does this `finishReason` mean a content filter stopped the answer?
pub(crate) fn is_filtered(reason: &str) -> bool {
    matches!(
        reason,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
    )
}

/// The completion id: `chatcmpl-` and Gemini's `responseId`, or a
/// process-unique one when Gemini gives none.
pub(crate) fn completion_id(response_id: Option<&str>, created: u64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    match response_id.filter(|id| !id.is_empty()) {
        Some(id) => format!("chatcmpl-{id}"),
        None => format!(
            "chatcmpl-gemini-{created:x}-{:x}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
    }
}

/// Translates a Gemini `GenerateContentResponse` into an OpenAI chat
/// completion: the first candidate's text parts join into
/// `message.content`, its function calls become `message.tool_calls`,
/// `finishReason` becomes `finish_reason` ([`finish_reason`]) and
/// `usageMetadata` becomes `usage`. A prompt Gemini blocked (no candidate,
/// `promptFeedback.blockReason`) is a completion with `null` content and
/// `finish_reason: "content_filter"`. `model` is the model asked for, used
/// when the answer names none.
///
/// # Example
///
/// ```
/// use understudy_provider::dialect::gemini::translate_response;
///
/// let body = br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi!"}]},
///   "finishReason":"STOP","index":0}],
///   "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":3,"totalTokenCount":13},
///   "modelVersion":"gemini-2.5-flash","responseId":"abc"}"#;
/// let out = translate_response(body, "gemini-2.5-flash", 1_700_000_000).unwrap();
/// let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
/// assert_eq!(json["id"], "chatcmpl-abc");
/// assert_eq!(json["choices"][0]["message"]["content"], "Hi!");
/// assert_eq!(json["choices"][0]["finish_reason"], "stop");
/// assert_eq!(json["usage"]["total_tokens"], 13);
/// ```
pub fn translate_response(body: &[u8], model: &str, created: u64) -> Result<Bytes, ProviderError> {
    let response: GenerateContentResponse = serde_json::from_slice(body).map_err(|e| {
        ProviderError::invalid_response(format!("not a GenerateContentResponse: {e}"))
    })?;
    let (content, tool_calls, finish) = match response.candidates.first() {
        Some(candidate) => {
            let mut text: Option<String> = None;
            let mut tool_calls = Vec::new();
            for part in candidate.parts() {
                if let Some(part_text) = part.answer_text() {
                    text.get_or_insert_with(String::new).push_str(part_text);
                }
                if let Some(call) = &part.function_call {
                    let id = call.call_id(tool_calls.len());
                    tool_calls.push(tool_call(&id, &call.name, &call.arguments()));
                }
            }
            let finish = candidate
                .finish_reason
                .as_deref()
                .map(|reason| finish_reason(reason, !tool_calls.is_empty()));
            (text, tool_calls, finish)
        }
        None if response.block_reason().is_some() => (None, Vec::new(), Some("content_filter")),
        None => {
            return Err(ProviderError::invalid_response(
                "a GenerateContentResponse without candidates",
            ));
        }
    };
    Completion {
        id: &completion_id(response.response_id.as_deref(), created),
        created,
        model: response.model_version.as_deref().unwrap_or(model),
        content,
        tool_calls,
        finish_reason: finish,
        usage: response.usage_metadata.unwrap_or_default().to_openai(),
    }
    .into_bytes()
}
