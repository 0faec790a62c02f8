//! [`Gateway`]: a configuration turned into a running app.

use std::future::Future;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use understudy_core::events::SharedObserver;
use understudy_health::HealthRegistry;
use understudy_observe::{Alerts, LogSink, Telemetry, WebhookSink};
use understudy_shared_health::{SharedHealth, SharedHealthError};

use crate::app::{self, AppState};
use crate::auth::Auth;
use crate::config::{Config, ConfigError};
use crate::conn::ConnLimits;
use crate::edge;
use crate::live::Live;
use crate::reload::Reloader;
use crate::serve::ServeLimits;
use crate::stack::{self, BuildError};
use crate::status::StatusBoard;

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is invalid, or names an unset key variable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The services could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The alert webhook URL was refused.
    #[error("invalid alerts.webhook_url: {0}")]
    Webhook(String),
    /// Sharing health through the store could not start (the URL or a
    /// setting was refused; the store itself is never waited for).
    #[error("invalid health.shared: {0}")]
    SharedHealth(#[from] SharedHealthError),
}

/// How often histogram samples are folded into the Prometheus exporter's
/// buckets; without it they would accumulate until the next scrape.
const METRICS_UPKEEP: Duration = Duration::from_secs(1);

/// The gateway: the app, and the state behind it.
#[derive(Debug)]
pub struct Gateway {
    router: Router,
    registry: HealthRegistry,
    reloader: Reloader,
    limits: ServeLimits,
    alerts: Alerts,
    /// Shares health decisions with the other replicas, when configured;
    /// stops when the gateway is dropped.
    _shared: Option<Arc<SharedHealth>>,
    _upkeep: Option<AbortOnDrop>,
}

/// Aborts a background task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Gateway {
    /// Builds the gateway from `config`, reading API keys and caller keys
    /// through `lookup` (`std::env::var` in the binary). Must run inside a tokio runtime:
    /// probes and alert delivery are spawned.
    pub fn new(
        config: &Config,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GatewayError> {
        config.validate()?;
        let secrets = config.provider_secrets(&lookup)?;
        let shared_password = config.shared_password(&lookup)?;
        let auth = auth_of(config, &lookup)?;

        let mut alerts = Alerts::builder().sink(LogSink::new());
        if let Some(section) = &config.alerts {
            alerts = alerts.min_interval(Duration::from_secs(section.min_interval_secs));
            if let Some(url) = &section.webhook_url {
                let webhook = WebhookSink::new(url)
                    .map_err(|error| GatewayError::Webhook(error.to_string()))?;
                alerts = alerts.sink(webhook);
            }
        }
        let alerts = alerts.spawn();
        let status = Arc::new(StatusBoard::new());
        let observer: SharedObserver =
            Arc::new((Telemetry::new().with_alerts(alerts.clone()), status.clone()));

        let registry = HealthRegistry::with_observer(config.health, observer.clone());
        let built = stack::build(config, secrets, &registry, &observer, auth)?;
        let live = Live::new(built.generation);
        let reloader = Reloader::new(
            live.clone(),
            registry.clone(),
            observer,
            config.clone(),
            built.probers,
        );
        let endpoints = stack::edge(&config.server, &live);
        let shared = config
            .shared_health
            .as_ref()
            .map(|settings| {
                let mut sharing = settings.sharing();
                if let Some(password) = shared_password {
                    sharing = sharing.password(password);
                }
                understudy_shared_health::spawn(registry.clone(), sharing).map(Arc::new)
            })
            .transpose()?;
        let metrics = prometheus();
        let upkeep = metrics.clone().map(|handle| {
            AbortOnDrop(tokio::spawn(async move {
                let mut ticks = tokio::time::interval(METRICS_UPKEEP);
                loop {
                    ticks.tick().await;
                    handle.run_upkeep();
                }
            }))
        });
        let state = AppState {
            shared: shared.clone(),
            registry: registry.clone(),
            live,
            metrics,
            reloader: reloader.clone(),
            status,
        };
        let router = edge::wrap(app::router(endpoints, state), &config.server.cors_origins);
        Ok(Self {
            router,
            registry,
            reloader,
            limits: ServeLimits {
                conn: ConnLimits {
                    keep_alive: Duration::from_millis(config.server.keep_alive_timeout_ms),
                    header_read: Duration::from_millis(config.server.header_read_timeout_ms),
                },
                max_connections: config.server.max_connections,
                drain: Duration::from_millis(config.server.drain_timeout_ms),
                workers: config.server.worker_count(),
            },
            alerts,
            _shared: shared,
            _upkeep: upkeep,
        })
    }

    /// The app, to serve or to nest in another router.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Provider health.
    pub fn registry(&self) -> &HealthRegistry {
        &self.registry
    }

    /// Reloads the configuration: give it the file with
    /// [`Reloader::watch_file`], then call [`Reloader::reload`] (the binary
    /// does on `SIGHUP`).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The alert dispatcher.
    pub fn alerts(&self) -> &Alerts {
        &self.alerts
    }

    /// Serves on `listener` until `shutdown` completes, then drains for up
    /// to the configured drain timeout, within the `[server]` limits.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        crate::serve::serve(listener, self.router.clone(), shutdown, self.limits).await
    }
}

/// The caller keys `[auth]` describes, their variables read through
/// `lookup`; `None` without `[auth]`.
pub(crate) fn auth_of(
    config: &Config,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Arc<Auth>>, ConfigError> {
    Ok(config
        .auth
        .as_ref()
        .zip(config.auth_secrets(lookup)?)
        .map(|(section, secrets)| Arc::new(Auth::new(section, secrets))))
}

/// The process-wide Prometheus recorder, installed on first use; `None` if
/// another `metrics` recorder was installed first.
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (name, buckets) in understudy_observe::names::HISTOGRAMS {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                    .ok()?;
            }
            let handle = builder.install_recorder().ok()?;
            understudy_observe::names::describe_metrics();
            understudy_shared_health::names::describe_metrics();
            Some(handle)
        })
        .clone()
}
