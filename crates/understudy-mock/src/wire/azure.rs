//! Azure OpenAI: `POST /openai/deployments/{deployment}/chat/completions
//! ?api-version=…`, OpenAI's chat-completions shapes with Azure's content
//! filter results added (`prompt_filter_results` on the answer, or as a
//! first stream chunk with no choices; `content_filter_results` on each
//! choice), the deployment as the answer's model, and errors as
//! `{"error":{"code":"429","message":…}}`.
//!
//! Embeddings: `POST /openai/deployments/{deployment}/embeddings
//! ?api-version=…`, in OpenAI's shapes, the deployment as the model.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, Uri};
use serde_json::{Value, json};

use super::embed::EmbedCall;
use super::{
    ChatCall, ChatRequest, Context, ErrorAnswer, LISTED_MODEL, Rendered, Template, openai,
    percent_decode, query_param,
};
use crate::stats::PathKind;

/// The message of Azure's 404, for an unknown path or a missing
/// `api-version`.
pub(super) const NOT_FOUND: &str = "Resource not found";

/// Is the `api-version` query parameter there, and not empty?
fn has_api_version(uri: &Uri) -> bool {
    query_param(uri, "api-version").is_some_and(|version| !version.is_empty())
}

/// The deployment of `/openai/deployments/{deployment}{operation}`, if the
/// path is that and carries an `api-version`.
fn deployment(uri: &Uri, operation: &str) -> Option<String> {
    let deployment = uri
        .path()
        .strip_prefix("/openai/deployments/")?
        .strip_suffix(operation)?;
    if deployment.is_empty() || deployment.contains('/') || !has_api_version(uri) {
        return None;
    }
    percent_decode(deployment)
}

pub(super) fn chat_call(uri: &Uri) -> Option<ChatCall> {
    Some(ChatCall {
        kind: PathKind::AzureChat,
        model: Some(deployment(uri, "/chat/completions")?),
        stream: None,
    })
}

pub(super) fn embed_call(uri: &Uri) -> Option<EmbedCall> {
    Some(EmbedCall {
        kind: PathKind::AzureEmbeddings,
        model: Some(deployment(uri, "/embeddings")?),
    })
}

pub(super) fn is_models_path(uri: &Uri) -> bool {
    uri.path() == "/openai/models" && has_api_version(uri)
}

/// Reads a chat request; the body need not name a model, as the
/// deployment does.
pub(super) fn read_request(call: &ChatCall, body: &[u8]) -> Result<ChatRequest, String> {
    openai::read_request(body, call.model.as_deref())
}

pub(super) fn render(context: &Context<'_>) -> Rendered {
    let (stream, usage, tail) = openai::stream(context, true);
    Rendered {
        full: Template::new(&openai::full(context, true).to_string()),
        stream,
        usage: Some(usage),
        tail,
        models: Bytes::from(
            json!({
                "object": "list",
                "data": [{
                    "id": LISTED_MODEL,
                    "object": "model",
                    "created_at": context.created,
                    "status": "succeeded",
                    "capabilities": { "chat_completion": true, "completion": false },
                }],
            })
            .to_string(),
        ),
    }
}

/// Four harm categories, none filtered.
fn categories() -> Value {
    let safe = json!({ "filtered": false, "severity": "safe" });
    json!({
        "hate": safe,
        "self_harm": safe,
        "sexual": safe,
        "violence": safe,
    })
}

fn prompt_filter_results() -> Value {
    let mut results = categories();
    results["jailbreak"] = json!({ "filtered": false, "detected": false });
    json!([{ "prompt_index": 0, "content_filter_results": results }])
}

/// Adds `content_filter_results` to each choice of a completion or chunk,
/// and `prompt_filter_results` to a whole completion.
pub(super) fn add_filter_results(body: &mut Value) {
    if let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices {
            choice["content_filter_results"] = categories();
        }
    }
    if body["object"] == "chat.completion" {
        body["prompt_filter_results"] = prompt_filter_results();
    }
}

/// The first chunk of an Azure stream: the prompt's filter results and no
/// choices.
pub(super) fn prompt_filter_chunk() -> Value {
    json!({
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": prompt_filter_results(),
    })
}

fn body(status: StatusCode, message: &str) -> Value {
    json!({ "error": { "code": status.as_str(), "message": message } })
}

/// An error as Azure sends it; a 429 always says when to retry, in
/// `retry-after`, `retry-after-ms` and `x-ratelimit-reset-requests` (one
/// second unless `retry` says otherwise).
pub(super) fn error(status: StatusCode, message: &str, retry: Option<Duration>) -> ErrorAnswer {
    let answer = ErrorAnswer::json(status, &body(status, message));
    if status != StatusCode::TOO_MANY_REQUESTS {
        return openai::with_retry_after(answer, retry);
    }
    let wait = retry.unwrap_or(Duration::from_secs(1));
    openai::with_retry_after(answer, Some(wait)).header(
        "x-ratelimit-reset-requests",
        HeaderValue::from(wait.as_secs()),
    )
}

/// A prompt refused by the content filter: 400 `content_filter`, with the
/// filter's results (violence filtered) in `innererror`.
pub(super) fn content_filter(message: &str) -> ErrorAnswer {
    let mut results = categories();
    results["violence"] = json!({ "filtered": true, "severity": "high" });
    results["jailbreak"] = json!({ "filtered": false, "detected": false });
    let body = json!({
        "error": {
            "code": "content_filter",
            "message": message,
            "param": "prompt",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": results,
            },
        },
    });
    ErrorAnswer::json(StatusCode::BAD_REQUEST, &body)
}

pub(super) fn error_event(message: &str) -> Bytes {
    let data = body(StatusCode::SERVICE_UNAVAILABLE, message);
    Bytes::from(format!("data: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_paths_need_a_deployment_and_an_api_version() {
        let call = |uri: &str| chat_call(&uri.parse().unwrap());
        let found =
            call("/openai/deployments/gpt-4o%20mini/chat/completions?api-version=2024-10-21")
                .unwrap();
        assert_eq!(found.model.as_deref(), Some("gpt-4o mini"));
        assert_eq!(found.stream, None);
        assert_eq!(call("/openai/deployments/d/chat/completions"), None);
        assert_eq!(
            call("/openai/deployments/d/chat/completions?api-version="),
            None
        );
        assert_eq!(
            call("/openai/deployments//chat/completions?api-version=1"),
            None
        );
        assert_eq!(
            call("/openai/deployments/a/b/chat/completions?api-version=1"),
            None
        );
    }

    #[test]
    fn embeddings_paths_need_a_deployment_and_an_api_version() {
        let call = |uri: &str| embed_call(&uri.parse().unwrap());
        let found = call("/openai/deployments/ada%202/embeddings?api-version=2024-10-21").unwrap();
        assert_eq!(found.model.as_deref(), Some("ada 2"));
        assert_eq!(found.kind, PathKind::AzureEmbeddings);
        assert_eq!(call("/openai/deployments/d/embeddings"), None);
        assert_eq!(call("/openai/deployments//embeddings?api-version=1"), None);
        assert_eq!(
            call("/openai/deployments/d/chat/completions?api-version=1"),
            None
        );
    }
}
