//! Provider health shared between gateway replicas through Redis.
//!
//! Each replica keeps its own [`HealthRegistry`]: requests are admitted from
//! memory, and nothing here is ever on a request's path. [`spawn`] starts a
//! background task that makes replicas learn from each other:
//!
//! - **Only decisions travel.** This replica's own ejections (a failed
//!   half-open trial is one), 429 cooldowns and restorations are stored and
//!   announced; failure counting stays local, and decisions applied from
//!   other replicas are never announced again.
//! - **Push and state.** Each decision is `SET` under `{prefix}:{provider}`
//!   (expiring when it ends) and `PUBLISH`ed on `{prefix}:events`. Every
//!   replica subscribes and applies the others' decisions through
//!   [`HealthRegistry::apply_remote`], whose merge rules decide (a cooldown
//!   never shortens; a restoration ends only an older ejection). On every
//!   connection the task first reads all decision keys (`SCAN`), so a
//!   replica that starts late or comes back catches up.
//! - **Half-open across replicas.** While the store answers, a provider
//!   whose ejection ends takes its trial on one replica only: the one that
//!   gets the lease `SET {prefix}:trial:{provider} {replica} NX PX {lease}`.
//!   The others wait for its outcome, and ask again every half lease in case
//!   the holder died. The holder extends the lease while its trial request
//!   runs, and deletes it once the outcome is published; a lease whose
//!   trial never started (no request came to the holder) lapses, and
//!   another replica takes the trial.
//! - **The store failing is not the gateway failing.** Every command has a
//!   time limit (50 ms by default). When the store is down, slow or answers
//!   garbage, the replica serves on its local health (each its own single
//!   trial), logs once, sets the gauge [`CONNECTED`](names::CONNECTED) to 0
//!   and reconnects with jittered exponential backoff. Decisions made
//!   meanwhile are kept (the latest per provider) and published on
//!   reconnection if still in force.
//!
//! # Keys, channel and record
//!
//! | name | holds | lives |
//! |------|-------|-------|
//! | `{prefix}:{provider}` | the latest decision about `provider`, a record | until the ejection or cooldown ends; 60 s for a restoration |
//! | `{prefix}:trial:{provider}` | the id of the replica holding the trial lease | the lease (10 s by default), or until its outcome is published |
//! | `{prefix}:events` (channel) | every decision as it is made, the same record | — |
//!
//! The prefix defaults to `understudy:health`. A record is a small JSON
//! object:
//!
//! ```json
//! {"provider":"openai","kind":"ejected","until_ms":1767225600000,
//!  "at_ms":1767225590000,"reason":"consecutive_failures","replica":"gw-1"}
//! ```
//!
//! `kind` is `ejected`, `cooling_down` or `restored`; `until_ms` (when it
//! ends) and `at_ms` (when it was decided) are Unix milliseconds, so replica
//! clocks are assumed synchronised (NTP); `until_ms` is `null` for a
//! restoration, `reason` is `null` but for an ejection. Unknown fields are
//! ignored; a record that does not read (not JSON, a missing field, longer
//! than 2 KiB, under another provider's key) is skipped and counted
//! ([`SharedHealthStats::garbage`], [`GARBAGE_TOTAL`](names::GARBAGE_TOTAL)).
//! A restoration is stored rather than deleted, for a minute, so a replica
//! that reconnects within it learns that the ejection it holds is over.
//!
//! Keys are the latest writer's: a decision made on one replica replaces
//! the key another replica wrote. The merge happens where decisions are
//! applied, and a local ejection never ends before a cooldown or ejection it
//! already applied, so the key rarely undercuts what the fleet knows.
//! Prefixes of fleets sharing one Redis must not nest (`a:health` and
//! `a:health:eu`), and a provider name starting with `trial:` is announced
//! but not caught up from its key.
//!
//! # TLS
//!
//! `rediss://` connects over rustls (the ring provider, as the rest of the
//! workspace) and trusts the public web PKI roots (webpki-roots), or the CA
//! given by [`SharedHealthConfig::tls_root_certificate`]. Certificates are
//! always checked.
//!
//! # Example
//!
//! ```no_run
//! use understudy_health::{HealthConfig, HealthRegistry};
//! use understudy_shared_health::{SharedHealthConfig, spawn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), understudy_shared_health::SharedHealthError> {
//! let registry = HealthRegistry::new(HealthConfig::default());
//! let shared = spawn(
//!     registry.clone(),
//!     SharedHealthConfig::new("redis://127.0.0.1:6379").replica("gateway-1"),
//! )?;
//! // `registry` goes into the stacks as usual; `shared` lives as long as
//! // the gateway does (dropping it stops sharing).
//! assert_eq!(shared.replica(), "gateway-1");
//! # shared.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(clippy::arithmetic_side_effects)]

mod config;
mod record;
#[cfg(feature = "testing")]
pub mod testing;
mod worker;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use understudy_health::HealthRegistry;

pub use self::config::{
    DEFAULT_BACKOFF_MAX, DEFAULT_BACKOFF_MIN, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HEARTBEAT, DEFAULT_KEY_PREFIX, DEFAULT_TRIAL_LEASE, SharedHealthConfig,
    SharedHealthError,
};
use self::worker::{Shared, Worker};

/// The metrics this crate records, through the [`metrics`] facade.
pub mod names {
    /// Gauge: 1 while the store answers, 0 while this replica serves on its
    /// local health alone.
    pub const CONNECTED: &str = "understudy_shared_health_connected";
    /// Counter: decisions of this replica published.
    pub const PUBLISHED_TOTAL: &str = "understudy_shared_health_published_total";
    /// Counter: decisions of other replicas applied here.
    pub const APPLIED_TOTAL: &str = "understudy_shared_health_applied_total";
    /// Counter: records found in the store that were not records, skipped.
    pub const GARBAGE_TOTAL: &str = "understudy_shared_health_garbage_total";

    /// Describes the metrics to the installed recorder.
    pub fn describe_metrics() {
        metrics::describe_gauge!(
            CONNECTED,
            "1 while the shared-health store answers, 0 while serving on local health"
        );
        metrics::describe_counter!(
            PUBLISHED_TOTAL,
            "Health decisions of this replica published"
        );
        metrics::describe_counter!(APPLIED_TOTAL, "Health decisions of other replicas applied");
        metrics::describe_counter!(GARBAGE_TOTAL, "Unreadable shared-health records skipped");
    }
}

/// Starts sharing `registry`'s decisions with the other replicas that use
/// the same store and prefix.
///
/// Checks `config` and spawns the background task on the current Tokio
/// runtime; it never waits for Redis (the first connection is made in the
/// background, and until it is made the replica serves on its local
/// health). Sharing lasts as long as the returned handle.
pub fn spawn(
    registry: HealthRegistry,
    config: SharedHealthConfig,
) -> Result<SharedHealth, SharedHealthError> {
    config.validate()?;
    let runtime =
        tokio::runtime::Handle::try_current().map_err(|_| SharedHealthError::NoRuntime)?;
    let client = config.client()?;
    let shared = Arc::new(Shared::default());
    let replica = config.replica.clone();
    let (stop, stopped) = watch::channel(false);
    let worker = Worker::new(registry, config, client, shared.clone());
    let task = runtime.spawn(worker.run(stopped));
    Ok(SharedHealth {
        shared,
        replica,
        stop,
        task: Some(task),
    })
}

/// The handle of a running sharer (see [`spawn`]). Dropping it stops the
/// background task; [`shutdown`](Self::shutdown) also waits for it.
pub struct SharedHealth {
    shared: Arc<Shared>,
    replica: String,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SharedHealth {
    /// Does the store answer? While it does not, the replica serves on its
    /// local health and keeps its decisions for later.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// This replica's id, as its records carry it.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// What the task has done so far.
    pub fn stats(&self) -> SharedHealthStats {
        SharedHealthStats {
            published: self.shared.published.load(Ordering::Relaxed),
            applied: self.shared.applied.load(Ordering::Relaxed),
            garbage: self.shared.garbage.load(Ordering::Relaxed),
            connects: self.shared.connects.load(Ordering::Relaxed),
            failures: self.shared.failures.load(Ordering::Relaxed),
        }
    }

    /// Stops sharing and waits until the task has ended: the registry is on
    /// its own again (each replica its own trial).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            // A task that panicked has nothing left to clean up.
            let _ = task.await;
        }
    }
}

impl Drop for SharedHealth {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl fmt::Debug for SharedHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedHealth")
            .field("replica", &self.replica)
            .field("connected", &self.is_connected())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Counts of what a sharer did, since it was spawned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedHealthStats {
    /// Decisions of this replica published.
    pub published: u64,
    /// Decisions of other replicas applied here.
    pub applied: u64,
    /// Records found in the store that were not records, skipped.
    pub garbage: u64,
    /// Connections made (the first, and each reconnection).
    pub connects: u64,
    /// Times the store failed: connection attempts that did not succeed,
    /// and connections lost (each followed by a backoff; only the first of
    /// an outage is logged).
    pub failures: u64,
}
