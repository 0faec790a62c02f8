//! The encoding of a translated embeddings answer: a caller that asked for
//! `"encoding_format": "base64"` gets each vector as OpenAI encodes it,
//! whatever the provider answered.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::dialect::Operation;
use crate::error::ProviderError;

/// How the vectors of a translated embeddings answer reach the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum EmbeddingEncoding {
    /// As the translation gives them (JSON numbers); also every answer
    /// that is not an embeddings list.
    #[default]
    AsTranslated,
    /// Each `data[].embedding` array as a base64 string (standard, padded)
    /// of its values as little-endian `f32`s.
    Base64,
}

/// The one field of the caller's embeddings request read here.
#[derive(Deserialize)]
struct Asked<'a> {
    #[serde(default, borrow)]
    encoding_format: Option<Cow<'a, str>>,
}

impl EmbeddingEncoding {
    /// What the caller's request `body` asked for; only embeddings requests
    /// are read. A body that cannot be read asks for nothing (the
    /// translation has already refused it).
    pub(super) fn asked(operation: Operation, body: &[u8]) -> Self {
        if operation != Operation::Embeddings {
            return Self::AsTranslated;
        }
        match serde_json::from_slice::<Asked<'_>>(body) {
            Ok(Asked {
                encoding_format: Some(format),
            }) if format == "base64" => Self::Base64,
            _ => Self::AsTranslated,
        }
    }

    /// Encodes a translated embeddings list (`{"data": [{"embedding":
    /// [...]}, ...]}`) as asked. A vector already a string is left as it
    /// is; one that is neither, or holds anything but numbers, is an
    /// invalid answer.
    pub(super) fn encode(self, answer: Bytes) -> Result<Bytes, ProviderError> {
        if self == Self::AsTranslated {
            return Ok(answer);
        }
        let mut list: Value = serde_json::from_slice(&answer).map_err(|e| {
            ProviderError::invalid_response(format!("an embeddings answer that is not JSON: {e}"))
        })?;
        let data = list
            .get_mut("data")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| {
                ProviderError::invalid_response("an embeddings answer without `data`")
            })?;
        for (index, item) in data.iter_mut().enumerate() {
            match item.get_mut("embedding") {
                Some(Value::String(_)) => {}
                Some(embedding @ Value::Array(_)) => {
                    let encoded = base64_f32(embedding).ok_or_else(|| {
                        ProviderError::invalid_response(format!(
                            "`data[{index}].embedding` holds a value that is not a number"
                        ))
                    })?;
                    *embedding = Value::String(encoded);
                }
                _ => {
                    return Err(ProviderError::invalid_response(format!(
                        "`data[{index}].embedding` is not a vector"
                    )));
                }
            }
        }
        serde_json::to_vec(&list)
            .map(Bytes::from)
            .map_err(|e| ProviderError::invalid_response(e.to_string()))
    }
}

/// An array of numbers as base64 of little-endian `f32`s; `None` when a
/// value is not a number (or `vector` not an array).
fn base64_f32(vector: &Value) -> Option<String> {
    let values = vector.as_array()?;
    let mut bytes = Vec::with_capacity(values.len().saturating_mul(4));
    for value in values {
        bytes.extend_from_slice(&to_f32(value.as_f64()?).to_le_bytes());
    }
    Some(STANDARD.encode(bytes))
}

/// The nearest `f32`: embeddings are `f32`s, which JSON carries as numbers.
#[allow(clippy::cast_possible_truncation)] // Rounding to f32 is the encoding.
fn to_f32(value: f64) -> f32 {
    value as f32
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn decode(encoded: &Value) -> Vec<f32> {
        let bytes = STANDARD.decode(encoded.as_str().unwrap()).unwrap();
        bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn only_embeddings_requests_asking_for_base64_are_encoded() {
        let base64 = br#"{"model":"e","input":"hi","encoding_format":"base64"}"#;
        assert_eq!(
            EmbeddingEncoding::asked(Operation::Embeddings, base64),
            EmbeddingEncoding::Base64
        );
        assert_eq!(
            EmbeddingEncoding::asked(Operation::ChatCompletions, base64),
            EmbeddingEncoding::AsTranslated
        );
        for body in [
            &br#"{"input":"hi","encoding_format":"float"}"#[..],
            br#"{"input":"hi"}"#,
            br#"{"input":"hi","encoding_format":null}"#,
            b"not json",
        ] {
            assert_eq!(
                EmbeddingEncoding::asked(Operation::Embeddings, body),
                EmbeddingEncoding::AsTranslated
            );
        }
    }

    #[test]
    fn base64_is_little_endian_f32_that_decodes_to_the_floats() {
        let floats = [0.25_f32, -1.5, 0.123_456_79, 3.0e-8];
        let answer = json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": floats},
                {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]}
            ],
            "model": "m",
            "usage": {"prompt_tokens": 0, "total_tokens": 0}
        });
        let out = EmbeddingEncoding::Base64
            .encode(Bytes::from(serde_json::to_vec(&answer).unwrap()))
            .unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(decode(&out["data"][0]["embedding"]), floats);
        assert_eq!(decode(&out["data"][1]["embedding"]), [1.0, 0.0]);
        // 1.0f32 and 0.0f32, little-endian, standard padded base64.
        assert_eq!(out["data"][1]["embedding"], "AACAPwAAAAA=");
        assert_eq!(out["data"][0]["index"], 0);
        assert_eq!(out["model"], "m");
        assert_eq!(out["usage"], answer["usage"]);
    }

    #[test]
    fn floats_asked_for_pass_as_translated() {
        let answer = Bytes::from_static(br#"{"data":[{"embedding":[0.5]}]}"#);
        assert_eq!(
            EmbeddingEncoding::AsTranslated
                .encode(answer.clone())
                .unwrap(),
            answer
        );
    }

    #[test]
    fn anything_but_numbers_is_an_invalid_answer() {
        for answer in [
            &br#"{"data":[{"embedding":[0.5,"x"]}]}"#[..],
            br#"{"data":[{"embedding":{"values":[0.5]}}]}"#,
            br#"{"data":[{"index":0}]}"#,
            br#"{"object":"list"}"#,
            b"[1,2",
        ] {
            let error = EmbeddingEncoding::Base64
                .encode(Bytes::copy_from_slice(answer))
                .unwrap_err();
            assert!(
                matches!(error, ProviderError::InvalidResponse { .. }),
                "{error:?}"
            );
        }
    }
}
