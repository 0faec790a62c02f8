//! The embedded demo: two mock providers on loopback, the gateway in front.

use std::net::SocketAddr;

use http::Request;
use http_body_util::BodyExt;
use understudy_core::ReplayBody;
use understudy_mock::{FaultPlan, MockConfig, MockProvider};
use understudy_provider::{ClientConfig, HttpClient};

use crate::config::Config;
use crate::gateway::{Gateway, GatewayError};

/// The primary's faults: its first chat request fails, then three in ten
/// (seeded, so every run is the same).
pub const PRIMARY_FAULTS: &str = "status:503*1,status:503@0.3";

/// The demo: the mocks and the gateway in front of them.
#[derive(Debug)]
pub struct Demo {
    /// The failing primary.
    pub primary: MockProvider,
    /// The healthy backup.
    pub backup: MockProvider,
    /// The gateway, routing model `chat` to the primary, then the backup.
    pub gateway: Gateway,
    /// The configuration the gateway was built from.
    pub config: Config,
}

/// The demo's configuration for mocks at these base URLs.
pub fn config(listen: SocketAddr, primary: &str, backup: &str) -> Result<Config, GatewayError> {
    Ok(Config::from_toml(&format!(
        r#"
[server]
listen = "{listen}"
request_timeout_ms = 10000

[[providers]]
name = "primary"
kind = "openai"
base_url = "{primary}"
timeout_ms = 2000
first_chunk_timeout_ms = 2000

[[providers]]
name = "backup"
kind = "openai"
base_url = "{backup}"

[[routes]]
model = "chat"
targets = [
  {{ provider = "primary", model = "demo-large" }},
  {{ provider = "backup", model = "demo-small" }},
]

[retry]
max_retries = 0

[health]
consecutive_failures = 3
base_ejection_secs = 5
probe_interval_secs = 2
"#
    ))?)
}

/// Starts the mocks and builds the gateway; serve it with
/// [`Gateway::serve`].
pub async fn start(listen: SocketAddr) -> Result<Demo, DemoError> {
    let plan: FaultPlan = PRIMARY_FAULTS
        .parse()
        .map_err(|error| DemoError::Mock(std::io::Error::other(format!("{error}"))))?;
    let primary = MockProvider::start(MockConfig::openai().name("primary").seed(7).faults(plan))
        .await
        .map_err(DemoError::Mock)?;
    let backup = MockProvider::start(MockConfig::openai().name("backup"))
        .await
        .map_err(DemoError::Mock)?;
    let config = config(listen, &primary.base_url(), &backup.base_url())?;
    let gateway = Gateway::new(&config, |_| None)?;
    Ok(Demo {
        primary,
        backup,
        gateway,
        config,
    })
}

/// What the demo's first request came back with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `x-understudy-provider`: who served it.
    pub provider: String,
    /// `x-understudy-attempts`: upstream attempts made.
    pub attempts: String,
    /// The completion's text, or the error body.
    pub content: String,
}

/// Sends one chat request for model `chat` to the gateway at `addr`, as a
/// caller would, and reads who answered.
pub async fn ask(addr: SocketAddr) -> Result<Answer, String> {
    let client = HttpClient::new(ClientConfig::new()).map_err(|e| e.to_string())?;
    let request = Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(ReplayBody::from(
            r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#,
        ))
        .map_err(|e| e.to_string())?;
    let response = client.send(request).await.map_err(|e| e.to_string())?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (status, provider, attempts) = (
        response.status().as_u16(),
        header("x-understudy-provider"),
        header("x-understudy-attempts"),
    );
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let content = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    Ok(Answer {
        status,
        provider,
        attempts,
        content,
    })
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A mock provider could not start.
    #[error("could not start a mock provider: {0}")]
    Mock(std::io::Error),
    /// The gateway could not be built.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}
