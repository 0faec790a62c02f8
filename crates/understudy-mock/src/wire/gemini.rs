//! The Gemini API: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse` (the model and the stream in the path),
//! `GenerateContentResponse` bodies, SSE events whose lines end in `\r\n`,
//! errors as `{"error":{"code":429,"message","status":"RESOURCE_EXHAUSTED"}}`.
//!
//! Embeddings: `POST /v1beta/models/{model}:batchEmbedContents`, taking
//! `{"requests":[{"model":"models/{model}","content":{"parts":[{"text"}]},
//! "outputDimensionality"}]}` and answering `{"embeddings":[{"values"}]}`,
//! and `:embedContent`, taking one such request (its `model` optional) and
//! answering `{"embedding":{"values"}}`.

use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, Uri};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::embed::{self, DEFAULT_DIMENSIONS, EmbedCall, EmbedRequest, Input, Reply};
use super::{
    ChatCall, ChatRequest, Context, ErrorAnswer, LISTED_MODEL, MODEL_HOLE, PROMPT_TOKENS, Rendered,
    Template, percent_decode, sse_text, tool_arguments,
};
use crate::stats::PathKind;

/// Google ends each SSE line with a CRLF.
const EOL: &str = "\r\n";

/// The API versions served.
const VERSIONS: [&str; 2] = ["/v1beta/", "/v1/"];

/// The model and the method of `/v1beta/models/{model}:{method}` (or
/// `/v1/…`), the model percent-decoded.
fn model_method(uri: &Uri) -> Option<(String, &str)> {
    let path = uri.path();
    let rest = VERSIONS
        .iter()
        .find_map(|version| path.strip_prefix(version))?
        .strip_prefix("models/")?;
    let (model, method) = rest.rsplit_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    Some((percent_decode(model)?, method))
}

pub(super) fn chat_call(uri: &Uri) -> Option<ChatCall> {
    let (model, method) = model_method(uri)?;
    let (kind, stream) = match method {
        "generateContent" => (PathKind::GeminiGenerate, false),
        "streamGenerateContent" => (PathKind::GeminiStream, true),
        _ => return None,
    };
    Some(ChatCall {
        kind,
        model: Some(model),
        stream: Some(stream),
    })
}

pub(super) fn embed_call(uri: &Uri) -> Option<EmbedCall> {
    let (model, method) = model_method(uri)?;
    let kind = match method {
        "batchEmbedContents" => PathKind::GeminiBatchEmbed,
        "embedContent" => PathKind::GeminiEmbed,
        _ => return None,
    };
    Some(EmbedCall {
        kind,
        model: Some(model),
    })
}

pub(super) fn is_models_path(uri: &Uri) -> bool {
    matches!(uri.path(), "/v1beta/models" | "/v1/models")
}

/// The fields of a `generateContent` request the mock reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[allow(dead_code)]
    contents: Vec<IgnoredAny>,
    #[serde(default)]
    tool_config: Option<ToolConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    #[serde(default)]
    function_calling_config: Option<FunctionCallingConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    allowed_function_names: Vec<String>,
}

pub(super) fn read_request(call: &ChatCall, body: &[u8]) -> Result<ChatRequest, String> {
    let request: Request = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    // Mode `ANY` with exactly one allowed function forces that function.
    let tool = request
        .tool_config
        .and_then(|config| config.function_calling_config)
        .filter(|config| config.mode.as_deref() == Some("ANY"))
        .and_then(
            |config| match <[String; 1]>::try_from(config.allowed_function_names) {
                Ok([name]) if !name.is_empty() => Some(name),
                _ => None,
            },
        );
    Ok(ChatRequest {
        model: call.model.clone().unwrap_or_default(),
        stream: call.stream.unwrap_or(false),
        include_usage: false,
        tool,
        continue_from: None,
    })
}

/// A `batchEmbedContents` request.
#[derive(Deserialize)]
struct BatchEmbedRequest {
    requests: Vec<EmbedContentRequest>,
}

/// An `embedContent` request, alone or in a batch; `taskType` and `title`
/// are read as valid JSON and ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmbedContentRequest {
    #[serde(default)]
    model: Option<String>,
    content: EmbedContent,
    #[serde(default)]
    output_dimensionality: Option<usize>,
}

#[derive(Deserialize)]
struct EmbedContent {
    #[serde(default)]
    parts: Vec<EmbedPart>,
}

#[derive(Deserialize)]
struct EmbedPart {
    #[serde(default)]
    text: Option<String>,
}

impl EmbedContentRequest {
    /// The input, if the request's `model` (when it names one) is the
    /// path's: its parts' texts, joined by newlines.
    fn input(self, model: &str) -> Result<Input, String> {
        if let Some(named) = &self.model
            && named.strip_prefix("models/").unwrap_or(named) != model
        {
            return Err(format!(
                "the request's model `{named}` is not the path's `models/{model}`"
            ));
        }
        let texts: Vec<String> = self
            .content
            .parts
            .into_iter()
            .filter_map(|part| part.text)
            .collect();
        if texts.is_empty() {
            return Err("the content has no text part".to_owned());
        }
        let dimensions = self.output_dimensionality.unwrap_or(DEFAULT_DIMENSIONS);
        Ok(Input::text(texts.join("\n"), dimensions))
    }
}

pub(super) fn read_embeddings(call: &EmbedCall, body: &[u8]) -> Result<EmbedRequest, String> {
    let model = call.model.clone().unwrap_or_default();
    let (inputs, reply) = if call.kind == PathKind::GeminiEmbed {
        let request: EmbedContentRequest =
            serde_json::from_slice(body).map_err(|e| e.to_string())?;
        (vec![request.input(&model)?], Reply::GeminiSingle)
    } else {
        let batch: BatchEmbedRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let inputs = batch
            .requests
            .into_iter()
            .map(|request| request.input(&model))
            .collect::<Result<_, _>>()?;
        (inputs, Reply::GeminiBatch)
    };
    Ok(EmbedRequest {
        model,
        inputs,
        reply,
    })
}

/// A `ContentEmbedding`.
#[derive(Serialize)]
struct Values {
    values: Vec<f32>,
}

#[derive(Serialize)]
struct BatchEmbedResponse {
    embeddings: Vec<Values>,
}

#[derive(Serialize)]
struct EmbedResponse {
    embedding: Values,
}

/// The answer to an embeddings request: `{"embeddings":[…]}` for a batch,
/// `{"embedding":…}` for one.
pub(super) fn embeddings(name: &str, request: &EmbedRequest) -> Bytes {
    let mut embeddings: Vec<Values> = request
        .inputs
        .iter()
        .map(|input| Values {
            values: embed::vector(name, &input.text, input.dimensions),
        })
        .collect();
    let body = match (request.reply, embeddings.pop()) {
        (Reply::GeminiSingle, Some(embedding)) => serde_json::to_vec(&EmbedResponse { embedding }),
        (_, last) => {
            embeddings.extend(last);
            serde_json::to_vec(&BatchEmbedResponse { embeddings })
        }
    };
    Bytes::from(body.unwrap_or_default())
}

fn usage(tokens: usize) -> Value {
    json!({
        "promptTokenCount": PROMPT_TOKENS,
        "candidatesTokenCount": tokens,
        "totalTokenCount": PROMPT_TOKENS + tokens,
    })
}

/// A response with one candidate holding `part`; the last one of an answer
/// has the finish reason and the usage.
fn response(model: &str, part: &Value, last: Option<usize>) -> Value {
    let mut candidate = json!({
        "content": { "role": "model", "parts": [part] },
        "index": 0,
    });
    let mut body =
        json!({ "candidates": [], "modelVersion": model, "responseId": "understudy-mock" });
    if let Some(tokens) = last {
        candidate["finishReason"] = json!("STOP");
        body["usageMetadata"] = usage(tokens);
    }
    body["candidates"] = json!([candidate]);
    body
}

fn event(data: &Value) -> String {
    sse_text(None, data, EOL)
}

pub(super) fn render(context: &Context<'_>) -> Rendered {
    let tokens = context.pieces.len();
    let full = response(MODEL_HOLE, &json!({ "text": context.text }), Some(tokens));
    let stream = context
        .pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let last = (i + 1 == tokens).then_some(tokens);
            Template::new(&event(&response(
                MODEL_HOLE,
                &json!({ "text": piece }),
                last,
            )))
        })
        .collect();
    Rendered {
        full: Template::new(&full.to_string()),
        stream,
        usage: None,
        tail: Vec::new(),
        models: Bytes::from(
            json!({
                "models": [{
                    "name": format!("models/{LISTED_MODEL}"),
                    "version": "001",
                    "displayName": format!("Mock model of {}", context.name),
                    "inputTokenLimit": 1_048_576,
                    "outputTokenLimit": 8192,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                }],
            })
            .to_string(),
        ),
    }
}

/// Google's name of the status an HTTP status stands for.
fn status_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 | 529 => "UNAVAILABLE",
        408 | 504 => "DEADLINE_EXCEEDED",
        400..=499 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

fn body(status: StatusCode, message: &str, retry: Option<Duration>) -> Value {
    let mut error = json!({
        "code": status.as_u16(),
        "message": message,
        "status": status_name(status),
    });
    if status == StatusCode::TOO_MANY_REQUESTS {
        let secs = retry.unwrap_or(Duration::from_secs(1)).as_secs();
        error["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{secs}s"),
        }]);
    }
    json!({ "error": error })
}

/// An error as Google sends it; a 429 says when to retry in a `RetryInfo`
/// detail (one second unless `retry` says otherwise).
pub(super) fn error(status: StatusCode, message: &str, retry: Option<Duration>) -> ErrorAnswer {
    ErrorAnswer::json(status, &body(status, message, retry))
}

pub(super) fn error_event(message: &str) -> Bytes {
    Bytes::from(event(&body(StatusCode::SERVICE_UNAVAILABLE, message, None)))
}

/// A response to a blocked prompt: its feedback and no candidate.
fn blocked_response(model: &str) -> Value {
    json!({
        "promptFeedback": { "blockReason": "SAFETY" },
        "usageMetadata": { "promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS },
        "modelVersion": model,
        "responseId": "understudy-mock",
    })
}

/// The answer to a blocked prompt.
pub(super) fn blocked(model: &str) -> Bytes {
    Bytes::from(blocked_response(model).to_string())
}

/// The stream answering a blocked prompt: one event.
pub(super) fn blocked_event(model: &str) -> Bytes {
    Bytes::from(event(&blocked_response(model)))
}

/// A response that calls `tool`.
pub(super) fn tool_full(model: &str, tool: &str) -> Value {
    let part = json!({ "functionCall": { "name": tool, "args": tool_arguments() } });
    response(model, &part, Some(1))
}

/// A stream that calls `tool`: one event with the whole call.
pub(super) fn tool_stream(model: &str, tool: &str) -> Vec<Bytes> {
    vec![Bytes::from(event(&tool_full(model, tool)))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_model_and_the_stream() {
        let call = |uri: &str| chat_call(&uri.parse().unwrap());
        let found = call("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse").unwrap();
        assert_eq!(found.model.as_deref(), Some("gemini-2.0-flash"));
        assert_eq!(found.stream, Some(true));
        let found = call("/v1/models/gemini-1.5-pro:generateContent").unwrap();
        assert_eq!(found.kind, PathKind::GeminiGenerate);
        assert_eq!(found.stream, Some(false));
        assert_eq!(call("/v1beta/models/gemini:countTokens"), None);
        assert_eq!(call("/v1beta/models/:generateContent"), None);
        assert_eq!(call("/v1beta/tunedModels/x:generateContent"), None);
        assert_eq!(call("/v1beta/models/x:batchEmbedContents"), None);
    }

    #[test]
    fn embeddings_paths_name_the_model() {
        let call = |uri: &str| embed_call(&uri.parse().unwrap());
        let found = call("/v1beta/models/text-embedding-004:batchEmbedContents").unwrap();
        assert_eq!(found.model.as_deref(), Some("text-embedding-004"));
        assert_eq!(found.kind, PathKind::GeminiBatchEmbed);
        assert_eq!(
            call("/v1/models/e:embedContent").unwrap().kind,
            PathKind::GeminiEmbed
        );
        assert_eq!(call("/v1beta/models/e:generateContent"), None);
        assert_eq!(call("/v1beta/models/:embedContent"), None);
    }

    #[test]
    fn batch_requests_must_name_the_paths_model() {
        let call = embed_call(&"/v1beta/models/e:batchEmbedContents".parse().unwrap()).unwrap();
        let body = |model: &str| {
            json!({"requests": [{"model": model, "content": {"parts": [{"text": "a"}, {"text": "b"}]}}]})
                .to_string()
        };
        let request = read_embeddings(&call, body("models/e").as_bytes()).unwrap();
        assert_eq!(request.inputs[0].text, "a\nb");
        assert_eq!(request.inputs[0].dimensions, DEFAULT_DIMENSIONS);
        let error = read_embeddings(&call, body("models/f").as_bytes()).unwrap_err();
        assert!(error.contains("models/e"), "{error}");
    }
}
