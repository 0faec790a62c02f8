//! Translation between the OpenAI chat-completions and embeddings APIs
//! and the Google AI Gemini API (`generateContent`,
//! `batchEmbedContents`), natively (not through Gemini's
//! OpenAI-compatible endpoint).
//!
//! Callers speak OpenAI; a Gemini target, whose [`Dialect`] is
//! [`GeminiDialect`], gets the request translated ([`translate_request`])
//! and sent to `{base_url}/models/{model}:generateContent`, or for a
//! stream to `{base_url}/models/{model}:streamGenerateContent?alt=sse`,
//! with the key in `x-goog-api-key` (never in the URL, never as
//! `Authorization`). Its answers are translated back
//! ([`translate_response`], [`GeminiStreamTranslator`],
//! [`translate_error`]). The base URL of Google's API is
//! `https://generativelanguage.googleapis.com/v1beta`; probes list its
//! models (`GET {base_url}/models`). Embeddings: see
//! [below](#embeddings).
//!
//! # Request: what maps to what
//!
//! | OpenAI                                                 | Gemini                                                  |
//! |--------------------------------------------------------|---------------------------------------------------------|
//! | `model`                                                | the target's model, in the path                         |
//! | `system` and `developer` messages (anywhere)           | `systemInstruction: {parts: [{text}]}`                  |
//! | `user` text, `text` parts                              | a `user` turn, `{text}` parts                           |
//! | `image_url` part, `data:<type>;base64,…` URL           | `{inlineData: {mimeType, data}}`                        |
//! | `image_url` part, a Gemini Files API URI (`https://generativelanguage.googleapis.com/…`) | `{fileData: {fileUri}}` |
//! | `input_audio` part (`wav`, `mp3`)                      | `{inlineData: {mimeType: "audio/wav" \| "audio/mp3", data}}` |
//! | `file` part with base64 `file_data`                    | `{inlineData: {mimeType, data}}`                        |
//! | `assistant` content and `tool_calls`                   | a `model` turn: `{text}`, then `{functionCall: {name, args}}` (`arguments` parsed; not a JSON object: `{}`) |
//! | `tool` messages                                        | `{functionResponse: {name, response}}` in a `user` turn; `name` from the assistant call with that `tool_call_id`; `response` the content when it is a JSON object, else `{"content": text}` |
//! | consecutive turns of one role                          | one turn                                                |
//! | `tools` (`type: function`)                             | `tools: [{functionDeclarations: [{name, description, parameters}]}]`, `parameters` converted to Gemini's schema subset (see below); an object schema without properties is left out |
//! | `tool_choice` `auto` / `none` / `required`             | `toolConfig.functionCallingConfig.mode` `AUTO` / `NONE` / `ANY` |
//! | `tool_choice` naming a function                        | `mode: ANY`, `allowedFunctionNames: [name]`             |
//! | `max_completion_tokens`, else `max_tokens`             | `generationConfig.maxOutputTokens` (none sent when the caller sets none) |
//! | `temperature`, `top_p`, `top_k`, `seed`                | `temperature`, `topP`, `topK`, `seed`                   |
//! | `presence_penalty`, `frequency_penalty`                | `presencePenalty`, `frequencyPenalty`                   |
//! | `stop` (string or array)                               | `stopSequences`                                         |
//! | `response_format` `json_object`                        | `responseMimeType: "application/json"`                  |
//! | `response_format` `json_schema`                        | `responseMimeType: "application/json"`, `responseSchema` (the schema converted) |
//! | `stream`                                               | the `streamGenerateContent?alt=sse` endpoint            |
//! | `stream_options.include_usage`                         | kept by the service: decides the usage chunk            |
//! | `n: 1`, `logprobs: false`, `modalities: ["text"]`      | nothing (what Gemini does anyway)                       |
//!
//! Schemas (tool `parameters`, `responseSchema`) are JSON Schema on the
//! OpenAI side and an `OpenAPI` 3.0 subset on Gemini's: types are
//! upper-cased, `["T", "null"]` and `anyOf [T, null]` become `nullable`,
//! local `$ref`s are inlined, and keywords Gemini rejects
//! (`additionalProperties`, `$schema`, `strict`, `$defs`, …) are dropped.
//! The full table is in the schema conversion's source (`schema.rs`).
//!
//! # Refused (a 400 naming the field; nothing is sent)
//!
//! `n` other than 1 (one candidate is asked for, and the stream reads one);
//! `logprobs: true`, `top_logprobs`, a non-empty `logit_bias`; `audio` and
//! `modalities` other than `text`; `web_search_options`; the legacy
//! `functions` / `function_call` fields and the `function` role; any role
//! other than `system`, `developer`, `user`, `assistant`, `tool`; tools
//! other than functions; image links other than data URLs and Gemini Files
//! API URIs (Gemini does not fetch them); files given by `file_id`;
//! content part types other than `text`, `image_url`, `input_audio` and
//! `file` (`refusal` parts read as text in assistant turns); a `tool`
//! message whose `tool_call_id` answers no earlier assistant tool call
//! (Gemini needs the function's name); schemas Gemini cannot express
//! (remote or recursive `$ref`, tuple `items`, `allOf` of several).
//!
//! # Dropped deliberately
//!
//! Hints and bookkeeping with no Gemini equivalent, safe to leave out:
//! `user`, `store`, `metadata`, `service_tier`, `safety_identifier`,
//! `prompt_cache_key`, `prompt_cache_retention`, `reasoning_effort`,
//! `verbosity`, `prediction`, `parallel_tool_calls` (Gemini may always
//! call several functions), a function's `strict`, a message's `name`, an
//! image's `detail`, and any field this translation does not know.
//!
//! # Response
//!
//! The first candidate's `text` parts join into `message.content` (`null`
//! when there are none; thought summaries are left out), its
//! `functionCall` parts become `message.tool_calls` (`id` Gemini's when it
//! gives one, else `call_<index>`; `arguments` the serialised `args`),
//! `finishReason` becomes `finish_reason` ([`finish_reason`]: `STOP` is
//! `stop`, or `tool_calls` when the message calls functions; `MAX_TOKENS`
//! is `length`; `SAFETY`, `RECITATION`, `BLOCKLIST`,
//! `PROHIBITED_CONTENT`, `SPII` and `IMAGE_SAFETY` are `content_filter`;
//! anything else is `stop`), and `usageMetadata` becomes `usage`
//! (`promptTokenCount`; `candidatesTokenCount` plus `thoughtsTokenCount`,
//! which is also `reasoning_tokens`; `totalTokenCount`;
//! `cachedContentTokenCount` as `cached_tokens`). The `id` is `chatcmpl-`
//! and Gemini's `responseId`, the `model` Gemini's `modelVersion` (else
//! the target's model), `created` the time of the answer. Streams: see
//! [`GeminiStreamTranslator`].
//!
//! # Embeddings
//!
//! An [`Operation::Embeddings`] request (OpenAI's `POST /v1/embeddings`)
//! goes to `{base_url}/models/{model}:batchEmbedContents`, translated by
//! [`translate_embeddings_request`]; its answer is read whole and
//! translated by [`translate_embeddings_response`]:
//!
//! | OpenAI                                  | Gemini                                                  |
//! |-----------------------------------------|---------------------------------------------------------|
//! | `model`                                 | the target's model, in the path and as each request's `model: "models/{model}"` |
//! | `input` (a string, or an array of strings) | `requests: [{model, content: {parts: [{text}]}}]`, one per string, in order |
//! | `dimensions`                            | each request's `outputDimensionality`                   |
//! | `encoding_format` `float` (or none)     | nothing: Gemini answers floats                          |
//! | `encoding_format` `base64`              | nothing sent; the service encodes the translated floats (little-endian `f32`, standard padded base64) |
//! | answer: `embeddings[n].values`          | `data[n]`: `{object: "embedding", index: n, embedding}` |
//! | answer: (no token counts)               | `usage: {prompt_tokens: 0, total_tokens: 0}`            |
//!
//! Refused (a 400 naming the field; nothing is sent): `input` as tokens
//! (`[int]`, `[[int]]`: Gemini embeds text only), a missing or empty
//! `input` (or an empty string in it), `dimensions` other than a positive
//! integer, `encoding_format` other than `float` and `base64`. Dropped:
//! `user` (a hint Gemini has no field for) and any field the translation
//! does not know. Gemini's batch answer counts no tokens, so `usage` is
//! zero: meter embeddings by input, not by the answer. An answer without
//! embeddings is a broken answer; the translation does not compare the
//! count with the inputs (the answer is translated without the request).
//! Errors are Google's envelope, classified and rewritten as below.
//!
//! # Errors and content filtering
//!
//! Google's error envelope
//! (`{"error":{"code","message","status","details"}}`) is classified by
//! its `status`:
//!
//! | Google `status` (HTTP)                  | [`Outcome`]                                                 |
//! |-----------------------------------------|-------------------------------------------------------------|
//! | `RESOURCE_EXHAUSTED` (429)              | rate limited, waiting `RetryInfo.retryDelay` (`"2s"`, `"0.5s"`) when given, else what the headers say |
//! | `UNAVAILABLE` (503)                     | overloaded                                                  |
//! | `INTERNAL`, `UNKNOWN`, `DATA_LOSS` (500) | server failure                                             |
//! | `DEADLINE_EXCEEDED` (504)               | timeout                                                     |
//! | `INVALID_ARGUMENT` (400) "input token count … exceeds the maximum" | context length exceeded           |
//! | `INVALID_ARGUMENT`, `OUT_OF_RANGE`, `NOT_FOUND`, `ALREADY_EXISTS` | the request rejected (the caller's fault) |
//! | an invalid or blocked API key (`API_KEY_INVALID`), `UNAUTHENTICATED`, `PERMISSION_DENIED` | the gateway's credentials refused (answered as a 502 without Google's words) |
//! | `FAILED_PRECONDITION` (400: region or billing) | server failure: the provider cannot serve, the caller did nothing wrong |
//! | anything else                           | what [`LlmClassifier`](understudy_core::LlmClassifier) says |
//!
//! and rewritten in the OpenAI error shape with Google's message
//! ([`translate_error`]). A prompt Gemini blocks answers 200 with
//! `promptFeedback.blockReason` and no candidate: a whole answer becomes a
//! completion with `null` content and `finish_reason: "content_filter"`,
//! classified [`ContentFiltered`](understudy_core::ClientErrorKind::ContentFiltered)
//! (as is a candidate a filter stopped before any content), so a route
//! that fails over on filtering does; a stream ends with an error so
//! classified before any content. An `{"error": …}` event inside a stream
//! becomes an error classified by its `status` and `code`.

mod embed;
mod error;
mod request;
mod response;
mod schema;
mod stream;

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};
use understudy_core::{Outcome, ResponseBody};

pub use self::embed::{translate_embeddings_request, translate_embeddings_response};
pub use self::error::translate_error;
pub use self::request::{TranslatedRequest, translate_request};
pub use self::response::{finish_reason, translate_response};
pub use self::stream::GeminiStreamTranslator;
use super::completion::unix_now;
use super::stream_body::TranslatedBody;
use super::{
    AnswerContext, Dialect, Operation, ShapedError, UpstreamRequest, key_header,
    unsupported_operation,
};
use crate::error::{ConfigError, ProviderError};
use crate::key::ApiKey;

/// The base URL of the Google AI Gemini API.
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

/// The dialect of the Google AI Gemini API, named `gemini`.
///
/// - Requests go to `{base_url}/models/{model}:generateContent`, streams
///   to `{base_url}/models/{model}:streamGenerateContent?alt=sse`, with
///   the key in `x-goog-api-key`; probes `GET {base_url}/models`.
/// - The request is translated by [`translate_request`]; no
///   `maxOutputTokens` is sent unless the caller sets a limit.
/// - Answers are translated by [`translate_response`], streams by
///   [`GeminiStreamTranslator`], errors by [`translate_error`].
/// - Embeddings go to `{base_url}/models/{model}:batchEmbedContents`,
///   translated by [`translate_embeddings_request`] and
///   [`translate_embeddings_response`].
///
/// ```
/// use understudy_provider::dialect::gemini::GeminiDialect;
/// use understudy_provider::dialect::{Dialect, Operation, Reply};
///
/// let dialect = GeminiDialect::new();
/// assert_eq!(
///     dialect.endpoint(Operation::ChatCompletions, "gemini-2.5-flash", false).as_deref(),
///     Some("models/gemini-2.5-flash:generateContent"),
/// );
/// assert_eq!(
///     dialect.endpoint(Operation::ChatCompletions, "gemini-2.5-flash", true).as_deref(),
///     Some("models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
/// );
/// assert_eq!(
///     dialect.endpoint(Operation::Embeddings, "gemini-embedding-001", false).as_deref(),
///     Some("models/gemini-embedding-001:batchEmbedContents"),
/// );
/// let upstream = dialect
///     .translate_request(
///         Operation::ChatCompletions,
///         br#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#,
///         "gemini-2.5-flash",
///     )
///     .unwrap();
/// assert_eq!(upstream.reply, Reply::Stream { include_usage: false });
/// let body: serde_json::Value = serde_json::from_slice(&upstream.body).unwrap();
/// assert_eq!(body["contents"][0]["parts"][0]["text"], "Hi");
/// assert!(body.get("generationConfig").is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct GeminiDialect {
    _priv: (),
}

impl GeminiDialect {
    /// The dialect.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl Dialect for GeminiDialect {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn endpoint(&self, operation: Operation, model: &str, stream: bool) -> Option<Cow<'_, str>> {
        // A model may be configured as Google names it, `models/…`.
        let model = model.strip_prefix("models/").unwrap_or(model);
        match operation {
            Operation::ChatCompletions => Some(Cow::Owned(if stream {
                format!("models/{model}:streamGenerateContent?alt=sse")
            } else {
                format!("models/{model}:generateContent")
            })),
            Operation::Embeddings => Some(Cow::Owned(format!("models/{model}:batchEmbedContents"))),
            _ => None,
        }
    }

    fn auth_headers(&self, key: &ApiKey) -> Result<HeaderMap, ConfigError> {
        key_header(HeaderName::from_static("x-goog-api-key"), key.expose())
    }

    fn translate_request(
        &self,
        operation: Operation,
        body: &[u8],
        model: &str,
    ) -> Result<UpstreamRequest, ProviderError> {
        match operation {
            Operation::ChatCompletions => {
                let translated = translate_request(body)?;
                Ok(UpstreamRequest::translated(
                    translated.body,
                    translated.stream,
                    translated.include_usage,
                ))
            }
            Operation::Embeddings => {
                translate_embeddings_request(body, model).map(UpstreamRequest::whole)
            }
            operation => Err(unsupported_operation(self.name(), operation)),
        }
    }

    fn translate_response(
        &self,
        body: Bytes,
        context: &AnswerContext,
    ) -> Result<Bytes, ProviderError> {
        match context.operation {
            Operation::ChatCompletions => translate_response(&body, &context.model, unix_now()),
            Operation::Embeddings => translate_embeddings_response(&body, &context.model),
            operation => Err(unsupported_operation(self.name(), operation)),
        }
    }

    fn translate_stream(&self, body: ResponseBody, context: &AnswerContext) -> ResponseBody {
        let translator = GeminiStreamTranslator::new(&*context.model, context.include_usage)
            .usage_chunk(context.usage_chunk)
            .classifier(context.classifier.clone())
            .max_event_bytes(context.max_event_bytes);
        ResponseBody::new(TranslatedBody::new(body, translator))
    }

    fn shape_error(
        &self,
        status: StatusCode,
        _headers: &HeaderMap,
        outcome: Outcome,
        body: &[u8],
    ) -> ShapedError {
        ShapedError::Rewritten(translate_error(status, outcome, body))
    }

    fn classify_hint(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<Outcome> {
        error::classify(status, headers, body)
    }
}

#[cfg(test)]
mod tests;
