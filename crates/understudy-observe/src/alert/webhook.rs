//! [`WebhookSink`]: alerts sent to a webhook as JSON.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use understudy_core::BoxError;

use super::{Alert, AlertSink, DeliverFuture};
use crate::TARGET;

/// Longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a [`WebhookSink`] could not be built or could not deliver.
///
/// No variant holds the webhook's full URL: its path is usually a secret
/// token. Only `scheme://host[:port]` is ever shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL does not parse as an absolute URL with a host.
    #[error("the webhook URL is not an absolute http(s) URL with a host")]
    InvalidUrl,
    /// The scheme is neither `http` nor `https`.
    #[error("the webhook URL scheme must be http or https")]
    UnsupportedScheme,
    /// The TLS client could not be set up.
    #[error("TLS setup for the webhook failed")]
    Tls(#[source] rustls::Error),
    /// The webhook answered with a status that is not 2xx.
    #[error("webhook {target} answered {status}")]
    Status {
        /// `scheme://host[:port]`.
        target: Arc<str>,
        /// What it answered.
        status: StatusCode,
    },
    /// No answer within the timeout.
    #[error("webhook {target} did not answer within {timeout:?}")]
    Timeout {
        /// `scheme://host[:port]`.
        target: Arc<str>,
        /// The timeout per try.
        timeout: Duration,
    },
    /// The request failed (connect, TLS, connection reset).
    #[error("webhook {target} request failed: {source}")]
    Transport {
        /// `scheme://host[:port]`.
        target: Arc<str>,
        /// The client's error.
        source: BoxError,
    },
}

/// POSTs each alert as JSON to a webhook: Slack's incoming webhooks (and
/// Mattermost, Discord's `/slack` endpoint, most chat tools) show the
/// `text` field; anything else can read the structured fields (see
/// [`Alert::to_json`]).
///
/// Each try has a [timeout](Self::timeout); a failed try (transport error,
/// timeout, 408, 429 or 5xx) is retried with exponential backoff up to
/// [`max_retries`](Self::max_retries) times; another 4xx is not retried. A
/// final failure is returned to [`Alerts`](crate::Alerts), which logs and
/// counts it.
///
/// HTTPS uses rustls (ring) with the webpki root certificates; plain `http`
/// is accepted too (a sidecar, a loopback test). The webhook URL is treated
/// as a secret: logs, errors and `Debug` show only `scheme://host[:port]`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use understudy_observe::WebhookSink;
///
/// let sink = WebhookSink::new("https://hooks.slack.com/services/T000/B000/XXXX")
///     .unwrap()
///     .timeout(Duration::from_secs(5))
///     .max_retries(3);
/// assert_eq!(format!("{sink:?}"), "WebhookSink { target: \"https://hooks.slack.com\", .. }");
/// ```
#[derive(Clone)]
pub struct WebhookSink {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    target: Arc<str>,
    timeout: Duration,
    max_retries: u32,
    backoff: Duration,
}

impl WebhookSink {
    /// A sink posting to `url` (`http` or `https`), with a 10 s timeout per
    /// try, 3 retries and a 500 ms initial backoff.
    pub fn new(url: &str) -> Result<Self, WebhookError> {
        let uri: Uri = url.parse().map_err(|_| WebhookError::InvalidUrl)?;
        let scheme = uri.scheme_str().ok_or(WebhookError::InvalidUrl)?;
        if scheme != "http" && scheme != "https" {
            return Err(WebhookError::UnsupportedScheme);
        }
        let host = uri.host().ok_or(WebhookError::InvalidUrl)?;
        let target: Arc<str> = match uri.port_u16() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        }
        .into();

        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(WebhookError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            client,
            uri,
            target,
            timeout: Duration::from_secs(10),
            max_retries: 3,
            backoff: Duration::from_millis(500),
        })
    }

    /// The timeout of each try (connect, send, and read the answer).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries after the first try. Zero tries once.
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The wait before the first retry; it doubles for each next one, up to
    /// 30 s.
    #[must_use]
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// `scheme://host[:port]` of the webhook: all of its URL that is ever
    /// shown.
    pub fn target(&self) -> &str {
        &self.target
    }

    async fn post(&self, payload: Bytes) -> Result<(), WebhookError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "understudy")
            .body(Full::new(payload))
            .map_err(|error| self.transport(error.into()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| self.transport(error.into()))?;
            let status = response.status();
            // Read the (small) answer so the connection can be reused.
            response
                .into_body()
                .collect()
                .await
                .map_err(|error| self.transport(error.into()))?;
            Ok(status)
        };
        let status = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| WebhookError::Timeout {
                target: Arc::clone(&self.target),
                timeout: self.timeout,
            })??;
        if status.is_success() {
            Ok(())
        } else {
            Err(WebhookError::Status {
                target: Arc::clone(&self.target),
                status,
            })
        }
    }

    fn transport(&self, source: BoxError) -> WebhookError {
        WebhookError::Transport {
            target: Arc::clone(&self.target),
            source,
        }
    }
}

/// Whether a failed try is worth another.
fn is_retryable(error: &WebhookError) -> bool {
    match error {
        WebhookError::Status { status, .. } => {
            status.is_server_error()
                || *status == StatusCode::TOO_MANY_REQUESTS
                || *status == StatusCode::REQUEST_TIMEOUT
        }
        WebhookError::Timeout { .. } | WebhookError::Transport { .. } => true,
        WebhookError::InvalidUrl | WebhookError::UnsupportedScheme | WebhookError::Tls(_) => false,
    }
}

impl AlertSink for WebhookSink {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> DeliverFuture<'a> {
        Box::pin(async move {
            let payload = Bytes::from(serde_json::to_vec(&alert.to_json())?);
            let mut backoff = self.backoff;
            let mut tries = 0;
            loop {
                tries += 1;
                match self.post(payload.clone()).await {
                    Ok(()) => return Ok(()),
                    Err(error) if tries <= self.max_retries && is_retryable(&error) => {
                        tracing::debug!(
                            target: TARGET,
                            event = "alert_webhook_retry",
                            webhook = &*self.target,
                            attempt = tries,
                            delay_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                            error = %error,
                            "webhook try failed; retrying",
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        })
    }
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_only_scheme_and_host() {
        let sink = WebhookSink::new("http://127.0.0.1:9/hook/secret-token").unwrap();
        assert_eq!(sink.target(), "http://127.0.0.1:9");
        assert!(!format!("{sink:?}").contains("secret-token"));
    }

    #[test]
    fn refuses_bad_urls_without_echoing_them() {
        for url in [
            "ftp://example.com/x",
            "/relative/secret",
            "not a url secret",
        ] {
            let error = WebhookSink::new(url).unwrap_err();
            assert!(!error.to_string().contains("secret"), "{error}");
        }
    }
}
