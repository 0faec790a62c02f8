//! OpenAI Chat Completions: `POST /v1/chat/completions`, the model and
//! `stream` in the body, SSE chunks ending in `data: [DONE]`, errors as
//! `{"error":{"message","type","param","code"}}`.
//!
//! Embeddings: `POST /v1/embeddings`, `input` a string, strings, tokens or
//! lists of tokens, answered as a `list` of `embedding`s, each a list of
//! numbers or, with `encoding_format: "base64"`, base64 of little-endian
//! `f32`s.
//!
//! Azure OpenAI answers in the same shapes with fields of its own added;
//! the builders here take an `azure` flag for those.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use understudy_core::OpenAiError;

use super::embed::{self, DEFAULT_DIMENSIONS, EmbedRequest, Input, Reply};
use super::{
    ChatRequest, Context, ErrorAnswer, LISTED_MODEL, MODEL_HOLE, PROMPT_TOKENS, Rendered, Template,
    azure, forced_tool, tool_arguments,
};

/// The fields of a chat request the mock reads; the rest must be valid JSON
/// and is ignored.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    messages: Vec<Value>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    tool_choice: Option<Value>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Reads a chat request; `model` is the model the path names (Azure's
/// deployment), and without one the body must name it.
pub(super) fn read_request(body: &[u8], model: Option<&str>) -> Result<ChatRequest, String> {
    let request: Request<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let model = match (model, &request.model) {
        (Some(model), _) => model.to_owned(),
        (None, Some(model)) => model.clone().into_owned(),
        (None, None) => return Err("missing field `model`".to_owned()),
    };
    // `{"type":"function","function":{"name":N}}` forces tool N.
    let tool = request
        .tool_choice
        .as_ref()
        .filter(|choice| choice["type"] == "function")
        .and_then(|choice| forced_tool(choice.pointer("/function/name")));
    Ok(ChatRequest {
        model,
        stream: request.stream,
        include_usage: request
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage),
        tool,
        continue_from: super::continuation(&request.messages),
    })
}

/// The fields of an embeddings request the mock reads.
#[derive(Deserialize)]
struct EmbeddingsRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    input: EmbeddingsInput,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
}

/// `input`: a string, strings, tokens, or lists of tokens.
#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingsInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u64>),
    TokenLists(Vec<Vec<u64>>),
}

/// Reads an embeddings request; `model` is the model the path names
/// (Azure's deployment), and without one the body must name it.
pub(super) fn read_embeddings(body: &[u8], model: Option<&str>) -> Result<EmbedRequest, String> {
    let request: EmbeddingsRequest<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let model = match (model, &request.model) {
        (Some(model), _) => model.to_owned(),
        (None, Some(model)) => model.clone().into_owned(),
        (None, None) => return Err("missing field `model`".to_owned()),
    };
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(format!(
                "`encoding_format` must be `float` or `base64`, not `{other}`"
            ));
        }
    };
    let dimensions = request.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    let inputs = match request.input {
        EmbeddingsInput::Text(text) => vec![Input::text(text, dimensions)],
        EmbeddingsInput::Texts(texts) => texts
            .into_iter()
            .map(|text| Input::text(text, dimensions))
            .collect(),
        EmbeddingsInput::Tokens(tokens) if tokens.is_empty() => Vec::new(),
        EmbeddingsInput::Tokens(tokens) => vec![Input::tokens(&tokens, dimensions)],
        EmbeddingsInput::TokenLists(lists) => {
            if lists.iter().any(Vec::is_empty) {
                return Err("a list of tokens is empty".to_owned());
            }
            lists
                .iter()
                .map(|tokens| Input::tokens(tokens, dimensions))
                .collect()
        }
    };
    Ok(EmbedRequest {
        model,
        inputs,
        reply: Reply::OpenAi { base64 },
    })
}

/// An embeddings answer: a `list` of `embedding`s. Written through serde
/// rather than `Value`, so each `f32` is printed at its own precision.
#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    usage: EmbeddingUsage,
}

/// One vector of the list.
#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

/// A vector as numbers, or as base64 of its little-endian `f32`s.
#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: usize,
    total_tokens: usize,
}

/// The answer to an embeddings request.
pub(super) fn embeddings(name: &str, request: &EmbedRequest, base64: bool) -> Bytes {
    let data = request
        .inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embed::vector(name, &input.text, input.dimensions);
            EmbeddingItem {
                object: "embedding",
                index,
                embedding: if base64 {
                    Vector::Base64(embed::base64_f32(&vector))
                } else {
                    Vector::Floats(vector)
                },
            }
        })
        .collect();
    let tokens = request.tokens();
    let list = EmbeddingList {
        object: "list",
        data,
        model: &request.model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    Bytes::from(serde_json::to_vec(&list).unwrap_or_default())
}

pub(super) fn render(context: &Context<'_>) -> Rendered {
    let (stream, usage, tail) = stream(context, false);
    Rendered {
        full: Template::new(&full(context, false).to_string()),
        stream,
        usage: Some(usage),
        tail,
        models: Bytes::from(
            json!({
                "object": "list",
                "data": [{
                    "id": LISTED_MODEL,
                    "object": "model",
                    "created": context.created,
                    "owned_by": context.name,
                }],
            })
            .to_string(),
        ),
    }
}

pub(super) fn error(status: StatusCode, message: &str, retry: Option<Duration>) -> ErrorAnswer {
    let answer = ErrorAnswer {
        status,
        headers: Vec::new(),
        body: openai_error(status, message).to_json(),
    };
    with_retry_after(answer, retry)
}

/// Adds `Retry-After` and `retry-after-ms` for `retry`.
pub(super) fn with_retry_after(answer: ErrorAnswer, retry: Option<Duration>) -> ErrorAnswer {
    match retry {
        Some(wait) => answer
            .header("retry-after", HeaderValue::from(wait.as_secs()))
            .header("retry-after-ms", millis(wait)),
        None => answer,
    }
}

pub(super) fn millis(wait: Duration) -> HeaderValue {
    HeaderValue::from(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
}

/// A prompt refused by the content filter: 400 `content_policy_violation`.
pub(super) fn content_filter(message: &str) -> ErrorAnswer {
    let body = json!({
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": "prompt",
            "code": "content_policy_violation",
        },
    });
    ErrorAnswer::json(StatusCode::BAD_REQUEST, &body)
}

pub(super) fn error_event(message: &str) -> Bytes {
    openai_error(StatusCode::SERVICE_UNAVAILABLE, message).to_sse_event()
}

fn openai_error(status: StatusCode, message: &str) -> OpenAiError {
    let (kind, code) = match status.as_u16() {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => ("invalid_request_error", Some("permission_denied")),
        404 => ("invalid_request_error", Some("not_found")),
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        503 | 529 => ("server_error", Some("overloaded")),
        400..=499 => ("invalid_request_error", None),
        _ => ("server_error", None),
    };
    let error = OpenAiError::new(status, kind, message);
    match code {
        Some(code) => error.with_code(code),
        None => error,
    }
}

/// A `chat.completion` with one choice holding `message`.
fn completion(created: u64, model: &str, message: &Value, finish: &str, tokens: usize) -> Value {
    json!({
        "id": "chatcmpl-understudy-mock",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": usage(tokens),
        "system_fingerprint": "understudy-mock",
    })
}

fn usage(tokens: usize) -> Value {
    json!({
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": tokens,
        "total_tokens": PROMPT_TOKENS + tokens,
    })
}

/// A `chat.completion.chunk` with one choice, or none when `delta` is
/// `None`.
fn chunk(created: u64, model: &str, delta: Option<Value>, finish: &Value) -> Value {
    let choices = match delta {
        Some(delta) => json!([{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish,
        }]),
        None => json!([]),
    };
    json!({
        "id": "chatcmpl-understudy-mock",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "understudy-mock",
        "choices": choices,
    })
}

pub(super) fn full(context: &Context<'_>, azure: bool) -> Value {
    let message = json!({ "role": "assistant", "content": context.text, "refusal": null });
    let mut body = completion(
        context.created,
        MODEL_HOLE,
        &message,
        "stop",
        context.pieces.len(),
    );
    if azure {
        azure::add_filter_results(&mut body);
    }
    body
}

/// The chunk events, the usage chunk, and what follows it (`[DONE]`).
pub(super) fn stream(
    context: &Context<'_>,
    azure: bool,
) -> (Vec<Template>, Template, Vec<Template>) {
    let pieces = context.pieces;
    let event = |mut chunk: Value| {
        if azure {
            azure::add_filter_results(&mut chunk);
        }
        Template::sse(None, &chunk)
    };
    let chunk = |delta, finish: Value| chunk(context.created, MODEL_HOLE, Some(delta), &finish);
    let mut events = Vec::with_capacity(pieces.len() + 3);
    if azure {
        events.push(Template::sse(None, &azure::prompt_filter_chunk()));
    }
    events.push(event(chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )));
    for piece in pieces {
        events.push(event(chunk(json!({ "content": piece }), Value::Null)));
    }
    events.push(event(chunk(json!({}), json!("stop"))));
    let mut usage_chunk = self::chunk(context.created, MODEL_HOLE, None, &Value::Null);
    usage_chunk["usage"] = usage(pieces.len());
    let usage = Template::sse(None, &usage_chunk);
    (events, usage, vec![Template::new("data: [DONE]\n\n")])
}

/// A completion that calls `tool`.
pub(super) fn tool_full(created: u64, model: &str, tool: &str, azure: bool) -> Value {
    let message = json!({
        "role": "assistant",
        "content": null,
        "refusal": null,
        "tool_calls": [{
            "id": "call_understudy_mock",
            "type": "function",
            "function": { "name": tool, "arguments": tool_arguments().to_string() },
        }],
    });
    let mut body = completion(created, model, &message, "tool_calls", 1);
    if azure {
        azure::add_filter_results(&mut body);
    }
    body
}

/// A stream that calls `tool`: the call's head, its arguments, the finish,
/// the usage chunk if asked for, and `[DONE]`.
pub(super) fn tool_stream(
    created: u64,
    model: &str,
    tool: &str,
    include_usage: bool,
    azure: bool,
) -> Vec<Bytes> {
    let event = |mut chunk: Value| {
        if azure {
            azure::add_filter_results(&mut chunk);
        }
        Bytes::from(format!("data: {chunk}\n\n"))
    };
    let call = |function: Value, id: bool| {
        let mut call = json!({ "index": 0, "function": function });
        if id {
            call["id"] = json!("call_understudy_mock");
            call["type"] = json!("function");
        }
        json!({ "tool_calls": [call] })
    };
    let mut events = Vec::with_capacity(6);
    if azure {
        events.push(Bytes::from(format!(
            "data: {}\n\n",
            azure::prompt_filter_chunk()
        )));
    }
    let mut head = call(json!({ "name": tool, "arguments": "" }), true);
    head["role"] = json!("assistant");
    head["content"] = Value::Null;
    events.push(event(chunk(created, model, Some(head), &Value::Null)));
    let arguments = call(json!({ "arguments": tool_arguments().to_string() }), false);
    events.push(event(chunk(created, model, Some(arguments), &Value::Null)));
    events.push(event(chunk(
        created,
        model,
        Some(json!({})),
        &json!("tool_calls"),
    )));
    if include_usage {
        let mut usage_chunk = chunk(created, model, None, &Value::Null);
        usage_chunk["usage"] = usage(1);
        events.push(Bytes::from(format!("data: {usage_chunk}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}
