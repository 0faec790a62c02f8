//! A provider described in configuration: [`ProviderConfig`], its checks,
//! and (with the `serde` feature) `Deserialize` for it, for
//! [`ClientConfig`] and for [`ProviderKind`].

use std::collections::BTreeMap;
use std::time::Duration;

use understudy_core::config::{InvalidSetting, check_duration, check_positive_duration};

use crate::{ClientConfig, DialectOptions, ProviderKind};

/// One provider as a target stack needs it: what it is, where it is, how
/// long an attempt may take, and how its answers are passed on.
///
/// The fields are public; [`ProviderConfig::new`] fills in the defaults and
/// [`validate`](Self::validate) checks the values. The name is a label (logs,
/// metrics, health, headers): whoever keeps a list of providers decides
/// what names it accepts.
///
/// | field | default |
/// |---|---|
/// | `connect_timeout` | 2 s |
/// | `timeout` (per attempt, until the response head) | 30 s |
/// | `first_chunk_timeout` (per streamed attempt) | 15 s |
/// | `max_tokens_default` | 4096 |
/// | `pass_rate_limit_headers` | off |
/// | `stream_usage` | on |
///
/// # Deserialising
///
/// With the `serde` feature it deserialises from a map with the keys
/// `name`, `kind` (`"openai"` or `"anthropic"`) and `base_url`, which are
/// required, and `connect_timeout_ms`, `timeout_ms`,
/// `first_chunk_timeout_ms`, `max_tokens_default`,
/// `pass_rate_limit_headers` and `stream_usage`, which default as above. Any other key is an
/// error ([`ProviderConfig::KEYS`] lists them), and the values are checked
/// as [`validate`](Self::validate) checks them, the error naming the file's
/// key.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use std::time::Duration;
/// use understudy_provider::{ProviderConfig, ProviderKind};
///
/// let config: ProviderConfig = toml::from_str(
///     r#"
///     name = "anthropic"
///     kind = "anthropic"
///     base_url = "https://api.anthropic.com/v1"
///     timeout_ms = 20000
///     "#,
/// )
/// .unwrap();
/// assert_eq!(config.kind, ProviderKind::Anthropic);
/// assert_eq!(config.timeout, Duration::from_secs(20));
/// assert_eq!(config.first_chunk_timeout, Duration::from_secs(15));
///
/// let error = serde_json::from_str::<ProviderConfig>(
///     r#"{"name": "local", "kind": "openai", "base_url": "http://127.0.0.1:11434/v1", "timeout_ms": 0}"#,
/// )
/// .unwrap_err();
/// assert!(error.to_string().starts_with("timeout_ms must be greater than 0"));
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// A unique name, used in logs, metrics, health and headers.
    pub name: String,
    /// The API the provider speaks.
    pub kind: ProviderKind,
    /// Base URL, such as `https://api.openai.com/v1`: `http` or `https`,
    /// with a host, and no query or fragment (the endpoint path is appended
    /// to it).
    pub base_url: String,
    /// TCP (and TLS) connect timeout, for the provider's
    /// [`ClientConfig::connect_timeout`].
    pub connect_timeout: Duration,
    /// Per attempt, until the response head.
    pub timeout: Duration,
    /// Per attempt, for streams: until the first content chunk.
    pub first_chunk_timeout: Duration,
    /// Anthropic only: `max_tokens` when the caller gives none.
    pub max_tokens_default: u32,
    /// Pass the provider's rate-limit headers (`x-ratelimit-*`,
    /// `retry-after`) on to callers
    /// ([`ProviderService::with_rate_limit_headers`](crate::ProviderService::with_rate_limit_headers)).
    pub pass_rate_limit_headers: bool,
    /// Chat streams report their usage for the token counters even when
    /// the caller did not ask: `openai` and `azure` providers are sent
    /// `stream_options.include_usage`, translated kinds write the usage
    /// they read; the caller's stream stays as it asked
    /// ([`ProviderService::with_stream_usage`](crate::ProviderService::with_stream_usage)).
    /// Turn it off for an OpenAI-compatible server that refuses
    /// `stream_options`.
    pub stream_usage: bool,
    /// Azure: the `api-version` every request carries (required there).
    pub api_version: Option<String>,
    /// Bedrock: the AWS region (required there).
    pub region: Option<String>,
    /// Extra headers sent with every request
    /// ([`ProviderService::with_header`](crate::ProviderService::with_header)):
    /// never one that carries credentials or framing.
    pub headers: BTreeMap<String, String>,
}

impl ProviderConfig {
    /// The keys a provider's map may hold when deserialised, in order.
    pub const KEYS: &'static [&'static str] = &[
        "name",
        "kind",
        "base_url",
        "connect_timeout_ms",
        "timeout_ms",
        "first_chunk_timeout_ms",
        "max_tokens_default",
        "pass_rate_limit_headers",
        "stream_usage",
        "api_version",
        "region",
        "headers",
    ];

    /// A provider with the default timeouts and settings.
    ///
    /// ```
    /// use std::time::Duration;
    /// use understudy_provider::{ProviderConfig, ProviderKind};
    ///
    /// let mut config = ProviderConfig::new("openai", ProviderKind::OpenAi, "https://api.openai.com/v1");
    /// config.timeout = Duration::from_secs(60);
    /// assert!(config.validate().is_ok());
    ///
    /// config.base_url = "https://api.openai.com/v1?key=secret".to_owned();
    /// let error = config.validate().unwrap_err();
    /// assert_eq!(error.key(), "base_url");
    /// assert!(!error.to_string().contains("secret"));
    /// ```
    pub fn new(name: impl Into<String>, kind: ProviderKind, base_url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind,
            base_url: base_url.into(),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
            first_chunk_timeout: Duration::from_secs(15),
            max_tokens_default: 4096,
            pass_rate_limit_headers: false,
            stream_usage: true,
            api_version: None,
            region: None,
            headers: BTreeMap::new(),
        }
    }

    /// The options its kind's dialect is built with
    /// ([`ProviderKind::dialect_with`]): `max_tokens_default`,
    /// `api_version`, `region`. Credentials a dialect signs with
    /// ([`DialectOptions::aws_credentials`]) are not configuration: add
    /// them.
    pub fn dialect_options(&self) -> DialectOptions {
        let mut options = DialectOptions::default().max_tokens_default(self.max_tokens_default);
        options.api_version.clone_from(&self.api_version);
        options.region.clone_from(&self.region);
        options
    }

    /// Checks the values: the base URL is an `http://` or `https://` URL
    /// with a host and no query or fragment, every timeout is greater than
    /// 0 and at most
    /// [`MAX_CONFIG_DURATION`](understudy_core::config::MAX_CONFIG_DURATION),
    /// `max_tokens_default` is greater than 0, the settings the kind
    /// requires are there (`api_version` for Azure, `region` for Bedrock),
    /// and every extra header is a valid header that carries no
    /// credentials. The error names the field, and never repeats the URL
    /// (it may carry a credential) or a header's value.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.check(&Names::FIELDS)
    }

    fn check(&self, names: &Names) -> Result<(), InvalidSetting> {
        match self.base_url.parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            _ => {
                return Err(InvalidSetting::new(
                    "base_url",
                    "is not an http:// or https:// URL",
                ));
            }
        }
        if self.base_url.contains(['?', '#']) {
            return Err(InvalidSetting::new(
                "base_url",
                "must hold no query or fragment: the endpoint path is appended to it",
            ));
        }
        for (key, value) in [
            (names.connect_timeout, self.connect_timeout),
            (names.timeout, self.timeout),
            (names.first_chunk_timeout, self.first_chunk_timeout),
        ] {
            check_positive_duration(key, value)?;
        }
        if self.max_tokens_default == 0 {
            return Err(InvalidSetting::new(
                "max_tokens_default",
                "must be greater than 0",
            ));
        }
        for (key, value) in [("api_version", &self.api_version), ("region", &self.region)] {
            if value.is_none() && self.kind.requires(key) {
                return Err(InvalidSetting::new(
                    key,
                    format!("is required for kind = \"{}\"", self.kind),
                ));
            }
        }
        for (name, value) in &self.headers {
            if let Err(problem) = crate::service::check_extra_header(name, value) {
                return Err(InvalidSetting::new(
                    "headers",
                    format!("`{name}` {problem}"),
                ));
            }
        }
        Ok(())
    }
}

impl ClientConfig {
    /// Checks the values: the connect timeout is greater than 0, and both
    /// timeouts are at most
    /// [`MAX_CONFIG_DURATION`](understudy_core::config::MAX_CONFIG_DURATION).
    /// [`HttpClient::new`](crate::HttpClient::new) does not require it; a
    /// configuration read from a file is checked as it is deserialised.
    ///
    /// ```
    /// use std::time::Duration;
    /// use understudy_provider::ClientConfig;
    ///
    /// assert!(ClientConfig::default().validate().is_ok());
    /// let error = ClientConfig::default().connect_timeout(Duration::ZERO).validate().unwrap_err();
    /// assert_eq!(error.to_string(), "connect_timeout must be greater than 0");
    /// ```
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.check(&Names::FIELDS)
    }

    fn check(&self, names: &Names) -> Result<(), InvalidSetting> {
        check_positive_duration(names.connect_timeout, self.connect_timeout)?;
        check_duration(names.pool_idle_timeout, self.pool_idle_timeout)
    }
}

/// What the checks call the settings whose file keys differ from their
/// fields' names.
struct Names {
    connect_timeout: &'static str,
    timeout: &'static str,
    first_chunk_timeout: &'static str,
    pool_idle_timeout: &'static str,
}

impl Names {
    const FIELDS: Self = Self {
        connect_timeout: "connect_timeout",
        timeout: "timeout",
        first_chunk_timeout: "first_chunk_timeout",
        pool_idle_timeout: "pool_idle_timeout",
    };
    #[cfg(feature = "serde")]
    const FILE: Self = Self {
        connect_timeout: "connect_timeout_ms",
        timeout: "timeout_ms",
        first_chunk_timeout: "first_chunk_timeout_ms",
        pool_idle_timeout: "pool_idle_timeout_ms",
    };
}

#[cfg(feature = "serde")]
mod file {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};
    use understudy_core::config::InvalidSetting;

    use super::{Names, ProviderConfig};
    use crate::{ClientConfig, ProviderKind};

    fn millis(duration: Duration) -> u64 {
        u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
    }

    /// A provider's file form: the keys a file spells, in its units. Keep
    /// [`ProviderConfig::KEYS`] in step.
    #[derive(Deserialize)]
    // Expected as the type it becomes.
    #[serde(deny_unknown_fields, expecting = "struct ProviderConfig")]
    struct ProviderFile {
        name: String,
        kind: ProviderKind,
        base_url: Option<String>,
        connect_timeout_ms: Option<u64>,
        timeout_ms: Option<u64>,
        first_chunk_timeout_ms: Option<u64>,
        max_tokens_default: Option<u32>,
        pass_rate_limit_headers: Option<bool>,
        stream_usage: Option<bool>,
        api_version: Option<String>,
        region: Option<String>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    }

    impl TryFrom<ProviderFile> for ProviderConfig {
        type Error = InvalidSetting;

        fn try_from(file: ProviderFile) -> Result<Self, InvalidSetting> {
            let base_url = match file.base_url {
                Some(url) => url,
                None => file
                    .kind
                    .default_base_url(file.region.as_deref())
                    .ok_or_else(|| {
                        InvalidSetting::new(
                            "base_url",
                            format!("is required for kind = \"{}\"", file.kind),
                        )
                    })?,
            };
            let mut config = Self::new(file.name, file.kind, base_url);
            config.api_version = file.api_version;
            config.region = file.region;
            config.headers = file.headers;
            let millis = |ms: Option<u64>, default| ms.map_or(default, Duration::from_millis);
            config.connect_timeout = millis(file.connect_timeout_ms, config.connect_timeout);
            config.timeout = millis(file.timeout_ms, config.timeout);
            config.first_chunk_timeout =
                millis(file.first_chunk_timeout_ms, config.first_chunk_timeout);
            if let Some(max_tokens) = file.max_tokens_default {
                config.max_tokens_default = max_tokens;
            }
            if let Some(pass) = file.pass_rate_limit_headers {
                config.pass_rate_limit_headers = pass;
            }
            if let Some(on) = file.stream_usage {
                config.stream_usage = on;
            }
            config.check(&Names::FILE)?;
            Ok(config)
        }
    }

    impl ProviderConfig {
        /// Deserialises a `ProviderConfig` and checks it, keeping the two
        /// failures apart: the outer error is the deserialiser's (malformed
        /// input, a missing or unknown key, a value of the wrong type), the
        /// inner one a value out of range, naming its file key, for a caller
        /// that reports it under a path of its own. `Deserialize` is this
        /// with the inner error turned into the outer one. Requires the
        /// `serde` feature.
        ///
        /// ```
        /// use understudy_provider::ProviderConfig;
        ///
        /// let checked = ProviderConfig::deserialize_checked(
        ///     toml::de::ValueDeserializer::parse(
        ///         r#"{ name = "local", kind = "openai", base_url = "localhost:8080" }"#,
        ///     )
        ///     .unwrap(),
        /// )
        /// .unwrap();
        /// let error = checked.unwrap_err();
        /// assert_eq!(error.key(), "base_url");
        /// assert_eq!(error.problem(), "is not an http:// or https:// URL");
        /// ```
        pub fn deserialize_checked<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Result<Self, InvalidSetting>, D::Error> {
            ProviderFile::deserialize(deserializer).map(Self::try_from)
        }
    }

    impl<'de> Deserialize<'de> for ProviderConfig {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            Self::deserialize_checked(deserializer)?.map_err(D::Error::custom)
        }
    }

    /// The client's file form. Extra root certificates are added in code.
    #[derive(Deserialize)]
    // Expected as the type it becomes.
    #[serde(deny_unknown_fields, default, expecting = "struct ClientConfig")]
    struct ClientFile {
        connect_timeout_ms: u64,
        pool_idle_timeout_ms: u64,
        /// Absent: no limit.
        pool_max_idle_per_host: Option<usize>,
        webpki_roots: bool,
    }

    impl Default for ClientFile {
        fn default() -> Self {
            let config = ClientConfig::default();
            Self {
                connect_timeout_ms: millis(config.connect_timeout),
                pool_idle_timeout_ms: millis(config.pool_idle_timeout),
                pool_max_idle_per_host: None,
                webpki_roots: config.webpki_roots,
            }
        }
    }

    impl TryFrom<ClientFile> for ClientConfig {
        type Error = InvalidSetting;

        fn try_from(file: ClientFile) -> Result<Self, InvalidSetting> {
            let mut config = Self::default()
                .connect_timeout(Duration::from_millis(file.connect_timeout_ms))
                .pool_idle_timeout(Duration::from_millis(file.pool_idle_timeout_ms))
                .webpki_roots(file.webpki_roots);
            if let Some(max) = file.pool_max_idle_per_host {
                config = config.pool_max_idle_per_host(max);
            }
            config.check(&Names::FILE)?;
            Ok(config)
        }
    }

    impl ClientConfig {
        /// Deserialises a `ClientConfig` from the keys `connect_timeout_ms`,
        /// `pool_idle_timeout_ms`, `pool_max_idle_per_host` and
        /// `webpki_roots` (each optional) and checks it, keeping the two
        /// failures apart as [`ProviderConfig::deserialize_checked`] does.
        /// Requires the `serde` feature.
        ///
        /// ```
        /// use understudy_provider::ClientConfig;
        ///
        /// let checked = ClientConfig::deserialize_checked(
        ///     toml::de::ValueDeserializer::parse("{ connect_timeout_ms = 0 }").unwrap(),
        /// )
        /// .unwrap();
        /// assert_eq!(checked.unwrap_err().key(), "connect_timeout_ms");
        /// ```
        pub fn deserialize_checked<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Result<Self, InvalidSetting>, D::Error> {
            ClientFile::deserialize(deserializer).map(Self::try_from)
        }
    }

    impl<'de> Deserialize<'de> for ClientConfig {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            Self::deserialize_checked(deserializer)?.map_err(D::Error::custom)
        }
    }
}
