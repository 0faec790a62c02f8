//! `ProviderConfig`, `ClientConfig` and `ProviderKind` deserialised from a
//! file's keys.
#![cfg(feature = "serde")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use understudy_provider::{ClientConfig, ProviderConfig, ProviderKind};

const LOCAL: &str = r#"
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:11434/v1"
"#;

fn provider(text: &str) -> Result<ProviderConfig, String> {
    toml::from_str(text).map_err(|e| e.message().to_owned())
}

fn client(text: &str) -> Result<ClientConfig, String> {
    toml::from_str(text).map_err(|e| e.message().to_owned())
}

#[test]
fn a_provider_gets_the_defaults() {
    let config = provider(LOCAL).unwrap();
    assert_eq!(
        config,
        ProviderConfig::new("local", ProviderKind::OpenAi, "http://127.0.0.1:11434/v1")
    );
    assert_eq!(config.connect_timeout, Duration::from_secs(2));
    assert_eq!(config.timeout, Duration::from_secs(30));
    assert_eq!(config.first_chunk_timeout, Duration::from_secs(15));
    assert_eq!(config.max_tokens_default, 4096);
    assert!(!config.pass_rate_limit_headers);
}

#[test]
fn every_provider_key_sets_its_field() {
    let config = provider(
        r#"
name = "anthropic"
kind = "anthropic"
base_url = "https://api.anthropic.com/v1"
connect_timeout_ms = 500
timeout_ms = 20000
first_chunk_timeout_ms = 5000
max_tokens_default = 1024
pass_rate_limit_headers = true
"#,
    )
    .unwrap();
    assert_eq!(config.kind, ProviderKind::Anthropic);
    assert_eq!(config.connect_timeout, Duration::from_millis(500));
    assert_eq!(config.timeout, Duration::from_secs(20));
    assert_eq!(config.first_chunk_timeout, Duration::from_secs(5));
    assert_eq!(config.max_tokens_default, 1024);
    assert!(config.pass_rate_limit_headers);
}

#[test]
fn required_and_unknown_keys_are_named() {
    let error = provider("name = \"x\"\nkind = \"openai\"").unwrap_err();
    assert_eq!(error, "base_url is required for kind = \"openai\"");

    let error = provider(&format!("{LOCAL}timeout = 5")).unwrap_err();
    assert!(error.contains("unknown field `timeout`"), "{error}");
    // The error lists every key, as `ProviderConfig::KEYS` does.
    let listed = ProviderConfig::KEYS
        .iter()
        .map(|key| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(
        error.ends_with(&format!("expected one of {listed}")),
        "{error}"
    );
}

#[test]
fn azure_needs_its_api_version_and_extra_headers_carry_no_credentials() {
    let azure =
        "name = \"az\"\nkind = \"azure\"\nbase_url = \"https://r.openai.azure.com/openai\"\n";
    assert_eq!(
        provider(azure).unwrap_err(),
        "api_version is required for kind = \"azure\""
    );
    let config: ProviderConfig = toml::from_str(&format!(
        "{azure}api_version = \"2024-10-21\"\nheaders = {{ \"OpenAI-Organization\" = \"org-1\" }}"
    ))
    .unwrap();
    assert_eq!(config.api_version.as_deref(), Some("2024-10-21"));
    assert_eq!(
        config
            .headers
            .get("OpenAI-Organization")
            .map(String::as_str),
        Some("org-1")
    );
    for name in [
        "Authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "X-Amz-Date",
        "host",
    ] {
        let error = provider(&format!(
            "{LOCAL}headers = {{ \"{name}\" = \"secret-value\" }}"
        ))
        .unwrap_err();
        assert!(error.starts_with("headers `"), "{error}");
        assert!(!error.contains("secret-value"), "{error}");
    }
}

#[test]
fn an_unknown_kind_is_named_with_the_kinds_there_are() {
    let error = provider(&LOCAL.replace("\"openai\"", "\"opnai\"")).unwrap_err();
    assert_eq!(
        error,
        "unknown provider kind `opnai`: expected `openai`, `anthropic`, `azure`, `gemini` or `bedrock`"
    );
}

#[test]
fn a_timeout_over_a_day_or_of_zero_is_refused_naming_the_file_key() {
    assert_eq!(
        provider(&format!("{LOCAL}timeout_ms = 86400001")).unwrap_err(),
        "timeout_ms (86400.001s) must be at most 86400s (one day)"
    );
    assert_eq!(
        provider(&format!("{LOCAL}first_chunk_timeout_ms = 0")).unwrap_err(),
        "first_chunk_timeout_ms must be greater than 0"
    );
    assert_eq!(
        provider(&format!("{LOCAL}max_tokens_default = 0")).unwrap_err(),
        "max_tokens_default must be greater than 0"
    );
    assert!(provider(&format!("{LOCAL}connect_timeout_ms = 86400000")).is_ok());
}

#[test]
fn a_bad_base_url_is_refused_without_echoing_it() {
    for url in [
        "api.example.com/v1",
        "ftp://api.example.com/v1",
        "https://api.example.com/v1?key=secret-value",
        "https://api.example.com/v1#secret-value",
    ] {
        let error = provider(&LOCAL.replace("http://127.0.0.1:11434/v1", url)).unwrap_err();
        assert!(error.starts_with("base_url "), "{url}: {error}");
        assert!(!error.contains("secret-value"), "{url}: {error}");
    }
}

#[test]
fn a_provider_deserialises_from_json_too() {
    let config: ProviderConfig = serde_json::from_str(
        r#"{"name": "openai", "kind": "openai", "base_url": "https://api.openai.com/v1", "timeout_ms": 1000}"#,
    )
    .unwrap();
    assert_eq!(config.timeout, Duration::from_secs(1));
}

#[test]
fn deserialize_checked_keeps_parse_and_range_errors_apart() {
    let de = |text| toml::de::ValueDeserializer::parse(text).unwrap();
    assert!(ProviderConfig::deserialize_checked(de("{ name = \"x\" }")).is_err());
    let error = ProviderConfig::deserialize_checked(de(
        r#"{ name = "x", kind = "openai", base_url = "http://h", timeout_ms = 0 }"#,
    ))
    .unwrap()
    .unwrap_err();
    assert_eq!(error.key(), "timeout_ms");
    assert_eq!(error.problem(), "must be greater than 0");
}

#[test]
fn a_client_gets_the_defaults_and_every_key() {
    let config = client("").unwrap();
    let default = ClientConfig::default();
    assert_eq!(config.connect_timeout, default.connect_timeout);
    assert_eq!(config.pool_idle_timeout, default.pool_idle_timeout);
    assert_eq!(config.pool_max_idle_per_host, usize::MAX);
    assert!(config.webpki_roots);

    let config = client(
        "connect_timeout_ms = 1500\n\
         pool_idle_timeout_ms = 30000\n\
         pool_max_idle_per_host = 8\n\
         webpki_roots = false\n",
    )
    .unwrap();
    assert_eq!(config.connect_timeout, Duration::from_millis(1500));
    assert_eq!(config.pool_idle_timeout, Duration::from_secs(30));
    assert_eq!(config.pool_max_idle_per_host, 8);
    assert!(!config.webpki_roots);
}

#[test]
fn a_client_refuses_unknown_keys_and_over_long_timeouts() {
    assert!(
        client("extra_root_certificates = []")
            .unwrap_err()
            .contains("unknown field `extra_root_certificates`")
    );
    assert_eq!(
        client("pool_idle_timeout_ms = 86400001").unwrap_err(),
        "pool_idle_timeout_ms (86400.001s) must be at most 86400s (one day)"
    );
    assert_eq!(
        client("connect_timeout_ms = 0").unwrap_err(),
        "connect_timeout_ms must be greater than 0"
    );
}

#[test]
fn a_kind_reads_as_its_name() {
    let config = provider(&LOCAL.replace("kind = \"openai\"", "kind = \"anthropic\"")).unwrap();
    assert_eq!(config.kind, ProviderKind::Anthropic);
    let error = provider(&LOCAL.replace("kind = \"openai\"", "kind = 1")).unwrap_err();
    assert!(error.contains("expected a string"), "{error}");
    let kind: ProviderKind = serde_json::from_str("\"anthropic\"").unwrap();
    assert_eq!(kind, ProviderKind::Anthropic);
}

#[test]
fn a_gemini_provider_defaults_to_googles_base_url() {
    let config = provider("name = \"google\"\nkind = \"gemini\"\n").unwrap();
    assert_eq!(config.kind, ProviderKind::Gemini);
    assert_eq!(
        config.base_url,
        "https://generativelanguage.googleapis.com/v1beta"
    );
}
