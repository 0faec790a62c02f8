//! OpenAI embeddings ↔ Gemini `batchEmbedContents`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Number, Value, json};

use crate::dialect::openai_request::read_object;
use crate::error::ProviderError;

/// The encodings an OpenAI caller may ask for. Gemini answers floats; a
/// `base64` answer is encoded by the service from the translated floats.
const ENCODING_FORMATS: [&str; 2] = ["float", "base64"];

/// Translates an OpenAI embeddings request body into a Gemini
/// `batchEmbedContents` request for `model`: one `EmbedContentRequest`
/// per input string, `dimensions` as each one's `outputDimensionality`.
///
/// Refused (an [invalid request](ProviderError::invalid_request) naming
/// the field): an `input` that is missing, empty, an empty string, or
/// tokens (`[int]`, `[[int]]`: Gemini embeds text only); `dimensions`
/// other than a positive integer; `encoding_format` other than `float` or
/// `base64`. Dropped: `user` and any field this translation does not
/// know.
///
/// # Example
///
/// ```
/// use understudy_provider::dialect::gemini::translate_embeddings_request;
///
/// let body = br#"{"model":"embed","input":["a cat","a dog"],"dimensions":256,"user":"u-1"}"#;
/// let out = translate_embeddings_request(body, "gemini-embedding-001").unwrap();
/// let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
/// assert_eq!(
///     json["requests"][1],
///     serde_json::json!({
///         "model": "models/gemini-embedding-001",
///         "content": {"parts": [{"text": "a dog"}]},
///         "outputDimensionality": 256
///     }),
/// );
///
/// let tokens = br#"{"model":"embed","input":[1234, 5678]}"#;
/// assert!(translate_embeddings_request(tokens, "gemini-embedding-001").is_err());
/// ```
pub fn translate_embeddings_request(body: &[u8], model: &str) -> Result<Bytes, ProviderError> {
    let request = read_object(body)?;
    let texts = inputs(request.get("input"))?;
    let dimensions = dimensions(request.get("dimensions"))?;
    check_encoding_format(request.get("encoding_format"))?;

    // A model may be configured as Google names it, `models/…`.
    let model = format!("models/{}", model.strip_prefix("models/").unwrap_or(model));
    let requests: Vec<Value> = texts
        .into_iter()
        .map(|text| {
            let mut one = Map::new();
            one.insert("model".to_owned(), Value::String(model.clone()));
            one.insert("content".to_owned(), json!({ "parts": [{ "text": text }] }));
            if let Some(dimensions) = dimensions {
                one.insert("outputDimensionality".to_owned(), Value::from(dimensions));
            }
            Value::Object(one)
        })
        .collect();
    let body = serde_json::to_vec(&json!({ "requests": requests }))
        .map_err(|e| ProviderError::invalid_request(e.to_string()))?;
    Ok(Bytes::from(body))
}

/// `input`: a string or an array of strings, none empty.
fn inputs(input: Option<&Value>) -> Result<Vec<&str>, ProviderError> {
    let texts = match input {
        None | Some(Value::Null) => {
            return Err(ProviderError::invalid_request("`input` is required"));
        }
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(ProviderError::invalid_request("`input` must not be empty"));
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::String(text) => Ok(text.as_str()),
                Value::Number(_) | Value::Array(_) => Err(tokens_refused()),
                _ => Err(ProviderError::invalid_request(format!(
                    "`input[{index}]` must be a string"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Number(_)) => return Err(tokens_refused()),
        Some(_) => {
            return Err(ProviderError::invalid_request(
                "`input` must be a string or an array of strings",
            ));
        }
    };
    if let Some(index) = texts.iter().position(|text| text.is_empty()) {
        let field = match input {
            Some(Value::Array(_)) => format!("input[{index}]"),
            _ => "input".to_owned(),
        };
        return Err(ProviderError::invalid_request(format!(
            "`{field}` must not be empty"
        )));
    }
    Ok(texts)
}

/// Token arrays: Gemini embeds text.
fn tokens_refused() -> ProviderError {
    ProviderError::invalid_request(
        "`input` as tokens is not supported by `gemini` targets: send text",
    )
}

/// `dimensions`: a positive integer, or absent.
fn dimensions(dimensions: Option<&Value>) -> Result<Option<u64>, ProviderError> {
    match dimensions {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
            ProviderError::invalid_request("`dimensions` must be a positive integer")
        }),
    }
}

/// `encoding_format`: `float`, `base64`, or absent.
fn check_encoding_format(format: Option<&Value>) -> Result<(), ProviderError> {
    match format {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(format)) if ENCODING_FORMATS.contains(&format.as_str()) => Ok(()),
        Some(_) => Err(ProviderError::invalid_request(
            "`encoding_format` must be `float` or `base64`",
        )),
    }
}

/// A `BatchEmbedContentsResponse`.
#[derive(Debug, Deserialize)]
struct BatchEmbedContentsResponse {
    embeddings: Vec<ContentEmbedding>,
}

#[derive(Debug, Deserialize)]
struct ContentEmbedding {
    values: Vec<Number>,
}

/// Translates a Gemini `BatchEmbedContentsResponse` into an OpenAI
/// embeddings list: the `n`th embedding's `values` become the `n`th
/// `data` item's float `embedding`, `model` is the model asked for.
/// Gemini's batch answer counts no tokens: `usage` is zero.
///
/// An answer without embeddings, or whose values are not numbers, is an
/// [invalid response](ProviderError::invalid_response).
///
/// # Example
///
/// ```
/// use understudy_provider::dialect::gemini::translate_embeddings_response;
///
/// let body = br#"{"embeddings":[{"values":[0.25,-0.5]},{"values":[1.0,0.0]}]}"#;
/// let out = translate_embeddings_response(body, "gemini-embedding-001").unwrap();
/// let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
/// assert_eq!(json["object"], "list");
/// assert_eq!(json["data"][1]["index"], 1);
/// assert_eq!(json["data"][0]["embedding"], serde_json::json!([0.25, -0.5]));
/// assert_eq!(json["usage"]["total_tokens"], 0);
/// ```
pub fn translate_embeddings_response(body: &[u8], model: &str) -> Result<Bytes, ProviderError> {
    let response: BatchEmbedContentsResponse = serde_json::from_slice(body).map_err(|e| {
        ProviderError::invalid_response(format!("not a BatchEmbedContentsResponse: {e}"))
    })?;
    if response.embeddings.is_empty() {
        return Err(ProviderError::invalid_response(
            "a BatchEmbedContentsResponse without embeddings",
        ));
    }
    let data: Vec<Value> = response
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| {
            json!({
                "object": "embedding",
                "index": index,
                "embedding": embedding.values,
            })
        })
        .collect();
    let list = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": 0, "total_tokens": 0 },
    });
    serde_json::to_vec(&list)
        .map(Bytes::from)
        .map_err(|e| ProviderError::invalid_response(e.to_string()))
}
