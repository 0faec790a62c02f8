//! The embedded demo: two mock providers on loopback, the gateway in front.

use std::net::SocketAddr;

use understudy_mock::{FaultPlan, MockConfig, MockProvider};

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
