//! Live reload: the configuration file read again and swapped in whole,
//! without dropping a request.
//!
//! [`Reloader::reload`] (on `SIGHUP`, see [`reload_on_hangup`], or from
//! `POST /admin/reload`) reads the file again and checks it as a start
//! would, keys included. A file that fails keeps the running configuration,
//! and the error, naming the key at fault, is logged. One that passes is
//! built into a new [`Generation`] and made [`Live`] at once: requests in
//! flight finish on the generation they started with, new ones take the
//! new one.
//!
//! What carries over:
//! - provider health, for every provider whose name and `base_url` are
//!   unchanged; a provider that moved or left starts afresh;
//! - each caller key's rate limit, when its name and `rpm` are unchanged
//!   (keys themselves are read again: a key removed from the file is
//!   refused from the swap on);
//! - `[server]`, `[health]` (shared health included), `[alerts]` and
//!   `[telemetry]`: they shape the listener, the connection limits, the
//!   background tasks and the trace export,
//!   so their changes wait for the next start (the reload says which
//!   sections changed).
//!
//! Every reload is counted in `understudy_config_reloads_total{result}`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::counter;
use understudy_core::events::SharedObserver;
use understudy_health::{HealthRegistry, ProberHandle};
use understudy_observe::names::CONFIG_RELOADS_TOTAL;

use crate::config::{Config, ConfigError};
use crate::gateway;
use crate::live::{Generation, Live};
use crate::stack::{self, BuildError};

/// Where secrets come from (`std::env::var` in the binary).
pub type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Why a reload kept the running configuration.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// No file to read again: the gateway was built from a configuration
    /// in memory and [`Reloader::watch_file`] was not called.
    #[error("the gateway was not started from a configuration file")]
    NoFile,
    /// The file is invalid, or names a key variable that is not set.
    #[error("{path}: {error}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        error: ConfigError,
    },
    /// The new configuration could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// What a reload that succeeded changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// The routes now served.
    pub routes: usize,
    /// Sections whose changes wait for the next start.
    pub restart_needed: Vec<&'static str>,
    /// Providers whose health started afresh (they moved or left).
    pub reset: Vec<String>,
}

/// Reloads the gateway's configuration; cheap to clone. See the module
/// docs.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    live: Live,
    registry: HealthRegistry,
    observer: SharedObserver,
    /// Held through a reload, so two never interleave.
    running: Mutex<Running>,
}

/// The configuration being served, and what lives as long as it does.
struct Running {
    config: Config,
    probers: Vec<ProberHandle>,
    file: Option<(PathBuf, Lookup)>,
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader of `live`, which `config` built (with `probers`).
    pub(crate) fn new(
        live: Live,
        registry: HealthRegistry,
        observer: SharedObserver,
        config: Config,
        probers: Vec<ProberHandle>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                live,
                registry,
                observer,
                running: Mutex::new(Running {
                    config,
                    probers,
                    file: None,
                }),
            }),
        }
    }

    /// Reloads from `path`, reading secrets through `lookup`.
    pub fn watch_file(
        &self,
        path: impl Into<PathBuf>,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) {
        self.running().file = Some((path.into(), Arc::new(lookup)));
    }

    /// Reads the file again and swaps it in, or keeps the running
    /// configuration; either way the result is logged and counted. Must
    /// run inside a tokio runtime (probes are spawned).
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        let mut running = self.running();
        let result = match running.file.clone() {
            None => Err(ReloadError::NoFile),
            Some((path, lookup)) => {
                read(&path).and_then(|config| self.swap(&mut running, config, &*lookup))
            }
        };
        drop(running);
        report(&result);
        result
    }

    /// Swaps `config` in (secrets through `lookup`), or keeps the running
    /// configuration; logged and counted as [`reload`](Self::reload) is.
    pub fn apply(
        &self,
        config: Config,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Reloaded, ReloadError> {
        let result = {
            let mut running = self.running();
            config
                .validate()
                .map_err(in_memory)
                .and_then(|()| self.swap(&mut running, config, &lookup))
        };
        report(&result);
        result
    }

    /// The generation serving new requests now.
    pub fn current(&self) -> Arc<Generation> {
        self.inner.live.current()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn swap(
        &self,
        running: &mut Running,
        mut config: Config,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Reloaded, ReloadError> {
        let old = &running.config;
        let mut restart_needed = Vec::new();
        if config.server != old.server {
            restart_needed.push("server");
        }
        if config.health != old.health || config.shared_health != old.shared_health {
            restart_needed.push("health");
        }
        if config.alerts != old.alerts {
            restart_needed.push("alerts");
        }
        if config.telemetry != old.telemetry {
            restart_needed.push("telemetry");
        }
        config.server.clone_from(&old.server);
        config.health = old.health;
        config.shared_health.clone_from(&old.shared_health);
        config.alerts.clone_from(&old.alerts);
        config.telemetry.clone_from(&old.telemetry);

        let secrets = config.provider_secrets(lookup).map_err(in_memory)?;
        let auth = gateway::auth_of(&config, lookup)
            .map_err(in_memory)?
            .map(|auth| {
                let mut auth = Arc::unwrap_or_clone(auth);
                if let Some(previous) = &self.inner.live.current().auth {
                    auth.keep_limits(previous);
                }
                Arc::new(auth)
            });
        let reset: Vec<String> = old
            .providers
            .iter()
            .filter(|before| {
                config.provider(&before.provider.name).is_none_or(|after| {
                    after.provider.base_url != before.provider.base_url
                        || after.provider.kind != before.provider.kind
                })
            })
            .map(|before| before.provider.name.clone())
            .collect();
        // Before the build: the new stacks take the providers' entries
        // from the registry as they are built.
        for name in &reset {
            self.inner.registry.forget(name);
        }
        let built = stack::build(
            &config,
            secrets,
            &self.inner.registry,
            &self.inner.observer,
            auth,
        )?;
        let routes = config.routes.len();
        self.inner.live.replace(built.generation);
        // The previous probes stop as they are dropped.
        running.probers = built.probers;
        running.config = config;
        Ok(Reloaded {
            routes,
            restart_needed,
            reset,
        })
    }
}

/// An error in a configuration already read (its values or its secrets).
fn in_memory(error: ConfigError) -> ReloadError {
    ReloadError::Config {
        path: "configuration".to_owned(),
        error,
    }
}

fn read(path: &Path) -> Result<Config, ReloadError> {
    Config::from_file(path).map_err(|error| ReloadError::Config {
        path: path.display().to_string(),
        error,
    })
}

fn report(result: &Result<Reloaded, ReloadError>) {
    match result {
        Ok(reloaded) => {
            counter!(CONFIG_RELOADS_TOTAL, "result" => "ok").increment(1);
            tracing::info!(
                event = "config_reload",
                result = "ok",
                routes = reloaded.routes,
                restart_needed = ?reloaded.restart_needed,
                health_reset = ?reloaded.reset,
                "configuration reloaded"
            );
            if !reloaded.restart_needed.is_empty() {
                tracing::warn!(
                    event = "config_reload",
                    sections = ?reloaded.restart_needed,
                    "these sections changed; their new values take effect at the next start"
                );
            }
        }
        Err(error) => {
            counter!(CONFIG_RELOADS_TOTAL, "result" => "error").increment(1);
            tracing::error!(
                event = "config_reload",
                result = "error",
                %error,
                "configuration reload refused; the running configuration stays"
            );
        }
    }
}

/// Reloads on every `SIGHUP` until the task is aborted (Unix; elsewhere it
/// waits forever).
pub fn reload_on_hangup(reloader: Reloader) -> tokio::task::JoinHandle<()> {
    // Listen before returning, not when the task first runs: a `SIGHUP`
    // arriving in between would otherwise meet the default action and
    // end the process.
    #[cfg(unix)]
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let Ok(mut hangups) = hangups else {
                tracing::warn!("could not listen for SIGHUP; reload is off");
                return;
            };
            while hangups.recv().await.is_some() {
                // Logged and counted inside.
                let _ = reloader.reload();
            }
        }
        #[cfg(not(unix))]
        {
            let _ = reloader;
            std::future::pending::<()>().await;
        }
    })
}
