//! The background task: connects, reads the current decisions back, applies
//! the ones other replicas announce, publishes this replica's own, leases
//! half-open trials, and, when the store fails, keeps the latest decision of
//! each provider until it can be published, reconnecting with backoff.
//!
//! Nothing here is on the request path: the registry answers from memory,
//! and this task learns of its decisions through the registry's bounded
//! event broadcast.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::{AsyncConnectionConfig, RedisError, RedisResult, Value};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};
use understudy_core::ProviderState;
use understudy_health::{HealthEvents, HealthRegistry, Origin};

use crate::config::SharedHealthConfig;
use crate::names;
use crate::record::{Clock, Record, millis};

/// How long the key of a restoration lives: long enough for a replica that
/// reconnects within a minute to learn that an ejection it holds is over.
pub(crate) const RESTORED_TTL: Duration = Duration::from_mins(1);
/// Keys asked for per `SCAN` round.
const SCAN_COUNT: usize = 200;
/// The most `SCAN` rounds of one catch-up (two million keys at most).
const MAX_SCAN_ROUNDS: usize = 10_000;
/// The most providers whose decisions wait for the store at once.
const MAX_PENDING: usize = 4096;

/// What the handle reads of the task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) connected: AtomicBool,
    pub(crate) published: AtomicU64,
    pub(crate) applied: AtomicU64,
    pub(crate) garbage: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) failures: AtomicU64,
}

mod keys;
mod publish;
mod trial;

use self::keys::{Applier, KeyKind, Keys};
use self::trial::{RENEW_SCRIPT, probing};

/// Why the store failed.
enum Fault {
    Redis {
        what: &'static str,
        error: RedisError,
    },
    Timeout(&'static str),
    Closed(&'static str),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis { what, error } => write!(f, "{what}: {error}"),
            Self::Timeout(what) => write!(f, "{what}: timed out"),
            Self::Closed(what) => write!(f, "{what}: connection closed"),
        }
    }
}

/// How a session ended.
enum End {
    /// The handle asked the task to stop.
    Stop,
    /// The store failed.
    Failed(Fault),
}

/// The task's state.
pub(crate) struct Worker {
    registry: HealthRegistry,
    config: SharedHealthConfig,
    client: redis::Client,
    keys: Keys,
    shared: Arc<Shared>,
    applier: Applier,
    events: HealthEvents,
    online: bool,
    /// This replica's decisions not yet published: the latest per provider.
    pending: HashMap<Arc<str>, Record>,
    /// Providers whose trial lease this replica holds.
    held: HashSet<Arc<str>>,
    /// Providers whose trial lease another replica holds, and when to ask
    /// again.
    elsewhere: HashMap<Arc<str>, Instant>,
}

impl Worker {
    /// Subscribes to the registry now, so that decisions made before the
    /// first connection are kept for it.
    pub(crate) fn new(
        registry: HealthRegistry,
        config: SharedHealthConfig,
        client: redis::Client,
        shared: Arc<Shared>,
    ) -> Self {
        let applier = Applier {
            registry: registry.clone(),
            replica: Arc::from(config.replica.as_str()),
            shared: shared.clone(),
        };
        Self {
            events: registry.subscribe(),
            keys: Keys::new(&config.key_prefix),
            registry,
            config,
            client,
            shared,
            applier,
            online: false,
            pending: HashMap::new(),
            held: HashSet::new(),
            elsewhere: HashMap::new(),
        }
    }

    /// Runs until `stop` changes or its sender is dropped.
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let _offline = OfflineOnExit {
            registry: self.registry.clone(),
            shared: self.shared.clone(),
        };
        self.registry.share_trials(false);
        metrics::gauge!(names::CONNECTED).set(0.0);
        let mut attempt: u32 = 0;
        let mut outage_logged = false;
        loop {
            let started = Instant::now();
            let end = tokio::select! {
                biased;
                _ = stop.changed() => End::Stop,
                end = self.session(&mut outage_logged) => end,
            };
            let End::Failed(fault) = end else {
                return;
            };
            let was_online = self.online;
            self.go_offline();
            self.shared.failures.fetch_add(1, Ordering::Relaxed);
            // A session that lasted starts the delays over; one that failed
            // at once keeps them growing, so a store that accepts and then
            // fails is not hammered.
            if was_online && started.elapsed() >= self.config.backoff_max {
                attempt = 0;
            }
            if !outage_logged {
                let error = self.config.scrub(&fault.to_string());
                let store = self.config.redacted_url();
                let replica = &self.config.replica;
                if was_online {
                    tracing::warn!(%store, %replica, %error, "shared health: lost the store; serving on local health, reconnecting");
                } else {
                    tracing::warn!(%store, %replica, %error, "shared health: cannot reach the store; serving on local health, retrying");
                }
                outage_logged = true;
            }
            let delay = backoff(self.config.backoff_min, self.config.backoff_max, attempt);
            attempt = attempt.saturating_add(1);
            if self.wait_offline(delay, &mut stop).await {
                return;
            }
        }
    }

    /// One connection's life: connect, catch up, publish what waited, then
    /// serve until the store fails.
    async fn session(&mut self, outage_logged: &mut bool) -> End {
        let (mut conn, mut sink, stream) = match self.connect().await {
            Ok(connected) => connected,
            Err(fault) => return End::Failed(fault),
        };
        if let Err(fault) = self.catch_up(&mut conn).await {
            return End::Failed(fault);
        }
        self.go_online(outage_logged);
        if let Err(fault) = self.flush_pending(&mut conn).await {
            return End::Failed(fault);
        }
        tokio::select! {
            end = subscribe(self.applier.clone(), stream) => end,
            end = self.serve(&mut conn, &mut sink) => end,
        }
    }

    /// Opens the command connection and the subscription.
    async fn connect(&self) -> Result<(MultiplexedConnection, PubSubSink, PubSubStream), Fault> {
        let limit = self.config.connect_timeout;
        let settings = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(limit))
            .set_response_timeout(Some(self.config.command_timeout));
        let conn = within(
            limit,
            "connect",
            self.client
                .get_multiplexed_async_connection_with_config(&settings),
        )
        .await?;
        let pubsub = within(
            limit,
            "connect to subscribe",
            self.client.get_async_pubsub(),
        )
        .await?;
        let (mut sink, stream) = pubsub.split();
        within(limit, "subscribe", sink.subscribe(&self.keys.channel)).await?;
        Ok((conn, sink, stream))
    }

    /// Reads every decision key and applies the others' decisions: a
    /// replica that starts late or reconnects learns what it missed.
    async fn catch_up(&self, conn: &mut MultiplexedConnection) -> Result<(), Fault> {
        let limit = self.config.command_timeout;
        let mut cursor: u64 = 0;
        for _ in 0..MAX_SCAN_ROUNDS {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&self.keys.pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, keys): (u64, Vec<Vec<u8>>) =
                within(limit, "scan", scan.query_async(conn)).await?;
            let mut found: Vec<(String, String)> = Vec::with_capacity(keys.len());
            for key in keys {
                let Ok(key) = String::from_utf8(key) else {
                    self.applier.garbage();
                    continue;
                };
                if let KeyKind::Decision(provider) = self.keys.classify(&key) {
                    let provider = provider.to_owned();
                    found.push((key, provider));
                }
            }
            if !found.is_empty() {
                let mut mget = redis::cmd("MGET");
                for (key, _) in &found {
                    mget.arg(key);
                }
                // A key that expired meanwhile, or holds no string, is nil.
                let values: Vec<Option<Vec<u8>>> =
                    within(limit, "read decisions", mget.query_async(conn)).await?;
                for ((_, provider), value) in found.iter().zip(values) {
                    if let Some(bytes) = value {
                        self.applier.apply(&bytes, Some(provider));
                    }
                }
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
        tracing::warn!(
            "shared health: too many keys under the prefix; caught up with the first ones only"
        );
        Ok(())
    }

    /// Serves a live session: this replica's decisions out, trial leases,
    /// and the heartbeat.
    async fn serve(&mut self, conn: &mut MultiplexedConnection, sink: &mut PubSubSink) -> End {
        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let retry_at = self.elsewhere.values().min().copied();
            let step = tokio::select! {
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(conn, event).await,
                    // The registry is gone: nothing left to share.
                    None => return End::Stop,
                },
                _ = heartbeat.tick() => self.heartbeat(conn, sink).await,
                () = sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    self.retry_trials(conn).await
                }
            };
            if let Err(fault) = step {
                return End::Failed(fault);
            }
        }
    }

    /// Pings both connections, extends the leases of trials running here,
    /// and leases the trials whose start was not heard of (an event lost by
    /// a lagging subscription).
    async fn heartbeat(
        &mut self,
        conn: &mut MultiplexedConnection,
        sink: &mut PubSubSink,
    ) -> Result<(), Fault> {
        let limit = self.config.command_timeout;
        within(limit, "ping", redis::cmd("PING").query_async::<Value>(conn)).await?;
        within(limit, "ping the subscription", sink.ping::<Value>()).await?;
        // A trial request may outlast its lease (a long answer): while it
        // runs here, the lease is kept. A lease whose trial has not started
        // (no request came) is left to lapse, for a replica with traffic.
        let running: Vec<Arc<str>> = self
            .held
            .iter()
            .filter(|provider| probing(&self.registry, provider))
            .cloned()
            .collect();
        for provider in running {
            let mut eval = redis::cmd("EVAL");
            eval.arg(RENEW_SCRIPT)
                .arg(1)
                .arg(self.keys.trial(&provider))
                .arg(&self.config.replica)
                .arg(millis(self.config.trial_lease));
            let renewed: i64 = within(limit, "renew a trial lease", eval.query_async(conn)).await?;
            if renewed == 0 {
                self.held.remove(&provider);
            }
        }
        let waiting: Vec<Arc<str>> = self
            .registry
            .snapshot()
            .into_iter()
            .filter(|s| s.state == ProviderState::Probing && self.registry.trial_pending(&s.name))
            .map(|s| Arc::from(s.name))
            .collect();
        for provider in waiting {
            self.acquire_trial(conn, provider).await?;
        }
        Ok(())
    }

    /// Waits `delay` before the next connection attempt, keeping this
    /// replica's decisions meanwhile. True when the task must stop.
    async fn wait_offline(&mut self, delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
        let deadline = Instant::now()
            .checked_add(delay)
            .unwrap_or_else(Instant::now);
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => return true,
                () = sleep_until(deadline) => return false,
                event = self.events.recv() => match event {
                    Some(event) if event.origin == Origin::Local => {
                        if let Some(record) =
                            Record::of_event(&event, &self.config.replica, Clock::now())
                        {
                            self.remember(event.provider.clone(), record);
                        }
                    }
                    Some(_) => {}
                    None => return true,
                },
            }
        }
    }

    fn go_online(&mut self, outage_logged: &mut bool) {
        self.online = true;
        self.shared.connected.store(true, Ordering::Release);
        self.shared.connects.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(names::CONNECTED).set(1.0);
        self.registry.share_trials(true);
        let store = self.config.redacted_url();
        if *outage_logged {
            tracing::info!(%store, "shared health: the store is back; sharing decisions again");
            *outage_logged = false;
        } else {
            tracing::info!(%store, replica = %self.config.replica, "shared health: connected; sharing decisions");
        }
    }

    fn go_offline(&mut self) {
        if self.online {
            self.online = false;
            // Trials pending or held elsewhere are this replica's again.
            self.registry.share_trials(false);
        }
        self.elsewhere.clear();
        self.shared.connected.store(false, Ordering::Release);
        metrics::gauge!(names::CONNECTED).set(0.0);
    }
}

/// Applies every record announced on the channel until the subscription
/// ends.
async fn subscribe(applier: Applier, mut stream: PubSubStream) -> End {
    while let Some(message) = stream.next().await {
        applier.apply(message.get_payload_bytes(), None);
    }
    End::Failed(Fault::Closed("subscription"))
}

/// Runs `command` within `limit`.
async fn within<T>(
    limit: Duration,
    what: &'static str,
    command: impl Future<Output = RedisResult<T>>,
) -> Result<T, Fault> {
    match timeout(limit, command).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Fault::Redis { what, error }),
        Err(_) => Err(Fault::Timeout(what)),
    }
}

/// The delay before connection attempt `attempt` (from 0): `min` doubled
/// `attempt` times, at most `max`, jittered between half and all of it.
pub(crate) fn backoff(min: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1_u32.checked_shl(attempt.min(24)).unwrap_or(u32::MAX);
    let base = min.saturating_mul(factor).min(max);
    let half = base.checked_div(2).unwrap_or_default();
    let jitter = rand::random_range(0..=millis(half));
    half.saturating_add(Duration::from_millis(jitter)).min(base)
}

/// Leaves the registry on its own when the task ends, however it ends.
struct OfflineOnExit {
    registry: HealthRegistry,
    shared: Arc<Shared>,
}

impl Drop for OfflineOnExit {
    fn drop(&mut self) {
        self.registry.share_trials(false);
        self.shared.connected.store(false, Ordering::Release);
        metrics::gauge!(names::CONNECTED).set(0.0);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects)]

    use super::*;

    #[test]
    fn keys_are_named_under_the_prefix() {
        let keys = Keys::new("a*b:health");
        assert_eq!(keys.decision("openai"), "a*b:health:openai");
        assert_eq!(keys.trial("openai"), "a*b:health:trial:openai");
        assert_eq!(keys.channel, "a*b:health:events");
        assert_eq!(keys.pattern, "a\\*b:health:*");
        assert!(matches!(
            keys.classify("a*b:health:openai"),
            KeyKind::Decision("openai")
        ));
        assert!(matches!(
            keys.classify("a*b:health:trial:openai"),
            KeyKind::Trial
        ));
        assert!(matches!(keys.classify("a*b:health:"), KeyKind::Other));
        assert!(matches!(keys.classify("other"), KeyKind::Other));
    }

    #[test]
    fn backoff_grows_jittered_and_bounded() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for attempt in 0..40 {
            let delay = backoff(min, max, attempt);
            let base = (min * 2_u32.saturating_pow(attempt)).min(max);
            assert!(delay >= base / 2 && delay <= base, "{attempt}: {delay:?}");
        }
        assert!(backoff(min, max, 1_000) <= max);
    }
}
