//! Translation between the OpenAI chat-completions API and Anthropic's
//! Messages API.
//!
//! Callers speak OpenAI; an Anthropic target, whose [`Dialect`] is
//! [`AnthropicDialect`], gets the request translated
//! ([`translate_request`]) and sent to `{base_url}/messages` with
//! `x-api-key` and `anthropic-version`, and its answers translated back
//! ([`translate_response`], [`AnthropicStreamTranslator`],
//! [`translate_error`]).
//!
//! # Request: what maps to what
//!
//! | OpenAI                                                 | Anthropic                                               |
//! |--------------------------------------------------------|---------------------------------------------------------|
//! | `model`                                                | the target's upstream model                             |
//! | `system` and `developer` messages (anywhere)           | top-level `system` (a string, or text blocks when several or cached) |
//! | `user` text, `text` parts                              | `user` turn, `text` blocks (`cache_control` kept)       |
//! | `image_url` part, `data:<type>;base64,…` URL           | `image` block, `base64` source                          |
//! | `image_url` part, `https://…` URL                      | `image` block, `url` source                             |
//! | `file` part with base64 `file_data`                    | `document` block, `base64` source                       |
//! | `assistant` content and `tool_calls`                   | `assistant` turn: `text` then `tool_use` blocks (`arguments` parsed into `input`) |
//! | `tool` messages                                        | `tool_result` blocks in a `user` turn                   |
//! | consecutive turns of one role                          | one turn (Anthropic needs alternating roles)            |
//! | `max_completion_tokens`, else `max_tokens`, else the target's default | `max_tokens` (required by Anthropic)          |
//! | `stop` (string or array)                               | `stop_sequences`                                        |
//! | `temperature` (0–2)                                    | `temperature`, clamped to Anthropic's 0–1               |
//! | `top_p`, `top_k`                                       | `top_p`, `top_k`                                        |
//! | `stream`                                               | `stream`                                                |
//! | `stream_options.include_usage`                         | kept by the service: decides the usage chunk            |
//! | `tools` (`type: function`)                             | `tools`: `name`, `description`, `input_schema` from `parameters` |
//! | `tool_choice` `auto` / `none` / `required` / named     | `auto` / `none` / `any` / `tool` with `name`            |
//! | `parallel_tool_calls: false`                           | `tool_choice.disable_parallel_tool_use: true`           |
//! | `user`                                                 | `metadata.user_id`                                      |
//! | `response_format` `json_object` / `json_schema`        | a forced tool: `tools` gains `{name: "json_response", description, input_schema: the schema}` ([`FORCED_TOOL_NAME`](crate::dialect::structured::FORCED_TOOL_NAME)), `tool_choice` is `{type: "tool", name: "json_response", disable_parallel_tool_use: true}` |
//! | `response_format` `text`                               | nothing (the default)                                   |
//! | an assistant's `refusal` parts, or its `refusal` when `content` is null | `text` blocks: what it said          |
//!
//! Structured output: the schema's `description` (or a sentence asking for
//! the answer as the tool's input) describes the forced tool. The caller's
//! own tools stay in `tools`, but the forced `tool_choice` replaces the
//! caller's: a `required` or named `tool_choice` beside `response_format`
//! is refused
//! ([`ResponseFormat::check_forced_tool`](crate::dialect::structured::ResponseFormat::check_forced_tool)).
//! A tool of the caller's named `json_response` is refused, with or
//! without `response_format`
//! ([`ResponseFormat::check_reserved_name`](crate::dialect::structured::ResponseFormat::check_reserved_name)):
//! the answer is read by that name.
//! Only one call of the forced tool is allowed, so its input is one JSON
//! value. This translation never enables extended thinking (which
//! Anthropic cannot combine with a forced tool): `reasoning_effort` is
//! dropped, below.
//!
//! # Refused with a 400
//!
//! A request asking for what Anthropic cannot do is refused before
//! anything is sent, with an error naming the field ("`logprobs` is not
//! supported by `anthropic` targets"): answering it without would give
//! the caller less than, or something shaped otherwise than, what it
//! asked for.
//!
//! | Field                                                  | Why                                                     |
//! |--------------------------------------------------------|---------------------------------------------------------|
//! | `n` other than 1                                       | Anthropic returns one choice                            |
//! | `logprobs: true`, `top_logprobs` other than 0          | Anthropic reports no token probabilities                |
//! | `logit_bias` (unless empty)                            | Anthropic has no token biases                           |
//! | `audio`, `modalities` other than `["text"]`, an assistant message's `audio` | Anthropic answers text only        |
//! | `web_search_options`                                   | OpenAI's built-in search; Anthropic's is a server tool this translation does not configure |
//! | `functions` (unless empty), `function_call`, the `function` role, an assistant message's `function_call` | the legacy function-calling API: its answer has the legacy `function_call` shape, which this translation does not write; use `tools` |
//! | `input_audio` parts; parts of a type this translation does not know; parts other than text in `system`, `developer` and `tool` messages, or other than text and `refusal` in `assistant` messages | Anthropic takes no audio; any other part would be content lost |
//! | `file` parts given by `file_id`                        | the file lives in OpenAI's storage; send `file_data`    |
//! | `tools` of a type other than `function`                | OpenAI's built-in and custom tools have no Anthropic equivalent |
//!
//! # Dropped, safe
//!
//! These are not sent (tool call `arguments` that are not a JSON object
//! are sent as `{}`). Each is a hint on
//! sampling, routing, storage or cost, a label, or a value Anthropic
//! cannot take as it is; without it the caller gets an answer of the
//! shape it asked for.
//!
//! | Field                                                  | Why it is safe to drop                                  |
//! |--------------------------------------------------------|---------------------------------------------------------|
//! | `presence_penalty`, `frequency_penalty`                | sampling hints Anthropic does not take                  |
//! | `seed`                                                 | best-effort determinism; Anthropic has none to offer    |
//! | `n: 1`, `logprobs: false`, `top_logprobs: 0`, `logit_bias: {}`, `functions: []`, `modalities: ["text"]` | ask for nothing beyond the default |
//! | `parallel_tool_calls: true`                            | Anthropic's default                                     |
//! | `service_tier`                                         | OpenAI's processing tier                                |
//! | `store`, `metadata`                                    | OpenAI's stored completions; `user` is what reaches Anthropic's `metadata` |
//! | `prediction`                                           | a latency optimisation (predicted output)               |
//! | `reasoning_effort`, `verbosity`                        | how long a reasoning model thinks, how long it answers; the answer has the same shape |
//! | `prompt_cache_key`, `safety_identifier`                | caching and abuse-monitoring hints for OpenAI; Anthropic caches through `cache_control` |
//! | `stream_options` other than `include_usage`            | stream-encoding hints                                   |
//! | `json_schema.strict`, a function's `strict`            | the schema is still sent; Anthropic follows it without OpenAI's guarantee |
//! | a message's `name`                                     | a participant label with no Anthropic equivalent; the message itself is sent |
//! | `image_url.detail`                                     | a resolution hint                                       |
//! | tool call `arguments` that are not a JSON object       | sent as `{}` (Anthropic needs an object); the call and its result stay in the turns |
//! | any top-level field this translation does not know     | OpenAI adds optional fields often, nearly all of them hints; refusing each new one would fail requests at the moment a fallback is needed. A new field that changes what is answered belongs among the refused |
//!
//! # Response
//!
//! `text` blocks join into `message.content` (`null` when there are none),
//! `tool_use` blocks become `message.tool_calls` with `input` serialised as
//! `arguments`, `stop_reason` becomes `finish_reason` ([`finish_reason`]),
//! and `usage` becomes `prompt_tokens` (input tokens, cache reads and
//! cache writes), `completion_tokens` and `total_tokens`, with
//! `prompt_tokens_details.cached_tokens` when Anthropic reports cache
//! reads. The message `id` and `model` are Anthropic's. Thinking blocks and
//! server-tool blocks are dropped. Streams: see
//! [`AnthropicStreamTranslator`].
//!
//! A `tool_use` block named `json_response` is the structured answer:
//! there is no per-request state, so the answer says it (the name is
//! reserved: no caller's tool has it). Its `input`, serialised,
//! is `message.content`, it is not a tool call, and the `tool_use` stop it
//! causes is `finish_reason: "stop"`. In streams its `input_json_delta`
//! fragments are `content` deltas, and the finish chunk says `stop`.
//!
//! # Errors
//!
//! Anthropic's error bodies (`{"type":"error","error":{"type":…,"message":…}}`)
//! are classified by [`understudy_core::LlmClassifier::classify_parts`],
//! which knows them (`overloaded_error` and 529: overloaded,
//! `rate_limit_error` and 429: rate limited, "prompt is too long": context
//! length exceeded), and rewritten in the OpenAI error shape by
//! [`translate_error`]. An `error` event inside a stream becomes a body
//! error carrying the same classification.

mod request;
mod response;
mod stream;

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use understudy_core::{Outcome, ResponseBody};

pub use self::request::{TranslatedRequest, translate_request};
pub use self::response::{finish_reason, translate_error, translate_response};
pub use self::stream::{
    AnthropicStreamBody, AnthropicStreamTranslator, DEFAULT_MAX_BYTES_BEFORE_CONTENT,
};
use super::completion::unix_now;
use super::{
    AnswerContext, Dialect, Operation, ShapedError, UpstreamRequest, key_header, openai,
    unsupported_operation,
};
use crate::error::{ConfigError, ProviderError};
use crate::key::ApiKey;

/// The dialect's name, in logs and in the errors naming what it refuses.
const NAME: &str = "anthropic";

/// The `anthropic-version` header value sent by default.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The `max_tokens` sent when the caller sets none, unless configured
/// otherwise.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The dialect of Anthropic's Messages API, named `anthropic`.
///
/// - Requests go to `{base_url}/messages` with the key in `x-api-key` and
///   `anthropic-version: 2023-06-01` ([`ANTHROPIC_VERSION`]; replace it
///   with [`ProviderService::with_header`](crate::ProviderService::with_header)).
/// - The request is translated by [`translate_request`], with
///   `max_tokens_default` as `max_tokens` when the caller sets none.
/// - Answers are translated by [`translate_response`], streams by
///   [`AnthropicStreamBody`], errors by [`translate_error`].
///
/// ```
/// use understudy_provider::dialect::anthropic::AnthropicDialect;
/// use understudy_provider::dialect::{Dialect, Operation, Reply};
///
/// let dialect = AnthropicDialect::new(1024);
/// assert_eq!(dialect.endpoint(Operation::ChatCompletions, "claude-sonnet-4-5", false).as_deref(), Some("messages"));
/// let upstream = dialect
///     .translate_request(
///         Operation::ChatCompletions,
///         br#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#,
///         "claude-sonnet-4-5",
///     )
///     .unwrap();
/// assert_eq!(upstream.reply, Reply::Stream { include_usage: false });
/// let body: serde_json::Value = serde_json::from_slice(&upstream.body).unwrap();
/// assert_eq!(body["max_tokens"], 1024);
/// ```
#[derive(Clone, Debug)]
pub struct AnthropicDialect {
    max_tokens_default: u32,
}

impl AnthropicDialect {
    /// The dialect, sending `max_tokens_default` as `max_tokens` when the
    /// caller sets none.
    pub const fn new(max_tokens_default: u32) -> Self {
        Self { max_tokens_default }
    }

    /// The `max_tokens` sent when the caller sets none.
    pub const fn max_tokens_default(&self) -> u32 {
        self.max_tokens_default
    }
}

impl Default for AnthropicDialect {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_TOKENS)
    }
}

impl Dialect for AnthropicDialect {
    fn name(&self) -> &'static str {
        NAME
    }

    fn endpoint(&self, operation: Operation, _model: &str, _stream: bool) -> Option<Cow<'_, str>> {
        match operation {
            Operation::ChatCompletions | Operation::Messages => Some(Cow::Borrowed("messages")),
            _ => None,
        }
    }

    fn auth_headers(&self, key: &ApiKey) -> Result<HeaderMap, ConfigError> {
        key_header(HeaderName::from_static("x-api-key"), key.expose())
    }

    fn fixed_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        headers
    }

    fn translate_request(
        &self,
        operation: Operation,
        body: &[u8],
        model: &str,
    ) -> Result<UpstreamRequest, ProviderError> {
        match operation {
            Operation::ChatCompletions => {
                let translated = translate_request(body, model, self.max_tokens_default)?;
                Ok(UpstreamRequest::translated(
                    translated.body,
                    translated.stream,
                    translated.include_usage,
                ))
            }
            // The caller's Messages request, as it came but for `model`.
            Operation::Messages => {
                openai::rewrite_model(body, model).map(UpstreamRequest::pass_through)
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
            Operation::ChatCompletions => translate_response(&body, unix_now()),
            operation => Err(unsupported_operation(self.name(), operation)),
        }
    }

    fn translate_stream(&self, body: ResponseBody, context: &AnswerContext) -> ResponseBody {
        let translator = AnthropicStreamTranslator::new(context.include_usage)
            .usage_chunk(context.usage_chunk)
            .classifier(context.classifier.clone());
        ResponseBody::new(
            AnthropicStreamBody::new(body, translator).max_event_bytes(context.max_event_bytes),
        )
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
}

#[cfg(test)]
mod tests;
