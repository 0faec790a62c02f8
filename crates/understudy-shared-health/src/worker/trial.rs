//! Half-open trials leased across replicas: which replica takes the trial
//! of a provider whose ejection ended, and when a lease is asked for again,
//! extended or given back.

use std::sync::Arc;

use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;
use understudy_core::{Availability, ProviderAvailability, UnavailableKind};
use understudy_health::{HealthRegistry, TrialGrant};

use super::{Fault, Worker, within};
use crate::record::millis;

/// Deletes a trial lease only if this replica still holds it.
pub(super) const RELEASE_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
/// Extends a trial lease only if this replica still holds it.
pub(super) const RENEW_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

impl Worker {
    /// `SET {prefix}:trial:{provider} {replica} NX PX {lease}`: acquired,
    /// or already this replica's, the trial is taken here; held by another,
    /// it is taken there and asked for again in half a lease; the store
    /// failing, it is taken here (each replica its own single trial).
    pub(super) async fn acquire_trial(
        &mut self,
        conn: &mut MultiplexedConnection,
        provider: Arc<str>,
    ) -> Result<(), Fault> {
        let limit = self.config.command_timeout;
        let key = self.keys.trial(&provider);
        let mut set = redis::cmd("SET");
        set.arg(&key)
            .arg(&self.config.replica)
            .arg("NX")
            .arg("PX")
            .arg(millis(self.config.trial_lease));
        let holder = match within(limit, "lease a trial", set.query_async::<Value>(conn)).await {
            Ok(Value::Nil) => {
                let read = within(
                    limit,
                    "read a trial lease",
                    redis::cmd("GET")
                        .arg(&key)
                        .query_async::<Option<Vec<u8>>>(conn),
                )
                .await;
                match read {
                    // Something that is no lease holds the key (not a
                    // string): counted, and taken as held elsewhere until
                    // it expires or is replaced.
                    Err(Fault::Redis { error, .. }) if error.code() == Some("WRONGTYPE") => {
                        self.applier.garbage();
                        Ok(Some(Vec::new()))
                    }
                    read => read,
                }
            }
            Ok(_) => Ok(Some(self.config.replica.clone().into_bytes())),
            Err(fault) => Err(fault),
        };
        match holder {
            Ok(Some(holder)) if holder == self.config.replica.as_bytes() => {
                self.registry.grant_trial(&provider, TrialGrant::Here);
                self.elsewhere.remove(&provider);
                self.held.insert(provider);
                Ok(())
            }
            Ok(Some(_)) => {
                self.registry.grant_trial(&provider, TrialGrant::Elsewhere);
                let again = Instant::now()
                    .checked_add(self.config.trial_lease.checked_div(2).unwrap_or_default())
                    .unwrap_or_else(Instant::now);
                self.elsewhere.insert(provider, again);
                Ok(())
            }
            // The lease expired between the two commands: ask again now.
            Ok(None) => {
                self.elsewhere.insert(provider, Instant::now());
                Ok(())
            }
            Err(fault) => {
                self.registry.grant_trial(&provider, TrialGrant::Here);
                Err(fault)
            }
        }
    }

    /// Asks again for the leases held elsewhere whose time came, while the
    /// provider still waits for its trial (no outcome arrived).
    pub(super) async fn retry_trials(
        &mut self,
        conn: &mut MultiplexedConnection,
    ) -> Result<(), Fault> {
        let now = Instant::now();
        let due: Vec<Arc<str>> = self
            .elsewhere
            .iter()
            .filter(|&(_, at)| *at <= now)
            .map(|(provider, _)| provider.clone())
            .collect();
        for provider in due {
            if probing(&self.registry, &provider) {
                self.acquire_trial(conn, provider).await?;
            } else {
                self.elsewhere.remove(&provider);
            }
        }
        Ok(())
    }

    /// Deletes the trial lease of `provider` if this replica still holds it.
    pub(super) async fn release(
        &mut self,
        conn: &mut MultiplexedConnection,
        provider: &Arc<str>,
    ) -> Result<(), Fault> {
        self.held.remove(provider);
        let mut eval = redis::cmd("EVAL");
        eval.arg(RELEASE_SCRIPT)
            .arg(1)
            .arg(self.keys.trial(provider))
            .arg(&self.config.replica);
        within(
            self.config.command_timeout,
            "release a trial lease",
            eval.query_async::<Value>(conn),
        )
        .await
        .map(drop)
    }
}

/// Is `provider` half-open here with its trial not free: leased elsewhere,
/// not decided yet, or running?
pub(super) fn probing(registry: &HealthRegistry, provider: &str) -> bool {
    matches!(
        registry.availability(provider),
        Availability::Unavailable {
            kind: UnavailableKind::Probing,
            ..
        }
    )
}
