//! This replica's decisions on their way to the store: each local event
//! turned into a record, published in one round trip (`SET` + `PUBLISH`),
//! or kept (the latest per provider) until the store is back, and then
//! published if still in force.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use redis::aio::MultiplexedConnection;
use understudy_core::{Availability, ProviderAvailability, UnavailableKind};
use understudy_health::{HealthEvent, HealthEventKind, Origin};

use super::{Fault, MAX_PENDING, RESTORED_TTL, Worker, within};
use crate::names;
use crate::record::{Clock, Kind, Record, unix_ms};

impl Worker {
    pub(super) async fn on_event(
        &mut self,
        conn: &mut MultiplexedConnection,
        event: HealthEvent,
    ) -> Result<(), Fault> {
        let provider = event.provider.clone();
        let decision = matches!(
            event.kind,
            HealthEventKind::Ejected(_)
                | HealthEventKind::ProbeFailed
                | HealthEventKind::CoolingDown
                | HealthEventKind::Restored
        );
        if event.origin == Origin::Remote {
            // Another replica decided: never published again. A trial
            // asked for, or held, is moot.
            if decision {
                self.elsewhere.remove(&provider);
                if self.held.contains(&provider) {
                    self.release(conn, &provider).await?;
                }
            }
            return Ok(());
        }
        if event.kind == HealthEventKind::ProbeStarted {
            if self.registry.trial_pending(&provider) {
                self.acquire_trial(conn, provider).await?;
            }
            return Ok(());
        }
        if let Some(record) = Record::of_event(&event, &self.config.replica, Clock::now()) {
            self.publish(conn, provider.clone(), record).await?;
        }
        if decision {
            // The trial's outcome is out: the lease goes.
            self.elsewhere.remove(&provider);
            if self.held.contains(&provider) {
                self.release(conn, &provider).await?;
            }
        }
        Ok(())
    }

    /// `SET {prefix}:{provider}` (expiring with the decision) and `PUBLISH`
    /// in one round trip. The record waits in `pending` until the store
    /// confirms, so one in flight when the session ends (this future
    /// dropped with it) is published after reconnecting.
    pub(super) async fn publish(
        &mut self,
        conn: &mut MultiplexedConnection,
        provider: Arc<str>,
        record: Record,
    ) -> Result<(), Fault> {
        let Some(ttl) = record.ttl(unix_ms(), RESTORED_TTL) else {
            return Ok(());
        };
        let payload = record.encode();
        self.remember(provider.clone(), record);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.keys.decision(&provider))
            .arg(&payload)
            .arg("PX")
            .arg(ttl)
            .ignore()
            .cmd("PUBLISH")
            .arg(&self.keys.channel)
            .arg(&payload)
            .ignore();
        match within(
            self.config.command_timeout,
            "publish",
            pipe.query_async::<()>(conn),
        )
        .await
        {
            Ok(()) => {
                self.pending.remove(&provider);
                self.shared.published.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(names::PUBLISHED_TOTAL).increment(1);
                Ok(())
            }
            Err(fault) => Err(fault),
        }
    }

    /// Keeps a decision for the next connection, replacing an older one of
    /// the same provider.
    pub(super) fn remember(&mut self, provider: Arc<str>, record: Record) {
        if self.pending.len() < MAX_PENDING || self.pending.contains_key(&provider) {
            self.pending.insert(provider, record);
        } else {
            tracing::debug!(
                "shared health: too many providers waiting for the store; a decision stays local"
            );
        }
    }

    /// Publishes the decisions made while the store was away that are still
    /// in force here (the catch-up may have overruled some).
    pub(super) async fn flush_pending(
        &mut self,
        conn: &mut MultiplexedConnection,
    ) -> Result<(), Fault> {
        let waiting: Vec<(Arc<str>, Record)> = self
            .pending
            .iter()
            .map(|(provider, record)| (provider.clone(), record.clone()))
            .collect();
        for (provider, record) in waiting {
            if self.in_force(&provider, &record) {
                self.publish(conn, provider, record).await?;
            } else {
                self.pending.remove(&provider);
            }
        }
        Ok(())
    }

    pub(super) fn in_force(&self, provider: &str, record: &Record) -> bool {
        let availability = self.registry.availability(provider);
        match record.kind {
            Kind::Restored => availability.is_available(),
            Kind::Ejected | Kind::CoolingDown => matches!(
                availability,
                Availability::Unavailable {
                    kind: UnavailableKind::Ejected | UnavailableKind::CoolingDown,
                    ..
                }
            ),
        }
    }
}
