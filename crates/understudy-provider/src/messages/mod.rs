//! Anthropic's Messages API in front of any target: a Messages request
//! converted to the OpenAI chat-completions request every target serves,
//! and the answer converted back.
//!
//! Clients built on Anthropic's SDKs send `POST /v1/messages`. For a target
//! that is not Anthropic, the request is converted by [`to_chat`] into
//! the canonical OpenAI chat request, and the answer back by [`from_chat`]
//! (a whole answer), [`MessagesStreamTranslator`] (a stream) and
//! [`error_body`] (errors). The functions are pure:
//! bytes in, bytes out.
//!
//! [`MessagesLayer`] puts them in front of a chat stack: it marks each
//! request [`Operation::Messages`](understudy_core::Operation), which the
//! provider services read (an Anthropic provider gets the caller's body as
//! it is, only `model` rewritten, with the caller's `anthropic-version`
//! and `anthropic-beta`; every other provider gets [`to_chat`]'s
//! conversion), and turns what the stack answers into the Messages API's
//! shape. [`to_messages_error`] does the same for an error answered above
//! the layer.
//!
//! # Request: what maps to what
//!
//! | Anthropic Messages                                    | OpenAI chat completions                                  |
//! |-------------------------------------------------------|----------------------------------------------------------|
//! | `model`                                               | `model`, as written (the route's name); [`ChatRequest::model`] keeps it for the answer |
//! | `system`, a string or text blocks                     | a first `system` message (text blocks joined by a blank line) |
//! | `user` turn, string content                           | a `user` message, string content                         |
//! | `text` block                                          | `text` part (a turn of one text block: string content)  |
//! | `image` block, `base64` source                        | `image_url` part, `data:<media_type>;base64,<data>` URL  |
//! | `image` block, `url` source                           | `image_url` part with the URL                            |
//! | `document` block, `base64` source (PDF)               | `file` part: `file_data` as a `data:` URL, `filename` from `title` (else `document.pdf`) |
//! | `document` block, `text` source                       | `text` part with the document's text                     |
//! | `tool_result` blocks of a user turn                   | `tool` messages (`tool_call_id` = `tool_use_id`), before the turn's other content |
//! | `tool_result` content, a string or text blocks        | the `tool` message's content (text blocks joined by a newline) |
//! | `tool_result` with `is_error: true`                   | its content prefixed with `Error: ` (`Error` when empty): OpenAI has no error flag, and the model must still know the call failed |
//! | `image` blocks inside a `tool_result`                 | `image_url` parts of the user message after the `tool` messages (a `tool` message holds text only) |
//! | `assistant` turn: `text` blocks                       | `assistant` content, the texts joined                    |
//! | `assistant` turn: `tool_use` blocks                   | `tool_calls`: `id`, `function.name`, `function.arguments` = `input` serialised (content `null` when there is no text) |
//! | `tools`: `name`, `description`, `input_schema` (`type` absent or `custom`) | function tools: `name`, `description`, `parameters`; `strict` kept |
//! | `tool_choice` `auto` / `any` / `tool` `{name}` / `none` | `auto` / `required` / `{type: function, function: {name}}` / `none` |
//! | `tool_choice.disable_parallel_tool_use: true`         | `parallel_tool_calls: false`                             |
//! | `max_tokens` (required)                               | `max_tokens`                                             |
//! | `temperature` (0–1), `top_p`                          | `temperature`, `top_p`                                   |
//! | `stop_sequences`                                      | `stop`                                                   |
//! | `metadata.user_id`                                    | `user`                                                   |
//! | `stream: true`                                        | `stream: true`, `stream_options: {include_usage: true}` (the converted stream's `message_delta` reports the usage) |
//!
//! `tools` and `tool_choice` are sent only when there are tools (OpenAI
//! refuses `tool_choice` and `parallel_tool_calls` without them).
//!
//! # Refused with a 400
//!
//! A request asking for what the OpenAI shape cannot express is refused
//! before anything is sent, with an error naming the field ("`thinking` is
//! not supported on this route's non-Anthropic targets"): answering it
//! without would give the caller less than, or something shaped otherwise
//! than, what it asked for.
//!
//! | Field                                                 | Why                                                      |
//! |-------------------------------------------------------|----------------------------------------------------------|
//! | `thinking` `enabled`, `between_tools` or of a type not known | the caller asked for thinking blocks; chat completions return none |
//! | `tools` of a `type` other than `custom` (`web_search_20250305`, `bash_…`, `text_editor_…`, `code_execution_…`, …) | server and Anthropic-defined tools run on Anthropic's side |
//! | `mcp_servers` (unless empty), `container`             | Anthropic-hosted tool execution                          |
//! | `context_management`                                  | Anthropic edits the context server-side; without it the conversation may not fit |
//! | `output_format`, `output_config.format`               | structured output in Anthropic's shape, which this conversion does not write |
//! | `citations` enabled on a `document`                   | the answer would carry citations, which chat completions do not return |
//! | blocks of other types (`search_result`, `server_tool_use`, `web_search_tool_result`, `container_upload`, …), in a turn or a `tool_result` | content with no OpenAI equivalent; dropping it would change what the model sees |
//! | `image` sources of type `file`, `document` sources of type `url`, `file` or `content` | files in Anthropic's storage, or fetched by Anthropic |
//!
//! A request that is not a Messages request (not JSON, `messages` not an
//! array, `max_tokens` missing, a role other than `user` and `assistant`, a
//! field of the wrong type) is refused the same way, naming the field.
//!
//! # Dropped, safe
//!
//! | Field                                                 | Why it is safe to drop                                   |
//! |-------------------------------------------------------|----------------------------------------------------------|
//! | `cache_control` (anywhere)                            | a caching hint; OpenAI caches prompts by itself           |
//! | `top_k`                                               | a sampling hint OpenAI does not take (and refuses as an unknown argument) |
//! | `thinking` `disabled` or `adaptive`                   | asks for nothing, or lets the model decide whether to think: an answer without thinking is one it may give |
//! | top-level `cache_control`                             | a caching hint, as on blocks                             |
//! | `speed`, `inference_geo`, `diagnostics`, `user_profile_id`, `workspace_id` | Anthropic's processing, region, cache-diagnostic and account selectors; the route's configuration decides where a request goes |
//! | `thinking` and `redacted_thinking` blocks in assistant turns | the model's earlier reasoning, which only Anthropic can read back (signed); the turn's text and tool calls are sent |
//! | `citations` of a `text` block                         | annotations of an earlier answer; the text is sent       |
//! | `metadata` other than `user_id`                       | labels                                                   |
//! | `service_tier`, `output_config` other than `format` (`effort`) | processing-tier and effort hints                  |
//! | a `document`'s `context`, a `title` beyond the file name | labels around the document, not its content            |
//! | `mcp_servers: []`                                     | asks for nothing                                         |
//! | any top-level field this conversion does not know     | Anthropic adds optional fields often, nearly all of them hints; refusing each new one would fail requests at the moment a fallback is needed |
//!
//! A trailing `assistant` turn (a prefill) is sent as an assistant message:
//! OpenAI models answer after it rather than continue it.
//!
//! # Response
//!
//! | OpenAI chat completion                                | Anthropic `message`                                      |
//! |-------------------------------------------------------|----------------------------------------------------------|
//! | `id`                                                  | `id`: `msg_` and the completion's id                     |
//! | —                                                     | `type: "message"`, `role: "assistant"`, `stop_sequence: null` |
//! | the caller's `model`                                  | `model`                                                  |
//! | `choices[0].message.content` (and `refusal`), when not empty | a `text` block                                    |
//! | `choices[0].message.tool_calls`                       | `tool_use` blocks `{id, name, input}`, `arguments` parsed (anything but a JSON object is `{}`) |
//! | `finish_reason` `stop` / `length` / `tool_calls` / `content_filter` / other | `stop_reason` `end_turn` / `max_tokens` / `tool_use` / `refusal` / `end_turn` ([`stop_reason`]); `tool_use` whenever there are tool calls |
//! | `usage.prompt_tokens` less `prompt_tokens_details.cached_tokens` | `usage.input_tokens`                          |
//! | `usage.completion_tokens`                             | `usage.output_tokens`                                    |
//! | `usage.prompt_tokens_details.cached_tokens`, when reported | `usage.cache_read_input_tokens`                     |
//!
//! Reasoning content some servers add, `logprobs`, `system_fingerprint`,
//! `service_tier` and choices other than the first are dropped. Streams:
//! see [`MessagesStreamTranslator`].
//!
//! # Errors
//!
//! [`error_body`] rewrites an OpenAI error answer in Anthropic's shape,
//! its `type` by status ([`error_type`]); the SSE `error` event that ends a
//! stream which broke after it was committed is core's
//! [`OpenAiError::to_sse_event_for`](understudy_core::OpenAiError::to_sse_event_for)
//! with [`Operation::Messages`](understudy_core::Operation::Messages).
//! Errors met while reading a stream are [`ClassifiedError`]s: the
//! `data: {"error": …}` event of an OpenAI-compatible upstream is
//! classified as the provider service's classifier reads an error envelope
//! in a 2xx body (overloaded, rate limited, context length exceeded,
//! content filtered, else a broken stream); a stream that ends early is a
//! [`FailureKind::StreamBroken`](understudy_core::FailureKind::StreamBroken).
//!
//! [`ClassifiedError`]: understudy_core::ClassifiedError

mod answer;
mod error;
mod layer;
mod request;
mod response;
mod stream;

#[cfg(test)]
mod tests;

pub use self::answer::to_messages_error;
pub use self::error::{error_body, error_type};
pub use self::layer::{Messages, MessagesLayer};
pub use self::request::{ChatRequest, to_chat};
pub use self::response::{from_chat, stop_reason};
pub use self::stream::MessagesStreamTranslator;
use crate::error::ProviderError;

/// The 400 for what the OpenAI shape cannot express: `what` names it, in
/// backticks.
fn unsupported(what: &str) -> ProviderError {
    ProviderError::invalid_request(format!(
        "{what} is not supported on this route's non-Anthropic targets"
    ))
}
