//! The live status of the gateway's providers: [`StatusBoard`], the
//! observer that keeps the last minute of each provider's attempts, and
//! `GET /status.json` and `GET /status` (a self-contained page that renders
//! it every 2 s).
//!
//! Everything the board keeps is bounded: a ring of per-second counts and
//! a ring of time-to-first-content samples per provider (at most
//! [`MAX_PROVIDERS`] providers), and the last [`MAX_FALLBACKS`] fallbacks.
//! It keeps no request data and nothing a provider sent: an error is its
//! outcome kind and HTTP status.

mod rings;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, header};
use serde::Serialize;
use tokio::time::Instant;
use understudy_core::Outcome;
use understudy_core::events::{Event, Observer};
use understudy_health::ProviderSnapshot;

use self::rings::{Minute, Samples, percentile_ms};
use crate::app::AppState;

/// The most providers the board keeps; events for others are ignored.
pub const MAX_PROVIDERS: usize = 256;

/// The fallbacks the board keeps, newest first.
pub const MAX_FALLBACKS: usize = 20;

/// The route a fallback without one is shown under.
const UNKNOWN_ROUTE: &str = "unknown";

/// The page `GET /status` serves.
const PAGE: &str = include_str!("page.html");

/// What the status page shows, kept from the layers' events: per provider,
/// attempts and provider failures over the last 60 seconds, the last
/// error, and the median and 95th percentile of the time to first content
/// over the last 200 commits; and the last fallbacks.
///
/// The gateway reports to one beside its telemetry. It never blocks for
/// long (one short lock per event) and never grows past its bounds.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use understudy_core::events::{Event, Observer};
/// use understudy_core::{FailureKind, Outcome};
/// use understudy_gateway::status::StatusBoard;
///
/// let board = StatusBoard::new();
/// board.on_event(&Event::FirstContent {
///     provider: "openai",
///     model: "gpt-4o-mini",
///     elapsed: Duration::from_millis(120),
/// });
/// board.on_event(&Event::Fallback {
///     route: Some("chat"),
///     from: "openai",
///     to: "anthropic",
///     outcome: Outcome::Failure(FailureKind::Overloaded),
/// });
/// assert_eq!(board.fallbacks(), 1);
/// ```
pub struct StatusBoard {
    /// Seconds are counted from here.
    epoch: Instant,
    providers: Mutex<HashMap<String, ProviderBoard>>,
    fallbacks: Mutex<VecDeque<FallbackRecord>>,
}

/// One provider's part of the board.
#[derive(Default)]
struct ProviderBoard {
    minute: Minute,
    ttfc: Samples,
    last_error: Option<LastError>,
}

/// A provider's last failure: what it was, never what the provider said.
#[derive(Clone, Copy, Debug, Serialize)]
struct LastError {
    /// The outcome kind (`overloaded`, `timeout`, …).
    kind: &'static str,
    /// The HTTP status, if a response came.
    status: Option<u16>,
    /// When, in Unix milliseconds.
    at: u64,
}

impl LastError {
    /// `outcome`, now; `status` if a response came, else the outcome's own.
    fn new(outcome: Outcome, status: Option<http::StatusCode>) -> Self {
        Self {
            kind: outcome.kind().as_str(),
            status: status.or(outcome.status()).map(|s| s.as_u16()),
            at: unix_ms(SystemTime::now()),
        }
    }
}

/// One fallback, as `/status.json` lists it.
#[derive(Clone, Debug, Serialize)]
struct FallbackRecord {
    /// When, in Unix milliseconds.
    at: u64,
    route: String,
    from: String,
    to: String,
    /// The outcome kind that made the request leave `from`.
    reason: &'static str,
}

/// `/status.json`.
#[derive(Debug, Serialize)]
struct Report {
    /// When the report was made, in Unix milliseconds.
    generated_at: u64,
    providers: Vec<ProviderReport>,
    fallbacks: Vec<FallbackRecord>,
}

/// One provider in `/status.json`.
#[derive(Debug, Serialize)]
struct ProviderReport {
    name: String,
    /// `healthy`, `cooling_down`, `probing` or `ejected`.
    state: &'static str,
    /// Milliseconds until the ejection or cooldown ends, if one runs.
    until_ms: Option<u64>,
    last_error: Option<LastError>,
    /// Attempts over the last 60 seconds.
    requests_per_min: u32,
    /// Attempts over the last 60 seconds that were provider failures by
    /// their response head or error (a failure found later, before the
    /// commit, shows as the last error and a fallback).
    failures_per_min: u32,
    ttfc_p50_ms: Option<f64>,
    ttfc_p95_ms: Option<f64>,
}

impl StatusBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            providers: Mutex::new(HashMap::new()),
            fallbacks: Mutex::new(VecDeque::with_capacity(MAX_FALLBACKS)),
        }
    }

    /// The fallbacks held (at most [`MAX_FALLBACKS`]).
    pub fn fallbacks(&self) -> usize {
        lock(&self.fallbacks).len()
    }

    /// The seconds since the board was made.
    fn second(&self) -> u64 {
        self.epoch.elapsed().as_secs()
    }

    /// Runs `update` on `provider`'s part, made on first use while fewer
    /// than [`MAX_PROVIDERS`] are kept.
    fn with_provider(&self, provider: &str, update: impl FnOnce(&mut ProviderBoard)) {
        let mut providers = lock(&self.providers);
        if let Some(board) = providers.get_mut(provider) {
            update(board);
        } else if providers.len() < MAX_PROVIDERS {
            update(providers.entry(provider.to_owned()).or_default());
        }
    }

    /// The report `/status.json` serves: the providers of `snapshots`, in
    /// their order, with what the board knows of each.
    fn report(&self, snapshots: Vec<ProviderSnapshot>) -> Report {
        let now = self.second();
        let providers = {
            let boards = lock(&self.providers);
            snapshots
                .into_iter()
                .map(|snapshot| {
                    let board = boards.get(&snapshot.name);
                    let (requests, failures) =
                        board.map_or((0, 0), |board| board.minute.totals(now));
                    let sorted = board.map(|board| board.ttfc.sorted()).unwrap_or_default();
                    ProviderReport {
                        state: snapshot.state.as_str(),
                        until_ms: snapshot.until_ms,
                        last_error: board.and_then(|board| board.last_error),
                        requests_per_min: requests,
                        failures_per_min: failures,
                        ttfc_p50_ms: percentile_ms(&sorted, 50),
                        ttfc_p95_ms: percentile_ms(&sorted, 95),
                        name: snapshot.name,
                    }
                })
                .collect()
        };
        Report {
            generated_at: unix_ms(SystemTime::now()),
            providers,
            fallbacks: lock(&self.fallbacks).iter().cloned().collect(),
        }
    }
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusBoard")
            .field("providers", &lock(&self.providers).len())
            .field("fallbacks", &self.fallbacks())
            .finish_non_exhaustive()
    }
}

impl Observer for StatusBoard {
    fn on_event(&self, event: &Event<'_>) {
        match *event {
            Event::AttemptFinished {
                provider,
                outcome,
                status,
                ..
            } => {
                let now = self.second();
                let failed = outcome.is_provider_failure();
                self.with_provider(provider, |board| {
                    board.minute.record(now, failed);
                    if failed {
                        board.last_error = Some(LastError::new(outcome, status));
                    }
                });
            }
            Event::FirstContent {
                provider, elapsed, ..
            } => self.with_provider(provider, |board| board.ttfc.push(elapsed)),
            Event::Fallback {
                route,
                from,
                to,
                outcome,
            } => self.fallback(route, from, to, outcome),
            _ => {}
        }
    }
}

impl StatusBoard {
    fn fallback(&self, route: Option<&str>, from: &str, to: &str, outcome: Outcome) {
        // A failure found after the response head (a stream broken before
        // its first content, a body that is no answer, a timeout) reaches
        // the board only here.
        // The attempt's own report came first and may hold the status the
        // outcome does not (503 is `overloaded`): it is kept.
        if outcome.is_provider_failure() {
            self.with_provider(from, |board| {
                let kind = outcome.kind().as_str();
                let status = board
                    .last_error
                    .filter(|last| last.kind == kind)
                    .and_then(|last| last.status)
                    .and_then(|status| http::StatusCode::from_u16(status).ok());
                board.last_error = Some(LastError::new(outcome, status));
            });
        }
        let record = FallbackRecord {
            at: unix_ms(SystemTime::now()),
            route: route.unwrap_or(UNKNOWN_ROUTE).to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            reason: outcome.kind().as_str(),
        };
        let mut fallbacks = lock(&self.fallbacks);
        if fallbacks.len() >= MAX_FALLBACKS {
            fallbacks.pop_back();
        }
        fallbacks.push_front(record);
    }
}

/// A lock held only to copy or update a few numbers: a panic while it was
/// held left nothing half-written worth refusing.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `time` in Unix milliseconds, saturating.
fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// `GET /status` and `GET /status.json`, over the app's state. Open while
/// `[auth]` is off; with it, only to the metrics key (see [`admitted`]).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/status", get(page))
        .route("/status.json", get(json))
}

/// `None` when the request may see the status: always while `[auth]` is
/// off; with it, only with the metrics key (`metrics_key_env`), as
/// `Authorization: Bearer <key>` or as the password of HTTP Basic
/// credentials, which a browser asks for once and then sends with the
/// page's own requests. Without a metrics key configured, nobody may.
fn admitted(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let generation = state.live.current();
    let auth = generation.auth.as_ref()?;
    if auth.may_read_status(headers) {
        return None;
    }
    let mut refused =
        crate::auth::unauthorized(understudy_core::Operation::ChatCompletions).into_response();
    refused.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"understudy status\", charset=\"UTF-8\""),
    );
    Some(refused)
}

/// The page: inline style and script only, and a policy that lets it load
/// nothing else and reach only this origin.
async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = admitted(&state, &headers) {
        return refused;
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        PAGE,
    )
        .into_response()
}

/// The board and the providers' health, as JSON.
async fn json(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = admitted(&state, &headers) {
        return refused;
    }
    let report = state.status.report(state.registry.snapshot());
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(report),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::StatusCode;
    use understudy_core::events::{Event, Observer};
    use understudy_core::{Attempt, FailureKind, Outcome};
    use understudy_health::{HealthConfig, HealthRegistry};

    use super::{MAX_FALLBACKS, MAX_PROVIDERS, StatusBoard};

    fn attempt(board: &StatusBoard, provider: &str, outcome: Outcome, status: Option<u16>) {
        board.on_event(&Event::AttemptFinished {
            provider,
            model: "m",
            attempt: Attempt(1),
            outcome,
            status: status.map(|s| StatusCode::from_u16(s).unwrap()),
            latency: Duration::from_millis(3),
        });
    }

    #[test]
    fn attempts_failures_last_error_and_percentiles_per_provider() {
        let registry = HealthRegistry::new(HealthConfig::default());
        registry.register("primary");
        registry.register("backup");
        let board = StatusBoard::new();
        attempt(&board, "primary", Outcome::Success, Some(200));
        attempt(
            &board,
            "primary",
            Outcome::Failure(FailureKind::Overloaded),
            Some(503),
        );
        attempt(&board, "backup", Outcome::Success, Some(200));
        for ms in 1..=300u64 {
            board.on_event(&Event::FirstContent {
                provider: "backup",
                model: "m",
                elapsed: Duration::from_millis(ms),
            });
        }

        let report = serde_json::to_value(board.report(registry.snapshot())).unwrap();
        let providers = report["providers"].as_array().unwrap();
        assert_eq!(providers.len(), 2);
        let (backup, primary) = (&providers[0], &providers[1]);
        assert_eq!(primary["name"], "primary");
        assert_eq!(primary["state"], "healthy");
        assert_eq!(primary["requests_per_min"], 2);
        assert_eq!(primary["failures_per_min"], 1);
        assert_eq!(primary["last_error"]["kind"], "overloaded");
        assert_eq!(primary["last_error"]["status"], 503);
        assert!(primary["ttfc_p50_ms"].is_null());
        assert_eq!(backup["requests_per_min"], 1);
        assert!(backup["last_error"].is_null());
        // The last 200 samples: 101 ms to 300 ms.
        assert_eq!(backup["ttfc_p50_ms"], 200.0);
        assert_eq!(backup["ttfc_p95_ms"], 290.0);
    }

    #[test]
    fn fallbacks_are_newest_first_and_bounded() {
        let board = StatusBoard::new();
        for i in 0..(MAX_FALLBACKS + 5) {
            let to = format!("backup-{i}");
            board.on_event(&Event::Fallback {
                route: (i > 0).then_some("chat"),
                from: "primary",
                to: &to,
                outcome: Outcome::Failure(FailureKind::Timeout),
            });
        }
        assert_eq!(board.fallbacks(), MAX_FALLBACKS);
        let report = serde_json::to_value(board.report(Vec::new())).unwrap();
        let fallbacks = report["fallbacks"].as_array().unwrap();
        assert_eq!(fallbacks.len(), MAX_FALLBACKS);
        assert_eq!(fallbacks[0]["to"], format!("backup-{}", MAX_FALLBACKS + 4));
        assert_eq!(fallbacks[0]["route"], "chat");
        assert_eq!(fallbacks[0]["from"], "primary");
        assert_eq!(fallbacks[0]["reason"], "timeout");
        assert_eq!(fallbacks[MAX_FALLBACKS - 1]["to"], "backup-5");
    }

    #[test]
    fn a_failure_found_after_the_head_is_the_last_error() {
        let registry = HealthRegistry::new(HealthConfig::default());
        registry.register("primary");
        let board = StatusBoard::new();
        // The head was a 200; the stream broke before its first content.
        attempt(&board, "primary", Outcome::Success, Some(200));
        board.on_event(&Event::Fallback {
            route: Some("chat"),
            from: "primary",
            to: "backup",
            outcome: Outcome::Failure(FailureKind::StreamBroken),
        });
        // A skipped target is not an error of its own.
        board.on_event(&Event::Fallback {
            route: Some("chat"),
            from: "ejected",
            to: "backup",
            outcome: Outcome::Unavailable,
        });
        let report = serde_json::to_value(board.report(registry.snapshot())).unwrap();
        let primary = &report["providers"][0];
        assert_eq!(primary["last_error"]["kind"], "stream_broken", "{primary}");
        assert!(primary["last_error"]["status"].is_null(), "{primary}");
        assert_eq!(primary["requests_per_min"], 1);
        assert!(!super::lock(&board.providers).contains_key("ejected"));

        // A 503 is reported by its attempt, then by its fallback, whose
        // outcome has no status: the status stays.
        attempt(
            &board,
            "primary",
            Outcome::Failure(FailureKind::Overloaded),
            Some(503),
        );
        board.on_event(&Event::Fallback {
            route: Some("chat"),
            from: "primary",
            to: "backup",
            outcome: Outcome::Failure(FailureKind::Overloaded),
        });
        let report = serde_json::to_value(board.report(registry.snapshot())).unwrap();
        let primary = &report["providers"][0];
        assert_eq!(primary["last_error"]["kind"], "overloaded", "{primary}");
        assert_eq!(primary["last_error"]["status"], 503, "{primary}");
    }

    #[test]
    fn the_provider_map_is_capped() {
        let board = StatusBoard::new();
        for i in 0..(MAX_PROVIDERS + 10) {
            attempt(&board, &format!("p{i}"), Outcome::Success, None);
        }
        assert_eq!(super::lock(&board.providers).len(), MAX_PROVIDERS);
        // Those already kept are still counted.
        attempt(&board, "p0", Outcome::Success, None);
        assert_eq!(
            super::lock(&board.providers)["p0"]
                .minute
                .totals(board.second())
                .0,
            2
        );
    }
}
