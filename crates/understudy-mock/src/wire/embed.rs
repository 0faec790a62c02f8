//! Embeddings: the calls that ask for them, what the mock reads from one,
//! and the vectors it answers with.
//!
//! A vector is a function of the mock's name and the input's text only: a
//! 64-bit FNV-1a hash of the two seeds a `SplitMix64` sequence, whose values
//! (16 bits each, spread over `-1.0..1.0`) are scaled to unit length. So the
//! same input gets the same vector from the same mock in every format, and
//! a test can tell which mock served it. A longer vector's raw values start
//! with a shorter one's.
//!
//! | Format | Path | Inputs | Length from | Answer |
//! | --- | --- | --- | --- | --- |
//! | `openai` | `POST /v1/embeddings` | `input`: a string, strings, tokens, or lists of tokens | `dimensions` | `{"object":"list","data":[{"object":"embedding","index","embedding"}],"model","usage"}` |
//! | `azure` | `POST /openai/deployments/{deployment}/embeddings?api-version=…` | as `openai` | `dimensions` | as `openai`, the deployment as `model` |
//! | `gemini` | `POST /v1beta/models/{model}:batchEmbedContents` (`/v1/` too) | `requests[].content.parts[].text` | `requests[].outputDimensionality` | `{"embeddings":[{"values"}]}` |
//! | `gemini` | `POST /v1beta/models/{model}:embedContent` | `content.parts[].text` | `outputDimensionality` | `{"embedding":{"values"}}` |
//!
//! Anthropic and Bedrock serve no embeddings path: theirs are 404s.

use base64::Engine as _;
use bytes::Bytes;
use http::Uri;

use super::{azure, gemini, openai};
use crate::config::WireFormat;
use crate::stats::PathKind;

/// The length of a vector when the request does not say.
pub(crate) const DEFAULT_DIMENSIONS: usize = 8;
/// The longest vector served (the longest a real embedding model answers).
const MAX_DIMENSIONS: usize = 3072;
/// The most values one answer holds, over all its vectors.
const MAX_VALUES: usize = 1 << 20;

/// An embeddings call, as the request's path names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EmbedCall {
    /// The path, for counting.
    pub(crate) kind: PathKind,
    /// The model, when the path names it (Azure's deployment, Gemini's
    /// model); otherwise it is read from the body.
    pub(crate) model: Option<String>,
}

/// How an embeddings answer is shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// OpenAI's (and Azure's) list, the vectors as JSON numbers or, with
    /// `base64`, as base64 of their little-endian `f32`s.
    OpenAi {
        /// `encoding_format: "base64"`.
        base64: bool,
    },
    /// Gemini's `batchEmbedContents`: `{"embeddings":[{"values"}]}`.
    GeminiBatch,
    /// Gemini's `embedContent`: `{"embedding":{"values"}}`.
    GeminiSingle,
}

/// One input to embed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Input {
    /// The text the vector is made from (token inputs: the tokens, written
    /// as decimal numbers between spaces).
    pub(crate) text: String,
    /// The tokens the input counts for in the usage: the text's words (at
    /// least one), or the tokens given.
    pub(crate) tokens: usize,
    /// The vector's length.
    pub(crate) dimensions: usize,
}

impl Input {
    /// A text input.
    pub(crate) fn text(text: String, dimensions: usize) -> Self {
        let tokens = text.split_whitespace().count().max(1);
        Self {
            text,
            tokens,
            dimensions,
        }
    }

    /// A token input.
    pub(crate) fn tokens(tokens: &[u64], dimensions: usize) -> Self {
        let text = tokens
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            text,
            tokens: tokens.len(),
            dimensions,
        }
    }
}

/// What the mock reads from an embeddings request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EmbedRequest {
    /// The model the answer names (OpenAI, Azure).
    pub(crate) model: String,
    /// The inputs, in order.
    pub(crate) inputs: Vec<Input>,
    /// The answer's shape.
    pub(crate) reply: Reply,
}

impl EmbedRequest {
    /// Checks the lengths the mock serves: 1 to 3072 values a vector, at
    /// most 2^20 values in all, at least one input.
    pub(crate) fn checked(self) -> Result<Self, String> {
        if self.inputs.is_empty() {
            return Err("there is no input to embed".to_owned());
        }
        let mut values = 0usize;
        for input in &self.inputs {
            if !(1..=MAX_DIMENSIONS).contains(&input.dimensions) {
                return Err(format!(
                    "the dimensions must be in the range 1..={MAX_DIMENSIONS}, not {}",
                    input.dimensions
                ));
            }
            values = values.saturating_add(input.dimensions);
        }
        if values > MAX_VALUES {
            return Err(format!(
                "the answer would hold {values} values, more than this mock serves ({MAX_VALUES})"
            ));
        }
        Ok(self)
    }

    /// The tokens the inputs count for.
    pub(crate) fn tokens(&self) -> usize {
        self.inputs
            .iter()
            .fold(0, |sum, input| sum.saturating_add(input.tokens))
    }
}

impl WireFormat {
    /// The embeddings call `uri` names in this format, or `None` when it
    /// names none (Anthropic and Bedrock have none; Azure's path needs an
    /// `api-version`).
    pub(crate) fn embed_call(self, uri: &Uri) -> Option<EmbedCall> {
        match self {
            Self::OpenAi => (uri.path() == "/v1/embeddings").then_some(EmbedCall {
                kind: PathKind::Embeddings,
                model: None,
            }),
            Self::Azure => azure::embed_call(uri),
            Self::Gemini => gemini::embed_call(uri),
            Self::Anthropic | Self::Bedrock => None,
        }
    }

    /// Reads an embeddings request's body for `call`, or says why it is
    /// invalid.
    pub(crate) fn read_embeddings(
        self,
        call: &EmbedCall,
        body: &[u8],
    ) -> Result<EmbedRequest, String> {
        match self {
            Self::OpenAi | Self::Azure => openai::read_embeddings(body, call.model.as_deref()),
            Self::Gemini => gemini::read_embeddings(call, body),
            Self::Anthropic | Self::Bedrock => Err("no embeddings here".to_owned()),
        }
        .and_then(EmbedRequest::checked)
        .map_err(|error| format!("invalid request body: {error}"))
    }
}

/// The answer to `request` from the mock named `name`.
pub(crate) fn answer(name: &str, request: &EmbedRequest) -> Bytes {
    match request.reply {
        Reply::OpenAi { base64 } => openai::embeddings(name, request, base64),
        Reply::GeminiBatch | Reply::GeminiSingle => gemini::embeddings(name, request),
    }
}

/// The unit vector of `dimensions` values the mock named `name` answers for
/// `text`.
pub(crate) fn vector(name: &str, text: &str, dimensions: usize) -> Vec<f32> {
    // FNV-1a over the name, a separator no UTF-8 text holds, and the text.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in name.as_bytes().iter().chain(&[0xff]).chain(text.as_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut state = hash;
    let mut values: Vec<f32> = (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let high = u16::try_from(z >> 48).unwrap_or(u16::MAX);
            f32::from(high) / 32768.0 - 1.0
        })
        .collect();
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for value in &mut values {
            *value /= norm;
        }
    }
    values
}

/// The standard base64 (with padding) of the little-endian bytes of
/// `values`, as OpenAI's `encoding_format: "base64"` sends a vector.
pub(crate) fn base64_f32(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_unit_length_and_depend_on_the_name_and_the_text() {
        let a = vector("primary", "hello", 16);
        assert_eq!(a.len(), 16);
        let norm: f32 = a.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        assert_eq!(a, vector("primary", "hello", 16));
        assert_ne!(a, vector("backup", "hello", 16));
        assert_ne!(a, vector("primary", "hello!", 16));
        // The raw values of a longer vector start with a shorter one's.
        let short = vector("primary", "hello", 4);
        let ratio = a[0] / short[0];
        for (long, short) in a.iter().zip(&short) {
            assert!((long / short - ratio).abs() < 1e-4);
        }
    }

    #[test]
    fn base64_is_standard_with_padding() {
        assert_eq!(base64_f32(&[]), "");
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, -2.0]), "AACAPwAAAMA=");
        assert_eq!(base64_f32(&[0.0, 0.0, 0.0]), "AAAAAAAAAAAAAAAA");
    }

    #[test]
    fn lengths_are_bounded() {
        let request = |dimensions: &[usize]| EmbedRequest {
            model: "m".to_owned(),
            inputs: dimensions
                .iter()
                .map(|&d| Input::text("x".to_owned(), d))
                .collect(),
            reply: Reply::GeminiBatch,
        };
        assert!(request(&[8, 3072]).checked().is_ok());
        assert!(request(&[]).checked().is_err());
        assert!(request(&[0]).checked().is_err());
        assert!(request(&[3073]).checked().is_err());
        assert!(request(&[3072; 400]).checked().is_err());
    }

    #[test]
    fn usage_counts_words_and_tokens() {
        let request = EmbedRequest {
            model: "m".to_owned(),
            inputs: vec![
                Input::text("two words".to_owned(), 8),
                Input::text(String::new(), 8),
                Input::tokens(&[1, 2, 3], 8),
            ],
            reply: Reply::OpenAi { base64: false },
        };
        assert_eq!(request.tokens(), 6);
        assert_eq!(request.inputs[2].text, "1 2 3");
    }
}
