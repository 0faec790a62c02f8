//! Translation between the OpenAI chat-completions API and Anthropic's
//! Messages API.
//!
//! Callers speak OpenAI; an Anthropic target gets the request translated
//! ([`translate_request`]) and answers translated back
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
//!
//! # Dropped deliberately
//!
//! These have no Anthropic equivalent and are not sent: `n` (one choice is
//! returned), `logprobs`, `top_logprobs`, `logit_bias`, `presence_penalty`,
//! `frequency_penalty`, `seed`, `response_format` (JSON mode and schemas),
//! `service_tier`, `store`, `metadata`, `modalities`, `audio`,
//! `prediction`, `reasoning_effort`, `web_search_options`, the legacy
//! `functions` / `function_call` fields and `function` role, a message's
//! `name`, `refusal` parts, `input_audio` parts, files given by `file_id`,
//! non-function tools, and any field this translation does not know. Tool
//! call `arguments` that are not a JSON object are sent as `{}`.
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

pub use self::request::{TranslatedRequest, translate_request};
pub(crate) use self::response::{default_error_type, fallback_message, with_outcome_code};
pub use self::response::{finish_reason, translate_error, translate_response};
pub use self::stream::{
    AnthropicStreamBody, AnthropicStreamTranslator, DEFAULT_MAX_BYTES_BEFORE_CONTENT,
};

/// The `anthropic-version` header value sent by default.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

#[cfg(test)]
mod tests;
