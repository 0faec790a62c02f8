//! The shared HTTP client: one keep-alive pool per serving thread.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use understudy_core::{ReplayBody, lane};

/// How the [`HttpClient`] connects, pools and trusts.
///
/// The fields are public so a configuration can be written as a struct
/// literal over [`Default`]; the methods of the same names set them one at a
/// time.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use understudy_provider::{ClientConfig, HttpClient};
///
/// let config = ClientConfig::default()
///     .connect_timeout(Duration::from_secs(2))
///     .pool_max_idle_per_host(64);
/// let client = HttpClient::new(config).unwrap();
/// # drop(client);
/// ```
///
/// # Deserialising
///
/// With the `serde` feature it deserialises from a map with the optional
/// keys `connect_timeout_ms`, `pool_idle_timeout_ms`,
/// `pool_max_idle_per_host` (absent: no limit) and `webpki_roots`, checked
/// as [`validate`](Self::validate) checks them; extra roots are added in
/// code.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use std::time::Duration;
/// use understudy_provider::ClientConfig;
///
/// let config: ClientConfig = toml::from_str("connect_timeout_ms = 2000").unwrap();
/// assert_eq!(config.connect_timeout, Duration::from_secs(2));
/// assert_eq!(config.pool_max_idle_per_host, usize::MAX);
///
/// let error = toml::from_str::<ClientConfig>("connect_timout_ms = 2000").unwrap_err();
/// assert!(error.message().contains("unknown field `connect_timout_ms`"));
/// # }
/// ```
#[derive(Clone)]
pub struct ClientConfig {
    /// How long a TCP connect may take before it fails. Default: 5 seconds.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept. Default: 90 seconds.
    pub pool_idle_timeout: Duration,
    /// How many idle connections are kept per host. Default: no limit (idle
    /// connections still close after `pool_idle_timeout`). A limit below the
    /// concurrency a provider sees makes the pool close and reopen
    /// connections under load.
    pub pool_max_idle_per_host: usize,
    /// Whether the public web PKI roots (webpki-roots) are trusted.
    /// Default: true.
    pub webpki_roots: bool,
    /// Extra trusted root certificates, in DER: a private CA, or a test CA.
    pub extra_root_certificates: Vec<CertificateDer<'static>>,
}

impl ClientConfig {
    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the TCP connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long an idle pooled connection is kept.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// Sets how many idle connections are kept per host.
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = max;
        self
    }

    /// Sets whether the public web PKI roots are trusted.
    pub fn webpki_roots(mut self, trust: bool) -> Self {
        self.webpki_roots = trust;
        self
    }

    /// Trusts one more root certificate, given in DER.
    pub fn add_root_certificate(mut self, certificate: CertificateDer<'static>) -> Self {
        self.extra_root_certificates.push(certificate);
        self
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: usize::MAX,
            webpki_roots: true,
            extra_root_certificates: Vec::new(),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("pool_max_idle_per_host", &self.pool_max_idle_per_host)
            .field("webpki_roots", &self.webpki_roots)
            .field(
                "extra_root_certificates",
                &self.extra_root_certificates.len(),
            )
            .finish()
    }
}

/// Why an [`HttpClient`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientBuildError {
    /// An extra root certificate was not a valid trust anchor.
    #[error("invalid root certificate")]
    InvalidRootCertificate(#[source] rustls::Error),
    /// No root certificate is trusted: the web PKI roots are off and no
    /// extra root was given.
    #[error("no trusted root certificate: enable the web PKI roots or add a root")]
    NoRoots,
    /// rustls refused the TLS configuration.
    #[error("invalid TLS configuration")]
    Tls(#[source] rustls::Error),
}

/// The HTTP client every provider service sends through.
///
/// hyper-util's pooled client over a rustls connector (ring crypto, the
/// webpki root store plus any extra roots): `https://` and plain `http://`
/// URLs, HTTP/2 negotiated by ALPN with HTTP/1.1 as the fallback,
/// `TCP_NODELAY` on every connection, a connect timeout and a keep-alive
/// pool. Cloning is cheap and shares the pools: build one per process.
///
/// There is one pool per [lane](understudy_core::lane), made on the lane's
/// first request: a server that runs one runtime per core sends each
/// request over a connection its own thread drives, so no request wakes
/// another thread. `pool_max_idle_per_host` bounds each lane's pool. Lanes
/// past [`MAX_LANES`] share pools.
#[derive(Clone)]
pub struct HttpClient {
    pools: Arc<Pools>,
    config: Arc<ClientConfig>,
}

/// The lanes' pools, and what makes a lane's pool on its first request.
struct Pools {
    lanes: [OnceLock<Lane>; MAX_LANES],
    builder: hyper_util::client::legacy::Builder,
    connector: HttpsConnector<HttpConnector>,
}

/// The most pools one [`HttpClient`] keeps.
pub const MAX_LANES: usize = 64;

type Lane = Client<HttpsConnector<HttpConnector>, ReplayBody>;

impl HttpClient {
    /// Builds a client.
    ///
    /// Must be called inside a tokio runtime only when requests are sent;
    /// building needs none.
    pub fn new(config: ClientConfig) -> Result<Self, ClientBuildError> {
        let mut roots = RootCertStore::empty();
        if config.webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for certificate in &config.extra_root_certificates {
            roots
                .add(certificate.clone())
                .map_err(ClientBuildError::InvalidRootCertificate)?;
        }
        if roots.is_empty() {
            return Err(ClientBuildError::NoRoots);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(ClientBuildError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_keepalive(Some(Duration::from_mins(1)));

        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);

        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host);
        Ok(Self {
            pools: Arc::new(Pools {
                lanes: std::array::from_fn(|_| OnceLock::new()),
                builder,
                connector: https,
            }),
            config: Arc::new(config),
        })
    }

    /// The current lane's pool, made on first use.
    fn lane(&self) -> &Lane {
        let pools = &*self.pools;
        pools.lanes[lane::current() % MAX_LANES]
            .get_or_init(|| pools.builder.build(pools.connector.clone()))
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sends a request and resolves to the response head; the body streams
    /// after.
    pub async fn send(
        &self,
        request: Request<ReplayBody>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        self.lane().request(request).await
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
