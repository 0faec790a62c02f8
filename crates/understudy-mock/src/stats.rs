//! What a mock has seen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

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
    /// Chat requests received on the format's chat path.
    pub chat_requests: u64,
    /// `GET /v1/models` requests received.
    pub models_requests: u64,
    /// Requests to the control endpoint.
    pub control_requests: u64,
    /// Requests by path: the chat paths, `/v1/models`, `/__mock/faults`,
    /// `/__mock/stats`, and `other` for everything else.
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
    Models,
    ControlFaults,
    ControlStats,
    Other,
}

impl PathKind {
    const ALL: [Self; 6] = [
        Self::ChatCompletions,
        Self::Messages,
        Self::Models,
        Self::ControlFaults,
        Self::ControlStats,
        Self::Other,
    ];

    pub(crate) fn of(path: &str) -> Self {
        match path {
            "/v1/chat/completions" => Self::ChatCompletions,
            "/v1/messages" => Self::Messages,
            "/v1/models" => Self::Models,
            "/__mock/faults" => Self::ControlFaults,
            "/__mock/stats" => Self::ControlStats,
            _ => Self::Other,
        }
    }

    const fn label(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Messages => "/v1/messages",
            Self::Models => "/v1/models",
            Self::ControlFaults => "/__mock/faults",
            Self::ControlStats => "/__mock/stats",
            Self::Other => "other",
        }
    }

    pub(crate) const fn is_control(self) -> bool {
        matches!(self, Self::ControlFaults | Self::ControlStats)
    }
}

/// The live counters behind [`MockStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    by_path: [AtomicU64; 6],
    pub(crate) chat_requests: AtomicU64,
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

    pub(crate) fn snapshot(&self) -> MockStats {
        let mut stats = MockStats::default();
        for kind in PathKind::ALL {
            let count = self.by_path[kind as usize].load(Relaxed);
            stats.by_path.insert(kind.label().to_owned(), count);
            if kind.is_control() {
                stats.control_requests += count;
            } else {
                stats.requests += count;
            }
        }
        stats.models_requests = self.by_path[PathKind::Models as usize].load(Relaxed);
        stats.chat_requests = self.chat_requests.load(Relaxed);
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
