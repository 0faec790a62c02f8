//! How a mock is set up.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::fault::{FaultPlan, FaultRule};

/// The wire format a mock speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// OpenAI Chat Completions: `POST /v1/chat/completions`, errors as
    /// `{"error":{"message","type","param","code"}}`.
    #[default]
    OpenAi,
    /// Anthropic Messages: `POST /v1/messages`, errors as
    /// `{"type":"error","error":{"type","message"}}`.
    Anthropic,
}

impl WireFormat {
    /// The path chat requests are sent to.
    pub const fn chat_path(self) -> &'static str {
        match self {
            Self::OpenAi => "/v1/chat/completions",
            Self::Anthropic => "/v1/messages",
        }
    }
}

impl fmt::Display for WireFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        })
    }
}

impl FromStr for WireFormat {
    type Err = UnknownWireFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openai" => Ok(Self::OpenAi),
            "anthropic" => Ok(Self::Anthropic),
            _ => Err(UnknownWireFormat(name.to_owned())),
        }
    }
}

/// A wire format name that is neither `openai` nor `anthropic`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown wire format `{0}`: expected `openai` or `anthropic`")]
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

    /// Sets the number of content chunks in a stream.
    pub fn stream_chunks(mut self, chunks: usize) -> Self {
        self.stream_chunks = chunks;
        self
    }
}
