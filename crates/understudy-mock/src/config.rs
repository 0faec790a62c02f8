//! How a mock is set up.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::fault::{FaultPlan, FaultRule};

/// The wire format a mock speaks.
///
/// Named on the command line and in serde as `openai`, `anthropic`,
/// `azure`, `gemini` and `bedrock`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// OpenAI Chat Completions: `POST /v1/chat/completions`, embeddings at
    /// `POST /v1/embeddings`, models at `GET /v1/models`, errors as `{"error":{"message","type","param","code"}}`.
    #[default]
    OpenAi,
    /// Anthropic Messages: `POST /v1/messages`, models at `GET /v1/models`,
    /// no embeddings, errors as `{"type":"error","error":{"type","message"}}`.
    Anthropic,
    /// Azure OpenAI: `POST /openai/deployments/{deployment}/chat/completions?api-version=…`
    /// (404 without `api-version`), embeddings at
    /// `POST /openai/deployments/{deployment}/embeddings?api-version=…`,
    /// models at `GET /openai/models?api-version=…`;
    /// OpenAI's shapes with Azure's content filter results, the deployment
    /// as the answer's model, errors as `{"error":{"code":"429","message"}}`.
    Azure,
    /// The Gemini API: `POST /v1beta/models/{model}:generateContent` and
    /// `:streamGenerateContent?alt=sse`, embeddings at
    /// `:batchEmbedContents` and `:embedContent`, models at `GET /v1beta/models`,
    /// errors as `{"error":{"code":429,"message","status":"RESOURCE_EXHAUSTED"}}`.
    Gemini,
    /// AWS Bedrock Runtime's Converse API: `POST /model/{modelId}/converse`
    /// and `/converse-stream` (binary event-stream frames), models at
    /// `GET /foundation-models`, no embeddings; requests must carry a `SigV4` `authorization`
    /// and `x-amz-date` (the signature is not checked); errors named in the
    /// `x-amzn-ErrorType` header, with a `{"message"}` body.
    Bedrock,
}

impl WireFormat {
    /// Every format.
    pub const ALL: [Self; 5] = [
        Self::OpenAi,
        Self::Anthropic,
        Self::Azure,
        Self::Gemini,
        Self::Bedrock,
    ];

    /// The path chat requests are sent to; for the formats that name the
    /// model in the path, a pattern with the model in braces (Gemini's
    /// non-streaming method, Bedrock's non-streaming operation).
    pub const fn chat_path(self) -> &'static str {
        match self {
            Self::OpenAi => "/v1/chat/completions",
            Self::Anthropic => "/v1/messages",
            Self::Azure => "/openai/deployments/{deployment}/chat/completions",
            Self::Gemini => "/v1beta/models/{model}:generateContent",
            Self::Bedrock => "/model/{modelId}/converse",
        }
    }

    /// The path embeddings requests are sent to, a pattern with the model
    /// in braces where the path names it (Gemini's batch method); `None`
    /// for the formats without embeddings (Anthropic, Bedrock).
    ///
    /// ```
    /// use understudy_mock::WireFormat;
    ///
    /// assert_eq!(WireFormat::OpenAi.embeddings_path(), Some("/v1/embeddings"));
    /// assert_eq!(WireFormat::Bedrock.embeddings_path(), None);
    /// ```
    pub const fn embeddings_path(self) -> Option<&'static str> {
        match self {
            Self::OpenAi => Some("/v1/embeddings"),
            Self::Azure => Some("/openai/deployments/{deployment}/embeddings"),
            Self::Gemini => Some("/v1beta/models/{model}:batchEmbedContents"),
            Self::Anthropic | Self::Bedrock => None,
        }
    }

    /// The format's name, as parsed and printed.
    pub const fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Azure => "azure",
            Self::Gemini => "gemini",
            Self::Bedrock => "bedrock",
        }
    }
}

impl fmt::Display for WireFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WireFormat {
    type Err = UnknownWireFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let wanted = name.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|format| format.name() == wanted)
            .ok_or_else(|| UnknownWireFormat(name.to_owned()))
    }
}

/// A wire format name that is none of `openai`, `anthropic`, `azure`,
/// `gemini` and `bedrock`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown wire format `{0}`: expected one of openai, anthropic, azure, gemini, bedrock")]
pub struct UnknownWireFormat(String);

/// How to start a [`MockProvider`](crate::MockProvider).
///
/// Fields are public; the methods are shortcuts for building one up.
///
/// ```
/// use understudy_mock::{FaultRule, MockConfig, WireFormat};
///
/// let config = MockConfig::anthropic()
///     .name("backup")
///     .seed(7)
///     .fault("status:529*2".parse::<FaultRule>().unwrap())
///     .stream_chunks(4);
/// assert_eq!(config.format, WireFormat::Anthropic);
/// assert_eq!(config.listen.port(), 0);
/// assert_eq!(config.faults.to_string(), "status:529*2");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MockConfig {
    /// Where to listen; `127.0.0.1:0` (any free port) by default.
    pub listen: SocketAddr,
    /// The wire format; OpenAI by default.
    pub format: WireFormat,
    /// The mock's name: the answer reads `Hello from {name}.`, and every
    /// response carries it in an `x-mock-name` header. `mock` by default.
    pub name: String,
    /// The seed of the probability draws (when the plan has none of its
    /// own); 0 by default.
    pub seed: u64,
    /// The faults in force from the start; none by default.
    pub faults: FaultPlan,
    /// How many content chunks a streamed answer is split into; 8 by
    /// default, at least 1, and at most the answer's length in characters.
    pub stream_chunks: usize,
    /// The answer's text in place of `Hello from {name}.`, if set. A
    /// request that asks to continue a prefix of it (its last message an
    /// assistant turn holding the prefix, or a `Continue …` user turn after
    /// one) is answered with the rest.
    pub text: Option<String>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            format: WireFormat::OpenAi,
            name: "mock".to_owned(),
            seed: 0,
            faults: FaultPlan::none(),
            stream_chunks: 8,
            text: None,
        }
    }
}

impl MockConfig {
    /// The defaults: OpenAI format on `127.0.0.1:0`, no faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The defaults with the OpenAI format.
    pub fn openai() -> Self {
        Self::default()
    }

    /// The defaults with the Anthropic format.
    pub fn anthropic() -> Self {
        Self::default().format(WireFormat::Anthropic)
    }

    /// The defaults with the Azure OpenAI format.
    pub fn azure() -> Self {
        Self::default().format(WireFormat::Azure)
    }

    /// The defaults with the Gemini format.
    pub fn gemini() -> Self {
        Self::default().format(WireFormat::Gemini)
    }

    /// The defaults with the Bedrock Converse format.
    pub fn bedrock() -> Self {
        Self::default().format(WireFormat::Bedrock)
    }

    /// Sets the listening address.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Sets the wire format.
    pub fn format(mut self, format: WireFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Appends a rule to the starting plan.
    pub fn fault(mut self, rule: impl Into<FaultRule>) -> Self {
        self.faults.rules.push(rule.into());
        self
    }

    /// Replaces the starting plan.
    pub fn faults(mut self, plan: impl Into<FaultPlan>) -> Self {
        self.faults = plan.into();
        self
    }

    /// Sets the answer's text (see [`MockConfig::text`](Self#structfield.text)).
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// How many content chunks a streamed answer has.
    pub fn stream_chunks(mut self, chunks: usize) -> Self {
        self.stream_chunks = chunks;
        self
    }
}
