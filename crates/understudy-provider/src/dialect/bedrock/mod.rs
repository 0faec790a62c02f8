//! Translation between the OpenAI chat-completions API and AWS Bedrock
//! Runtime's Converse API, with requests signed by `SigV4`.
//!
//! Callers speak OpenAI; a Bedrock target, whose [`Dialect`] is
//! [`BedrockDialect`], gets the request translated ([`translate_request`])
//! and sent to `{base_url}/model/{modelId}/converse` (or
//! `/converse-stream` for a stream), the model id percent-encoded in the
//! path (`:` as `%3A`, the `/` of an ARN as `%2F`). `base_url` is
//! `https://bedrock-runtime.{region}.amazonaws.com`
//! ([`default_base_url`]). Each request is signed with `SigV4` for the
//! service `bedrock` and the dialect's region: `authorization`,
//! `x-amz-date` and, with temporary credentials, `x-amz-security-token`.
//! There is no API key: the dialect sends no key header.
//!
//! Bedrock Runtime has no request cheap and safe enough to probe with, so
//! the dialect has no [probe path](Dialect::probe_path): a Bedrock target
//! that health tracking ejected comes back through trial requests only.
//!
//! # Request: what maps to what
//!
//! | OpenAI                                                 | Converse                                                  |
//! |--------------------------------------------------------|-----------------------------------------------------------|
//! | `model`                                                | the target's model id, in the path                        |
//! | `system` and `developer` messages (anywhere)           | `system: [{text}]`                                        |
//! | `user` text, `text` parts                              | `user` turn, `{text}` blocks                              |
//! | `image_url` part, `data:image/{png,jpeg,gif,webp};base64,…` | `{image: {format, source: {bytes}}}` (bytes base64 in JSON) |
//! | `assistant` content and `tool_calls`                   | `assistant` turn: `{text}` then `{toolUse: {toolUseId, name, input}}` (`arguments` parsed into `input`) |
//! | `tool` messages                                        | `{toolResult: {toolUseId, content: [{text}]}}` blocks in a `user` turn |
//! | consecutive turns of one role                          | one turn (Converse needs alternating roles)               |
//! | `max_completion_tokens`, else `max_tokens`             | `inferenceConfig.maxTokens`                               |
//! | `temperature` (0–2)                                    | `inferenceConfig.temperature`, clamped to Bedrock's 0–1   |
//! | `top_p`                                                | `inferenceConfig.topP`                                    |
//! | `stop` (string or array)                               | `inferenceConfig.stopSequences`                           |
//! | `stream`                                               | `/converse-stream` instead of `/converse`                 |
//! | `stream_options.include_usage`                         | kept by the service: decides the usage chunk              |
//! | `tools` (`type: function`)                             | `toolConfig.tools: [{toolSpec: {name, description, inputSchema: {json}}}]` |
//! | `tool_choice` `auto` / `required` / named              | `toolConfig.toolChoice` `{auto: {}}` / `{any: {}}` / `{tool: {name}}` |
//! | `tool_choice` `none`                                   | no `toolConfig`: the model is given no tool to call       |
//! | `response_format` `json_object` / `json_schema`        | a forced tool named [`FORCED_TOOL_NAME`] whose `inputSchema.json` is the schema, with `toolChoice: {tool}` |
//!
//! Tool results are sent as text blocks, which every model on Bedrock
//! reads. Tool-call `arguments` that are not JSON are sent as `{}`.
//!
//! # Refused (a 400 naming the field)
//!
//! What Bedrock cannot express and the caller would miss in the answer,
//! each refused as "… is not supported by `bedrock` targets": `n` other
//! than 1, `logprobs: true`, `top_logprobs`, a non-empty `logit_bias`,
//! audio output (`audio`, `modalities` other than text),
//! `web_search_options`, image URLs that are not base64
//! data URLs (Bedrock fetches no URL), images other than PNG, JPEG, GIF
//! and WebP, `input_audio` and `file` parts, tools that are not functions,
//! the legacy `functions` / `function_call` fields and `function` role,
//! `tool_choice: "none"` in a conversation that holds tool calls or
//! results (Bedrock needs the tools declared to read them), a
//! `response_format` that
//! [`ResponseFormat::check_forced_tool`](crate::dialect::structured::ResponseFormat::check_forced_tool)
//! refuses, and a caller's tool named [`FORCED_TOOL_NAME`] with or without
//! `response_format` (reserved on Bedrock targets, whose answers read a
//! tool of that name as the structured answer).
//!
//! # Dropped deliberately
//!
//! Safe to drop, since the answer keeps its shape: `seed`,
//! `presence_penalty`, `frequency_penalty`, `top_k`
//! (sampling hints Converse's common `inferenceConfig` does not carry),
//! `parallel_tool_calls` (Bedrock has no switch; an answer with several
//! calls is still a valid OpenAI answer), `user`, `metadata`, `store`,
//! `service_tier`, `prediction`, `reasoning_effort`, a message's `name`,
//! `refusal` parts, an image's `detail`, and any field this translation
//! does not know.
//!
//! # Response
//!
//! `output.message.content` text blocks join into `message.content`
//! (`null` when there are none), `toolUse` blocks become
//! `message.tool_calls` (`id` the `toolUseId`, `input` serialised as
//! `arguments`), `stopReason` becomes `finish_reason` ([`finish_reason`]),
//! and `usage` becomes `prompt_tokens` (input tokens, cache reads and
//! cache writes), `completion_tokens` and `total_tokens`, with
//! `prompt_tokens_details.cached_tokens` for cache reads. The answer's
//! `id` is generated (`chatcmpl-…`), its `model` is the model id asked
//! for. With `response_format`, the forced tool's `input` is the answer:
//! serialised JSON in `message.content`, `finish_reason: "stop"`, no tool
//! call. Reasoning blocks and anything newer are dropped. Streams: see
//! [`BedrockStreamTranslator`].
//!
//! A 2xx answer stopped by a guardrail or content filter before it said
//! anything is classified
//! [`ContentFiltered`](understudy_core::ClientErrorKind::ContentFiltered)
//! ([`Dialect::classify_hint`]), which fails over where the route opts in.
//!
//! # Errors
//!
//! Bedrock names an error in `x-amzn-ErrorType` (`ThrottlingException:http://…`,
//! the name before `:`) or the body's `__type`, and says what happened in
//! the body's `message`. [`classify_error`] reads them:
//!
//! | Bedrock error (status)                                 | Outcome                                        |
//! |--------------------------------------------------------|------------------------------------------------|
//! | `ThrottlingException` (429)                            | `RateLimited` (with `retry-after` if sent)     |
//! | `ServiceUnavailableException` (503), `ModelNotReadyException` (429) | `Overloaded`                      |
//! | `ValidationException` (400), "too many input tokens", "input is too long", "prompt is too long" | `ContextLengthExceeded` |
//! | `ValidationException` (400), anything else             | `Rejected(400)`                                |
//! | `ModelTimeoutException` (408)                          | `Timeout`                                      |
//! | `InternalServerException` (500), `ModelErrorException` (424) | `Server` with the status                 |
//! | `ModelStreamErrorException` (in a stream)              | `StreamBroken`                                 |
//! | anything else                                          | the service's classifier, by status            |
//!
//! A 401 or 403 (`AccessDeniedException`, `UnrecognizedClientException`,
//! a bad signature) never reaches the dialect: the service answers it as
//! the gateway's credentials failing. [`translate_error`] rewrites the
//! error in the OpenAI shape with Bedrock's message. An exception frame in
//! a stream is the same error, as a body error carrying its outcome.

mod error;
mod request;
mod response;
mod sign;
mod stream;

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use understudy_core::{Outcome, ResponseBody};

pub use self::error::{classify_error, error_type, translate_error};
pub use self::request::{TranslatedRequest, translate_request};
pub use self::response::{finish_reason, translate_response};
pub use self::sign::SIGNING_SERVICE;
use self::sign::Signer;
pub use self::stream::BedrockStreamTranslator;
use super::completion::unix_now;
use super::stream_body::TranslatedBody;
use super::structured::FORCED_TOOL_NAME;
use super::{
    AnswerContext, Dialect, Operation, ShapedError, UpstreamRequest, unsupported_operation,
};
use crate::error::{ConfigError, ProviderError};
use crate::key::{ApiKey, AwsCredentials};

/// The base URL of Bedrock Runtime in `region`:
/// `https://bedrock-runtime.{region}.amazonaws.com`.
///
/// ```
/// use understudy_provider::bedrock::default_base_url;
///
/// assert_eq!(default_base_url("us-east-1"), "https://bedrock-runtime.us-east-1.amazonaws.com");
/// ```
pub fn default_base_url(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// The dialect of AWS Bedrock Runtime's Converse API, named `bedrock`,
/// for one region and one set of credentials.
///
/// - Requests go to `{base_url}/model/{modelId}/converse`, streams to
///   `{base_url}/model/{modelId}/converse-stream`, signed with `SigV4`.
/// - The request is translated by [`translate_request`]; answers by
///   [`translate_response`], streams by [`BedrockStreamTranslator`], errors by
///   [`translate_error`].
/// - No probe: health re-admits a Bedrock target through trial requests.
///
/// The [module documentation](self) has the mapping tables.
///
/// ```
/// use understudy_provider::AwsCredentials;
/// use understudy_provider::bedrock::BedrockDialect;
/// use understudy_provider::dialect::{Dialect, Operation, Reply};
///
/// let credentials = AwsCredentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None);
/// let dialect = BedrockDialect::new("us-east-1", credentials).unwrap();
/// let model = "anthropic.claude-3-5-sonnet-20240620-v1:0";
/// assert_eq!(
///     dialect.endpoint(Operation::ChatCompletions, model, true).as_deref(),
///     Some("model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"),
/// );
/// assert_eq!(dialect.probe_path(), None);
/// let upstream = dialect
///     .translate_request(
///         Operation::ChatCompletions,
///         br#"{"model":"chat","max_tokens":256,"messages":[{"role":"user","content":"Hi"}]}"#,
///         model,
///     )
///     .unwrap();
/// assert_eq!(upstream.reply, Reply::Whole);
/// let body: serde_json::Value = serde_json::from_slice(&upstream.body).unwrap();
/// assert_eq!(body["messages"][0]["content"][0]["text"], "Hi");
/// assert_eq!(body["inferenceConfig"]["maxTokens"], 256);
/// assert!(!format!("{dialect:?}").contains("wJalr"));
/// ```
#[derive(Clone)]
pub struct BedrockDialect {
    region: String,
    signer: Signer,
}

impl BedrockDialect {
    /// The dialect for `region` (`us-east-1`, `eu-west-3`: lowercase
    /// letters, digits and `-`, since it names a host), signing with
    /// `credentials`.
    // The dialect takes the credentials as it keeps them, whole.
    #[allow(clippy::needless_pass_by_value)]
    pub fn new(
        region: impl Into<String>,
        credentials: AwsCredentials,
    ) -> Result<Self, ConfigError> {
        let region = region.into();
        let valid = !region.is_empty()
            && region.len() <= 64
            && !region.starts_with('-')
            && !region.ends_with('-')
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(ConfigError::InvalidSetting {
                setting: "region",
                reason: "must be an AWS region such as `us-east-1`".to_owned(),
            });
        }
        let signer = Signer::new(&region, &credentials);
        Ok(Self { region, signer })
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Signs a request as [`Dialect::sign`] does, at `time` rather than
    /// now.
    pub fn sign_at(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        body: &[u8],
        time: SystemTime,
    ) -> Result<(), ProviderError> {
        self.signer.sign(method, uri, headers, body, time)
    }
}

impl fmt::Debug for BedrockDialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockDialect")
            .field("region", &self.region)
            .field("access_key_id", &self.signer.access_key_id())
            .finish_non_exhaustive()
    }
}

impl Dialect for BedrockDialect {
    fn name(&self) -> &'static str {
        "bedrock"
    }

    fn endpoint(&self, operation: Operation, model: &str, stream: bool) -> Option<Cow<'_, str>> {
        match operation {
            Operation::ChatCompletions => {
                let action = if stream {
                    "converse-stream"
                } else {
                    "converse"
                };
                Some(Cow::Owned(format!(
                    "model/{}/{action}",
                    encode_path_segment(model)
                )))
            }
            _ => None,
        }
    }

    /// Bedrock Runtime has no cheap, safe `GET`: no probe.
    fn probe_path(&self) -> Option<Cow<'_, str>> {
        None
    }

    /// No key header: requests are signed ([`sign`](Self::sign)).
    fn auth_headers(&self, _key: &ApiKey) -> Result<HeaderMap, ConfigError> {
        Ok(HeaderMap::new())
    }

    fn sign(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), ProviderError> {
        self.signer
            .sign(method, uri, headers, body, SystemTime::now())
    }

    fn translate_request(
        &self,
        operation: Operation,
        body: &[u8],
        _model: &str,
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
            operation => Err(unsupported_operation(self.name(), operation)),
        }
    }

    fn translate_response(
        &self,
        body: Bytes,
        context: &AnswerContext,
    ) -> Result<Bytes, ProviderError> {
        match context.operation {
            Operation::ChatCompletions => {
                translate_response(&body, &context.model, &completion_id(), unix_now())
            }
            operation => Err(unsupported_operation(self.name(), operation)),
        }
    }

    fn translate_stream(&self, body: ResponseBody, context: &AnswerContext) -> ResponseBody {
        let translator = BedrockStreamTranslator::new(
            completion_id(),
            context.model.to_string(),
            unix_now(),
            context.include_usage,
        )
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
        if status.is_success() {
            return response::filtered_outcome(body);
        }
        classify_error(status, headers, body)
    }
}

/// Percent-encodes a path segment: everything but `A-Z a-z 0-9 - . _ ~`.
fn encode_path_segment(segment: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

/// A fresh completion id, `chatcmpl-` and 24 hex digits: the time in
/// nanoseconds and a process-wide counter.
fn completion_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "chatcmpl-{:08x}{:016x}",
        nanos,
        count ^ unix_now().rotate_left(32)
    )
}

/// Is this the tool [`translate_request`] forces for `response_format`?
fn is_forced_tool(name: &str) -> bool {
    name == FORCED_TOOL_NAME
}

#[cfg(test)]
mod tests;
