//! `[telemetry]`: where the request and attempt spans are exported (OTLP
//! over HTTP, protobuf). Read at start only.

use std::fmt;

use serde::Deserialize;

use super::MAX_DURATION_MS;
use super::error::{ConfigError, invalid};

/// The most spans the export queue may be configured to hold.
pub(super) const MAX_QUEUE_SIZE: usize = 1 << 20;

/// The longest `service_name`.
const MAX_SERVICE_NAME: usize = 256;

/// `[telemetry]`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP endpoint (`http://127.0.0.1:4318`);
    /// `/v1/traces` is appended unless the URL ends with it. None: no
    /// export (nothing of OpenTelemetry is installed).
    pub otlp_endpoint: Option<String>,
    /// The exported resource's `service.name`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// The share of the traces the gateway starts that are exported
    /// (0..=1); a request under a caller's `traceparent` follows the
    /// caller's sampled flag.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// The most finished spans waiting for export; past it spans are
    /// dropped and counted.
    #[serde(default = "default_max_queue_size")]
    pub max_queue_size: usize,
    /// The longest one export may take.
    #[serde(default = "default_export_timeout_ms")]
    pub export_timeout_ms: u64,
}

fn default_service_name() -> String {
    "understudy".to_owned()
}

const fn default_sample_ratio() -> f64 {
    1.0
}

const fn default_max_queue_size() -> usize {
    2048
}

const fn default_export_timeout_ms() -> u64 {
    10_000
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: default_service_name(),
            sample_ratio: default_sample_ratio(),
            max_queue_size: default_max_queue_size(),
            export_timeout_ms: default_export_timeout_ms(),
        }
    }
}

impl fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryConfig")
            .field(
                "otlp_endpoint",
                &self.otlp_endpoint.as_deref().map(redacted),
            )
            .field("service_name", &self.service_name)
            .field("sample_ratio", &self.sample_ratio)
            .field("max_queue_size", &self.max_queue_size)
            .field("export_timeout_ms", &self.export_timeout_ms)
            .finish()
    }
}

/// The endpoint as it may be printed: scheme, host, port and path, never
/// credentials or a query (either may hold a token).
pub(crate) fn redacted(endpoint: &str) -> String {
    match endpoint.parse::<http::Uri>() {
        Ok(uri) => {
            let scheme = uri.scheme_str().unwrap_or("?");
            let host = uri.host().unwrap_or("?");
            let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}://{host}{port}{}", uri.path())
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

impl TelemetryConfig {
    /// Checks every rule a TOML parse cannot, naming the key as
    /// `telemetry.{key}` and never echoing the endpoint.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.otlp_endpoint {
            match endpoint.parse::<http::Uri>() {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.host().is_some_and(|host| !host.is_empty()) => {}
                _ => {
                    return Err(invalid(
                        "telemetry.otlp_endpoint",
                        "is not an http:// or https:// URL",
                    ));
                }
            }
        }
        let name = self.service_name.trim();
        if name.is_empty() || self.service_name.len() > MAX_SERVICE_NAME {
            return Err(invalid(
                "telemetry.service_name",
                format!("must be 1 to {MAX_SERVICE_NAME} characters"),
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(invalid(
                "telemetry.sample_ratio",
                "must be a number from 0 to 1",
            ));
        }
        if self.max_queue_size == 0 || self.max_queue_size > MAX_QUEUE_SIZE {
            return Err(invalid(
                "telemetry.max_queue_size",
                format!("must be 1 to {MAX_QUEUE_SIZE}"),
            ));
        }
        if self.export_timeout_ms == 0 || self.export_timeout_ms > MAX_DURATION_MS {
            return Err(invalid(
                "telemetry.export_timeout_ms",
                format!("must be 1 to {MAX_DURATION_MS}"),
            ));
        }
        Ok(())
    }

    /// The section, for `--check --explain`: the endpoint without
    /// credentials or query.
    pub fn explain(&self) -> String {
        match &self.otlp_endpoint {
            Some(endpoint) => format!(
                "telemetry: OTLP/HTTP traces to {} as service `{}`, sample ratio {}, queue {} spans, export timeout {} ms\n",
                redacted(endpoint),
                self.service_name,
                self.sample_ratio,
                self.max_queue_size,
                self.export_timeout_ms,
            ),
            None => "telemetry: no trace export\n".to_owned(),
        }
    }

    /// The export this section asks for, if any (feature `otlp`).
    #[cfg(feature = "otlp")]
    pub fn otlp(&self) -> Option<understudy_observe::OtlpConfig> {
        self.otlp_endpoint.as_ref().map(|endpoint| {
            understudy_observe::OtlpConfig::new(endpoint.as_str())
                .service_name(self.service_name.as_str())
                .sample_ratio(self.sample_ratio)
                .max_queue_size(self.max_queue_size)
                .export_timeout(std::time::Duration::from_millis(self.export_timeout_ms))
        })
    }
}
