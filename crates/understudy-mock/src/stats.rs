//! What a mock has seen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use crate::config::WireFormat;

/// A snapshot of a mock's counters, as [`MockProvider::stats`] returns and
/// `GET /__mock/stats` serves.
///
/// Requests to the control endpoint are counted only in
/// `control_requests` and `by_path`, so polling the stats does not change
/// the other numbers.
///
/// [`MockProvider::stats`]: crate::MockProvider::stats
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MockStats {
    /// Requests received, control requests excluded.
    pub requests: u64,
    /// Chat requests received on the format's chat paths.
    pub chat_requests: u64,
    /// Embeddings requests received on the format's embeddings paths
    /// (`/v1/embeddings`, Azure's `…/embeddings`, Gemini's
    /// `:batchEmbedContents` and `:embedContent`).
    #[serde(default)]
    pub embeddings_requests: u64,
    /// Requests received on the format's models path (`/v1/models`,
    /// `/openai/models`, `/v1beta/models`, `/foundation-models`).
    pub models_requests: u64,
    /// Requests to the control endpoint.
    pub control_requests: u64,
    /// Requests by path: the chat and embeddings paths (for the formats
    /// that name the model in the path, a pattern such as
    /// `/model/{modelId}/converse`), the models path, `/__mock/faults`,
    /// `/__mock/stats`, and `other` for everything else. The OpenAI and
    /// Anthropic mocks list both of their chat paths and `/v1/embeddings`
    /// (a 404 on the Anthropic mock).
    pub by_path: BTreeMap<String, u64>,
    /// Requests answered normally with a 2xx (a stream counts when its head
    /// is sent).
    pub served_ok: u64,
    /// Requests and connections a fault (other than `none`) was applied to.
    pub faulted: u64,
    /// Requests the mock rejected as a real provider would: invalid JSON,
    /// unknown path, wrong method.
    pub rejected: u64,
    /// Connections accepted.
    pub connections_accepted: u64,
    /// Connections accepted and reset at once by a `refuse` rule with a
    /// count or a probability.
    pub connections_refused: u64,
    /// Connections open now.
    pub open_connections: u64,
    /// Streamed answers in progress now.
    pub streams_in_progress: u64,
}

/// The path a request went to, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathKind {
    ChatCompletions,
    Messages,
    /// The format's models listing.
    Models,
    ControlFaults,
    ControlStats,
    Other,
    AzureChat,
    GeminiGenerate,
    GeminiStream,
    BedrockConverse,
    BedrockConverseStream,
    Embeddings,
    AzureEmbeddings,
    GeminiBatchEmbed,
    GeminiEmbed,
}

/// How many kinds there are.
const KINDS: usize = 15;

impl PathKind {
    /// The kinds a format's stats list, in order.
    const fn listed(format: WireFormat) -> &'static [Self] {
        match format {
            WireFormat::OpenAi | WireFormat::Anthropic => &[
                Self::ChatCompletions,
                Self::Messages,
                Self::Embeddings,
                Self::Models,
                Self::ControlFaults,
                Self::ControlStats,
                Self::Other,
            ],
            WireFormat::Azure => &[
                Self::AzureChat,
                Self::AzureEmbeddings,
                Self::Models,
                Self::ControlFaults,
                Self::ControlStats,
                Self::Other,
            ],
            WireFormat::Gemini => &[
                Self::GeminiGenerate,
                Self::GeminiStream,
                Self::GeminiBatchEmbed,
                Self::GeminiEmbed,
                Self::Models,
                Self::ControlFaults,
                Self::ControlStats,
                Self::Other,
            ],
            WireFormat::Bedrock => &[
                Self::BedrockConverse,
                Self::BedrockConverseStream,
                Self::Models,
                Self::ControlFaults,
                Self::ControlStats,
                Self::Other,
            ],
        }
    }

    /// The kind of a path that is no chat call, models listing or control
    /// path of the format: the OpenAI and Anthropic mocks count each
    /// other's paths apart, as they share `/v1`.
    pub(crate) fn other(format: WireFormat, path: &str) -> Self {
        match (format, path) {
            (WireFormat::OpenAi | WireFormat::Anthropic, "/v1/chat/completions") => {
                Self::ChatCompletions
            }
            (WireFormat::OpenAi | WireFormat::Anthropic, "/v1/messages") => Self::Messages,
            (WireFormat::OpenAi | WireFormat::Anthropic, "/v1/embeddings") => Self::Embeddings,
            (WireFormat::OpenAi | WireFormat::Anthropic, "/v1/models") => Self::Models,
            _ => Self::Other,
        }
    }

    /// The control path `path` is, if it is one.
    pub(crate) fn control(path: &str) -> Option<Self> {
        match path {
            "/__mock/faults" => Some(Self::ControlFaults),
            "/__mock/stats" => Some(Self::ControlStats),
            _ => None,
        }
    }

    const fn label(self, format: WireFormat) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Messages => "/v1/messages",
            Self::Models => match format {
                WireFormat::OpenAi | WireFormat::Anthropic => "/v1/models",
                WireFormat::Azure => "/openai/models",
                WireFormat::Gemini => "/v1beta/models",
                WireFormat::Bedrock => "/foundation-models",
            },
            Self::ControlFaults => "/__mock/faults",
            Self::ControlStats => "/__mock/stats",
            Self::Other => "other",
            Self::AzureChat => "/openai/deployments/{deployment}/chat/completions",
            Self::GeminiGenerate => "/v1beta/models/{model}:generateContent",
            Self::GeminiStream => "/v1beta/models/{model}:streamGenerateContent",
            Self::BedrockConverse => "/model/{modelId}/converse",
            Self::BedrockConverseStream => "/model/{modelId}/converse-stream",
            Self::Embeddings => "/v1/embeddings",
            Self::AzureEmbeddings => "/openai/deployments/{deployment}/embeddings",
            Self::GeminiBatchEmbed => "/v1beta/models/{model}:batchEmbedContents",
            Self::GeminiEmbed => "/v1beta/models/{model}:embedContent",
        }
    }

    pub(crate) const fn is_control(self) -> bool {
        matches!(self, Self::ControlFaults | Self::ControlStats)
    }
}

/// The live counters behind [`MockStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    by_path: [AtomicU64; KINDS],
    pub(crate) chat_requests: AtomicU64,
    pub(crate) embeddings_requests: AtomicU64,
    pub(crate) served_ok: AtomicU64,
    pub(crate) faulted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) open_connections: AtomicU64,
    pub(crate) streams_in_progress: AtomicU64,
}

impl Counters {
    pub(crate) fn count_path(&self, kind: PathKind) {
        self.by_path[kind as usize].fetch_add(1, Relaxed);
    }

    /// The counters now, with the paths of `format` listed.
    pub(crate) fn snapshot(&self, format: WireFormat) -> MockStats {
        let mut stats = MockStats::default();
        for &kind in PathKind::listed(format) {
            let count = self.by_path[kind as usize].load(Relaxed);
            stats.by_path.insert(kind.label(format).to_owned(), count);
            if kind.is_control() {
                stats.control_requests += count;
            } else {
                stats.requests += count;
            }
        }
        stats.models_requests = self.by_path[PathKind::Models as usize].load(Relaxed);
        stats.chat_requests = self.chat_requests.load(Relaxed);
        stats.embeddings_requests = self.embeddings_requests.load(Relaxed);
        stats.served_ok = self.served_ok.load(Relaxed);
        stats.faulted = self.faulted.load(Relaxed);
        stats.rejected = self.rejected.load(Relaxed);
        stats.connections_accepted = self.connections_accepted.load(Relaxed);
        stats.connections_refused = self.connections_refused.load(Relaxed);
        stats.open_connections = self.open_connections.load(Relaxed);
        stats.streams_in_progress = self.streams_in_progress.load(Relaxed);
        stats
    }
}
