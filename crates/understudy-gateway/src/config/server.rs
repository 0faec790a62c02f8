//! `[server]`: the listening address, the edge's limits and timeouts.

use std::net::SocketAddr;

use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::positive_duration_ms;

/// The most serving threads `server.workers` may ask for.
pub(super) const MAX_WORKERS: usize = 1024;

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Request bodies above this many bytes get a 413.
    pub max_body_bytes: usize,
    /// Deadline for a whole caller request, all attempts included.
    pub request_timeout_ms: u64,
    /// How long in-flight requests may take to finish at shutdown.
    pub drain_timeout_ms: u64,
    /// A request head must arrive in full within this long of its first
    /// byte; slower connections are closed.
    pub header_read_timeout_ms: u64,
    /// A request body must arrive in full within this long (and within the
    /// request deadline); slower bodies get a 408.
    pub body_read_timeout_ms: u64,
    /// An idle keep-alive connection (no request in flight, no new one
    /// arriving) is closed after this long.
    pub keep_alive_timeout_ms: u64,
    /// Connections served at once; a connection beyond it gets a 503 and is
    /// closed. Keep it below the process's open-file limit.
    pub max_connections: usize,
    /// Requests in flight at once (streams count until they end); more get
    /// a 503 `overloaded` with `Retry-After: 1`.
    pub max_concurrent_requests: usize,
    /// `provider/model` in `model` addresses any model of any provider
    /// directly, without fallback. Off by default: then only the models a
    /// provider lists in `direct_models` can be addressed so.
    pub direct_addressing: bool,
    /// How many directly addressed `provider/model` stacks are kept; the
    /// least recently used one is dropped beyond it.
    pub direct_cache_size: usize,
    /// The longest SSE line, and the most data of one event, read from a
    /// provider's stream; more is a provider failure.
    pub max_event_bytes: usize,
    /// Origins browsers may call the gateway from (`"*"` for any); empty
    /// (the default) sends no CORS headers.
    pub cors_origins: Vec<String>,
    /// Threads serving connections, each with its own runtime and upstream
    /// connection pools; unset: one per core the process may use.
    pub workers: Option<usize>,
    /// An idle connection to a provider is closed after this long.
    pub upstream_idle_timeout_ms: u64,
    /// The most idle connections each serving thread keeps to one
    /// provider host; a connection freed beyond it is closed (0: none is
    /// kept, every request connects). Unset: no limit, so every request
    /// in flight at the busiest moment finds its connection again.
    pub upstream_max_idle_per_host: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 10 * 1024 * 1024,
            request_timeout_ms: 120_000,
            drain_timeout_ms: 30_000,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            keep_alive_timeout_ms: 60_000,
            max_connections: 1024,
            max_concurrent_requests: 512,
            direct_addressing: false,
            direct_cache_size: 64,
            max_event_bytes: 1024 * 1024,
            cors_origins: Vec::new(),
            workers: None,
            upstream_idle_timeout_ms: 90_000,
            upstream_max_idle_per_host: None,
        }
    }
}

impl ServerConfig {
    /// The serving threads: `workers`, or one per core the process may use.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// Checks every rule a TOML parse cannot, naming the key as
    /// `server.{key}`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes", "must be greater than 0"));
        }
        for (field, value) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("drain_timeout_ms", self.drain_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("keep_alive_timeout_ms", self.keep_alive_timeout_ms),
            ("upstream_idle_timeout_ms", self.upstream_idle_timeout_ms),
        ] {
            positive_duration_ms(&format!("server.{field}"), value)?;
        }
        for (field, value) in [
            ("max_connections", self.max_connections),
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("direct_cache_size", self.direct_cache_size),
            ("max_event_bytes", self.max_event_bytes),
        ] {
            if value == 0 {
                return Err(invalid(format!("server.{field}"), "must be greater than 0"));
            }
        }
        if let Some(workers) = self.workers
            && !(1..=MAX_WORKERS).contains(&workers)
        {
            return Err(invalid(
                "server.workers",
                format!("must be between 1 and {MAX_WORKERS}"),
            ));
        }
        for (i, origin) in self.cors_origins.iter().enumerate() {
            let valid = origin == "*"
                || (origin.parse::<http::Uri>().is_ok_and(|uri| {
                    matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.host().is_some()
                        && uri.path() == "/"
                        && !origin.ends_with('/')
                }) && http::HeaderValue::from_str(origin).is_ok());
            if !valid {
                return Err(invalid(
                    format!("server.cors_origins[{i}]"),
                    "must be \"*\" or an origin such as \"https://app.example.com\" (scheme and host, no path)",
                ));
            }
        }
        Ok(())
    }
}
