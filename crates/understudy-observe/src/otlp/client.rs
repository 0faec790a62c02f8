//! The HTTP client the exporter posts with: hyper over rustls (the crate's
//! own stack, no gRPC), driven by a small runtime on its own thread so the
//! SDK's export thread can wait on it and no request's runtime does the
//! work.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{HttpClient, HttpError};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use understudy_core::BoxError;

/// The exporter's HTTP client; its requests run on the export runtime.
#[derive(Clone)]
pub(super) struct ExportClient {
    inner: HyperClient<HttpsConnector<HttpConnector>>,
    runtime: Handle,
}

impl fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportClient").finish_non_exhaustive()
    }
}

/// The export runtime's thread: it runs until this is dropped.
pub(super) struct ExportRuntime {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ExportRuntime {
    /// Starts the runtime's thread.
    pub(super) fn start() -> Result<(Self, Handle), BoxError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("otlp-export".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let _ = stopped.await;
                });
            })?;
        Ok((
            Self {
                stop: Some(stop),
                thread: Some(thread),
            },
            handle,
        ))
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl ExportClient {
    /// A client whose requests end after `timeout`, run on `runtime`.
    pub(super) fn new(runtime: Handle, timeout: Duration) -> Result<Self, BoxError> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // The client spawns its connection tasks where it is built.
        let inner = {
            let _entered = runtime.enter();
            HyperClient::new(connector, timeout, None)
        };
        Ok(Self { inner, runtime })
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let inner = self.inner.clone();
        self.runtime
            .spawn(async move { inner.send_bytes(request).await })
            .await?
    }
}
