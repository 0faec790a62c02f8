//! Builds the gateway from its configuration: one target stack per route
//! target, a [`Fallback`] per route and the model router ([`build`]: what a
//! reload rebuilds), and the outer layers ([`edge`]: built once, over the
//! live router).
//!
//! ```text
//! edge:  Shed → ObserveLayer → Auth → RequestDeadline → BodyTimeout → ReplayLayer → LiveRouter
//! build: ModelRouter → Fallback (per route)
//!   target (built by `TargetStack`): Retry → Health → Timeout → FirstChunk → AttemptLayer → ProviderService
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Request, Response};
use lru::LruCache;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use tower_http::catch_panic::CatchPanicLayer;
use understudy_core::events::{Event, Observer, SharedObserver};
use understudy_core::{ReplayBody, ReplayLayer, RequestDeadlineLayer, ResponseBody, RouteName};
use understudy_fallback::resume::Prefill;
use understudy_fallback::{Fallback, FirstChunkLayer, Target};
use understudy_health::{HealthRegistry, ProberHandle};
use understudy_observe::ObserveLayer;
use understudy_provider::messages::MessagesLayer;
use understudy_provider::{
    ClientConfig, ConfigError, HttpClient, ProviderConfig, ProviderKind, ProviderService,
};
use understudy_retry::{RetryBudget, RetryConfig};
use understudy_stack::{TargetService, TargetStack};

use crate::app::ChatService;
use crate::auth::{Auth, AuthLayer};
use crate::body_timeout::BodyTimeoutLayer;
use crate::config::{Config, ProviderSecrets, RouteConfig, ServerConfig};
use crate::live::{Generation, Live, LiveRouter};
use crate::router::{DirectTargets, ModelRouter};
use crate::shed::ShedLayer;

/// One route's selector, boxed.
pub type RouteService =
    BoxCloneSyncService<Request<ReplayBody>, Response<ResponseBody>, Infallible>;

/// Why the gateway could not be built from a configuration that validated.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(String),
    /// A provider's settings were refused.
    #[error("invalid provider `{provider}`: {reason}")]
    Provider {
        /// The provider.
        provider: String,
        /// Why.
        reason: String,
    },
}

/// One configuration's routing, and the probes of its providers.
pub struct Built {
    /// The router and the model list, to be made [`Live`].
    pub generation: Generation,
    /// The active probes; they stop when dropped.
    pub probers: Vec<ProberHandle>,
}

impl fmt::Debug for Built {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Built")
            .field("generation", &self.generation)
            .field("probers", &self.probers.len())
            .finish()
    }
}

/// The endpoints' services: the edge layers over the live router.
#[derive(Clone, Debug)]
pub struct Edge {
    /// The chat-completions service: observe → auth → deadline → replay →
    /// router.
    /// Embeddings requests are served by it too.
    pub chat: ChatService,
    /// The Messages service: the same edge layers (sharing the concurrency
    /// limit) and router, with [`MessagesLayer`] translating in between.
    pub messages: ChatService,
}

/// One provider with what every stack that calls it shares.
struct Provider {
    config: ProviderConfig,
    /// Its key, `headers_env` values and AWS credentials.
    secrets: ProviderSecrets,
    /// The pool for this provider's connect timeout (providers with the
    /// same timeout share one).
    client: HttpClient,
    /// The provider's retry budget, shared by every route that calls it.
    budget: RetryBudget,
    /// How it continues a stream broken elsewhere.
    prefill: Prefill,
}

/// Everything a target stack is made from.
struct Parts {
    registry: HealthRegistry,
    observer: SharedObserver,
    retry: RetryConfig,
    /// `server.max_event_bytes`.
    max_event_bytes: usize,
    providers: Vec<Provider>,
}

impl Parts {
    fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.config.name == name)
    }

    fn provider_service(
        &self,
        provider: &Provider,
        model: &str,
    ) -> Result<ProviderService, BuildError> {
        let config = &provider.config;
        let failed = |error: ConfigError| BuildError::Provider {
            provider: config.name.clone(),
            reason: error.to_string(),
        };
        let secrets = &provider.secrets;
        let mut options = config.dialect_options();
        options.aws_credentials.clone_from(&secrets.aws);
        let mut service = ProviderService::with_options(
            provider.client.clone(),
            config.kind,
            &options,
            &config.base_url,
            secrets.key.clone(),
            model.to_owned(),
        )
        .map_err(failed)?
        .with_rate_limit_headers(config.pass_rate_limit_headers)
        .with_stream_usage(config.stream_usage)
        .with_max_event_bytes(self.max_event_bytes);
        let headers = config
            .headers
            .iter()
            .map(|(name, value)| (name, value.as_str()));
        let secret_headers = secrets
            .headers
            .iter()
            .map(|(name, value)| (name, value.expose()));
        for (name, value) in headers.chain(secret_headers) {
            service = service.with_header(name, value).map_err(failed)?;
        }
        Ok(service)
    }

    /// Retry → health → timeout → first chunk → attempt telemetry → provider,
    /// with `route`'s settings where it has its own.
    fn target(
        &self,
        provider_name: &str,
        model: &str,
        route: Option<&RouteConfig>,
    ) -> Result<Target<TargetService>, BuildError> {
        self.target_observed(provider_name, model, route, &self.observer)
    }

    /// As [`target`](Self::target), reporting to `observer`.
    fn target_observed(
        &self,
        provider_name: &str,
        model: &str,
        route: Option<&RouteConfig>,
        observer: &SharedObserver,
    ) -> Result<Target<TargetService>, BuildError> {
        let Some(provider) = self.provider(provider_name) else {
            return Err(BuildError::Provider {
                provider: provider_name.to_owned(),
                reason: "no such provider".to_owned(),
            });
        };
        let service = self.provider_service(provider, model)?;
        let config = &provider.config;
        let (retry, timeout, first_chunk) = match route {
            Some(route) => (
                route.effective_retry(self.retry),
                route.attempt_timeout(config),
                route.first_chunk_timeout(config),
            ),
            None => (self.retry, config.timeout, config.first_chunk_timeout),
        };
        Ok(TargetStack::new(config.name.as_str(), model, service)
            .retry(retry)
            .budget(provider.budget.clone())
            .health(&self.registry)
            .timeout(timeout)
            .first_chunk(FirstChunkLayer::new(first_chunk).max_event_bytes(self.max_event_bytes))
            .telemetry(observer)
            .gen_ai_system(gen_ai_system(config.kind))
            .build()
            .prefill(provider.prefill))
    }
}

/// The telemetry of a target addressed as `provider/<any model>`: its time
/// to first content and its usage are reported for model `*`, so the
/// caller's string becomes no metric label.
struct AnyModel(SharedObserver);

impl Observer for AnyModel {
    fn on_event(&self, event: &Event<'_>) {
        match *event {
            Event::FirstContent {
                provider, elapsed, ..
            } => self.0.on_event(&Event::FirstContent {
                provider,
                model: "*",
                elapsed,
            }),
            Event::Usage {
                provider,
                input_tokens,
                output_tokens,
                ..
            } => self.0.on_event(&Event::Usage {
                provider,
                model: "*",
                input_tokens,
                output_tokens,
            }),
            _ => self.0.on_event(event),
        }
    }
}

/// Builds `config`'s routing (validated), with `secrets` (from
/// [`Config::provider_secrets`], in provider order), health in `registry`,
/// telemetry to `observer` and `auth` (the caller keys, when `[auth]` is
/// configured); probes start for the providers that have them.
pub fn build(
    config: &Config,
    secrets: Vec<ProviderSecrets>,
    registry: &HealthRegistry,
    observer: &SharedObserver,
    auth: Option<Arc<Auth>>,
) -> Result<Built, BuildError> {
    let retry_config = config.retry;

    // Each provider connects within its own timeout; providers that share
    // a timeout share one pool. Every pool keeps idle connections as
    // `[server]` says.
    let mut pool = ClientConfig::new().pool_idle_timeout(Duration::from_millis(
        config.server.upstream_idle_timeout_ms,
    ));
    if let Some(max) = config.server.upstream_max_idle_per_host {
        pool = pool.pool_max_idle_per_host(max);
    }
    let mut pools: Vec<(Duration, HttpClient)> = Vec::new();
    let mut providers = Vec::with_capacity(config.providers.len());
    for (entry, secrets) in config.providers.iter().zip(secrets) {
        let provider = &entry.provider;
        let timeout = provider.connect_timeout;
        let client = if let Some((_, client)) = pools.iter().find(|(t, _)| *t == timeout) {
            client.clone()
        } else {
            let client = HttpClient::new(pool.clone().connect_timeout(timeout))
                .map_err(|error| BuildError::Client(error.to_string()))?;
            pools.push((timeout, client.clone()));
            client
        };
        providers.push(Provider {
            config: provider.clone(),
            secrets,
            client,
            budget: retry_config.new_budget(),
            prefill: entry.effective_prefill(),
        });
    }
    let parts = Arc::new(Parts {
        registry: registry.clone(),
        observer: observer.clone(),
        retry: retry_config,
        max_event_bytes: config.server.max_event_bytes,
        providers,
    });

    let mut routes = Vec::with_capacity(config.routes.len());
    for route in &config.routes {
        let mut fallback = Fallback::builder();
        for tier in &route.targets {
            let deployments = tier
                .deployments()
                .map(|(provider, model, weight)| {
                    Ok((parts.target(provider, model, Some(route))?, weight))
                })
                .collect::<Result<Vec<_>, BuildError>>()?;
            fallback = fallback.balanced(deployments);
        }
        let fallback = fallback
            .policy(route.fallback_on.clone())
            .availability(registry.clone());
        let fallback = if route.resume {
            // Breaks the resume finds in the events (an error event, a
            // malformed one) count against health as the guard's do.
            let observer: SharedObserver = Arc::new((observer.clone(), registry.clone()));
            fallback.observer(observer).resume(
                route.effective_max_resume_bytes(),
                config.server.max_event_bytes,
            )
        } else {
            fallback.observer(observer.clone())
        };
        let fallback = match route.effective_hedge() {
            Some((after, max, ratio)) => fallback.hedge(after, max, ratio),
            None => fallback,
        }
        .build();
        routes.push((route.model.clone(), RouteService::new(fallback)));
    }

    let direct = direct_targets(config, &parts, registry, observer)?;
    let router = ModelRouter::new(routes).with_direct(direct);
    let models: Arc<[String]> = router.route_names().into();

    // Active probes of ejected providers; `probe_interval_secs = 0` turns
    // them off. A probe gets the provider's attempt timeout: a provider that
    // hangs must not stall its prober.
    let probers = if let Some(interval) = config.health.probe_interval() {
        parts
            .providers
            .iter()
            .filter_map(|provider| {
                let probe = match parts.provider_service(provider, "probe") {
                    Ok(probe) if probe.can_probe() => probe,
                    // No probe: an ejected provider comes back through trials.
                    Ok(_) => return None,
                    Err(error) => return Some(Err(error)),
                };
                let timeout = provider.config.timeout;
                Some(Ok(registry.spawn_prober(
                    &provider.config.name,
                    interval,
                    move || {
                        let probe = probe.clone();
                        async move {
                            tokio::time::timeout(timeout, probe.probe())
                                .await
                                .unwrap_or(false)
                        }
                    },
                )))
            })
            .collect::<Result<Vec<_>, BuildError>>()?
    } else {
        Vec::new()
    };

    Ok(Built {
        generation: Generation {
            router,
            models,
            auth,
        },
        probers,
    })
}

/// The edge layers of both endpoints, from `server`, over the generation
/// `live` serves.
pub fn edge(server: &ServerConfig, live: &Live) -> Edge {
    let router = LiveRouter::new(live.clone());
    // The deadline starts when the request does, so reading a slow body
    // counts against it too; the body has its own, shorter bound. Both
    // endpoints share one concurrency limit.
    let shed = ShedLayer::new(server.max_concurrent_requests);
    let edge = ServiceBuilder::new()
        .map_response(|response: Response<_>| response.map(ResponseBody::new))
        .layer(CatchPanicLayer::custom(panic_answer))
        .layer(shed)
        .layer(ObserveLayer::new())
        .layer(AuthLayer::new(live.clone()))
        .layer(RequestDeadlineLayer::new(Duration::from_millis(
            server.request_timeout_ms,
        )))
        .layer(BodyTimeoutLayer::new(Duration::from_millis(
            server.body_read_timeout_ms,
        )))
        .layer(ReplayLayer::new(server.max_body_bytes));
    let messages = edge
        .clone()
        .layer(MessagesLayer::new().max_event_bytes(server.max_event_bytes))
        .service(router.clone());
    Edge {
        chat: ChatService::new(edge.service(router)),
        messages: ChatService::new(messages),
    }
}

/// `provider/model` addressed directly: the models each provider lists in
/// `direct_models` are built now and named as themselves; with
/// `server.direct_addressing` any other model is built on first use and
/// kept in a bounded least-recently-used cache, and named `provider/*` in
/// metrics and alerts (its model `*`), so no label takes a caller's string.
fn direct_targets(
    config: &Config,
    parts: &Arc<Parts>,
    registry: &HealthRegistry,
    observer: &SharedObserver,
) -> Result<DirectTargets<RouteService>, BuildError> {
    let registry = registry.clone();
    let any_model: SharedObserver = Arc::new(AnyModel(observer.clone()));
    let observer = observer.clone();
    let single = move |parts: &Parts, provider: &str, model: &str, telemetry: &SharedObserver| {
        parts
            .target_observed(provider, model, None, telemetry)
            .map(|target| {
                RouteService::new(
                    Fallback::builder()
                        .target(target)
                        .availability(registry.clone())
                        .observer(observer.clone())
                        .build(),
                )
            })
    };
    let mut listed: HashMap<(String, String), (RouteName, RouteService)> = HashMap::new();
    for entry in &config.providers {
        let provider = &entry.provider;
        for model in &entry.direct_models {
            let name = RouteName::new(format!("{}/{model}", provider.name));
            let service = single(parts, &provider.name, model, &parts.observer)?;
            listed.insert((provider.name.clone(), model.clone()), (name, service));
        }
    }
    let open = config.server.direct_addressing;
    let capacity = NonZeroUsize::new(config.server.direct_cache_size).unwrap_or(NonZeroUsize::MIN);
    let cache: Mutex<LruCache<(String, String), RouteService>> =
        Mutex::new(LruCache::new(capacity));
    let parts = parts.clone();
    Ok(Arc::new(move |provider: &str, model: &str| {
        let key = (provider.to_owned(), model.to_owned());
        if let Some((name, service)) = listed.get(&key) {
            return Some((name.clone(), service.clone()));
        }
        if !open {
            return None;
        }
        let name = RouteName::new(format!("{provider}/*"));
        let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(service) = cache.get(&key) {
            return Some((name, service.clone()));
        }
        let service = single(&parts, provider, model, &any_model).ok()?;
        cache.put(key, service.clone());
        Some((name, service))
    }))
}

/// A panic while a request was served becomes a 500 in the OpenAI shape;
/// what panicked is logged, never sent. (`CatchPanicLayer` hands the
/// payload over by value.)
#[allow(clippy::needless_pass_by_value)]
fn panic_answer(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<ResponseBody> {
    let what = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic");
    tracing::error!(panic = what, "a request panicked; answering 500");
    understudy_core::OpenAiError::internal("the gateway failed while serving this request")
        .with_code("internal_error")
        .to_response()
}

/// The OpenTelemetry generative-AI `gen_ai.system` of a provider's API: the
/// semantic conventions' well-known value where there is one, else the
/// kind's configuration name.
fn gen_ai_system(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Azure => "az.ai.openai",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Bedrock => "aws.bedrock",
        other => other.as_str(),
    }
}
