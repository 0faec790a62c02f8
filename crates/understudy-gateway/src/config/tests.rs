//! The configuration's contract: the documented example, defaults, and
//! errors that name the key.

use std::time::Duration;

use understudy_fallback::{FallbackOn, FallbackRules};
use understudy_provider::ProviderKind;

use super::*;

const EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8080"
max_body_bytes = 10485760
request_timeout_ms = 120000

[[providers]]
name = "openai"
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
connect_timeout_ms = 2000
timeout_ms = 30000
first_chunk_timeout_ms = 15000

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "https://api.anthropic.com/v1"
api_key_env = "ANTHROPIC_API_KEY"
max_tokens_default = 4096

[[routes]]
model = "chat"
targets = [
  { provider = "openai", model = "gpt-4o-mini" },
  { provider = "anthropic", model = "claude-3-5-haiku-latest" },
]
fallback_on = ["provider_failure"]

[retry]
max_retries = 1
base_delay_ms = 100
max_delay_ms = 2000
max_retry_after_ms = 3000
budget_ratio = 0.2

[health]
consecutive_failures = 5
failure_ratio = 0.5
min_requests = 20
window_secs = 30
base_ejection_secs = 30
max_ejection_secs = 300
probe_interval_secs = 10

[alerts]
webhook_url = "https://hooks.example.com/T000/B000/secret-token"
min_interval_secs = 300
"#;

fn error_of(text: &str) -> String {
    Config::from_toml(text).unwrap_err().to_string()
}

#[test]
fn the_documented_example_parses() {
    let config = Config::from_toml(EXAMPLE).unwrap();
    assert_eq!(config.providers.len(), 2);
    assert_eq!(config.providers[1].provider.kind, ProviderKind::Anthropic);
    assert_eq!(
        config.providers[1].provider.timeout,
        Duration::from_secs(30),
        "default"
    );
    assert_eq!(
        config.routes[0].targets[1].model.as_deref(),
        Some("claude-3-5-haiku-latest")
    );
    assert_eq!(
        config.routes[0].fallback_on,
        FallbackRules::only([FallbackOn::ProviderFailure])
    );
    assert!(!format!("{config:?}").contains("secret-token"));
}

#[test]
fn a_minimal_file_gets_defaults() {
    let config = Config::from_toml(
        r#"
[[providers]]
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:11434/v1"

[[routes]]
model = "chat"
targets = [{ provider = "local", model = "llama3" }]
"#,
    )
    .unwrap();
    assert_eq!(config.server.request_timeout_ms, 120_000);
    assert_eq!(config.retry.get_max_retries(), 1);
    assert_eq!(config.health.consecutive_failures(), 5);
    assert_eq!(
        config.providers[0].provider.first_chunk_timeout,
        Duration::from_secs(15)
    );
    assert!(config.alerts.is_none());
    let secrets = config.provider_secrets(|_| None).unwrap();
    assert_eq!(secrets.len(), 1);
    assert!(secrets[0].key.is_none() && secrets[0].headers.is_empty() && secrets[0].aws.is_none());
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let typo = EXAMPLE.replace("fallback_on =", "fallbak_on =");
    let message = error_of(&typo);
    assert!(message.contains("fallbak_on"), "{message}");

    let typo = EXAMPLE.replace("[health]\n", "[health]\nconsecutive_failure = 3\n");
    assert!(error_of(&typo).contains("consecutive_failure"));

    let unknown_class = EXAMPLE.replace("[\"provider_failure\"]", "[\"timeouts\"]");
    assert!(error_of(&unknown_class).contains("timeouts"));
}

#[test]
fn a_route_must_name_an_existing_provider() {
    let missing = EXAMPLE.replace("{ provider = \"anthropic\"", "{ provider = \"antropic\"");
    assert_eq!(
        error_of(&missing),
        "`routes[0].targets[1].provider`: no provider is named `antropic`"
    );
}

#[test]
fn values_out_of_range_name_the_key_and_value() {
    let cases = [
        (
            "failure_ratio = 0.5",
            "failure_ratio = 1.5",
            "`health.failure_ratio`: (1.5)",
        ),
        (
            "budget_ratio = 0.2",
            "budget_ratio = -1.0",
            "`retry.budget_ratio`: (-1)",
        ),
        (
            "base_url = \"https://api.openai.com/v1\"",
            "base_url = \"api.openai.com\"",
            "`providers[0].base_url`",
        ),
        (
            "timeout_ms = 30000",
            "timeout_ms = 0",
            "`providers[0].timeout_ms`",
        ),
        (
            "name = \"anthropic\"",
            "name = \"openai\"",
            "`providers[1].name`",
        ),
    ];
    for (from, to, want) in cases {
        let message = error_of(&EXAMPLE.replace(from, to));
        assert!(message.starts_with(want), "{to}: {message}");
    }
}

#[test]
fn an_unset_key_variable_is_named_without_any_value() {
    let config = Config::from_toml(EXAMPLE).unwrap();
    let error = config
        .provider_secrets(|var| (var == "OPENAI_API_KEY").then(|| "sk-live-value".to_owned()))
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "`providers[1].api_key_env`: the environment variable `ANTHROPIC_API_KEY` is not set"
    );
    let secrets = config
        .provider_secrets(|_| Some("sk-live-value".to_owned()))
        .unwrap();
    assert_eq!(secrets.len(), 2);
    assert!(!format!("{secrets:?}").contains("sk-live-value"));
}

#[test]
fn a_bad_webhook_url_is_not_echoed() {
    let bad = EXAMPLE.replace(
        "https://hooks.example.com/T000/B000/secret-token",
        "hooks-secret-token",
    );
    let message = error_of(&bad);
    assert!(message.starts_with("`alerts.webhook_url`"));
    assert!(!message.contains("secret-token"));
}

#[test]
fn library_sections_are_reported_under_their_path() {
    for (from, to, want) in [
        (
            "max_retries = 1",
            "max_retries = 11",
            "`retry.max_retries`: (11) must be at most 10",
        ),
        (
            "window_secs = 30",
            "window_secs = 86401",
            "`health.window_secs`: (86401s) must be in the range [10ms, 86400s]",
        ),
        (
            "first_chunk_timeout_ms = 15000",
            "first_chunk_timeout_ms = 0",
            "`providers[0].first_chunk_timeout_ms`: must be greater than 0",
        ),
        (
            "max_tokens_default = 4096",
            "max_tokens_default = 0",
            "`providers[1].max_tokens_default`: must be greater than 0",
        ),
    ] {
        assert_eq!(error_of(&EXAMPLE.replace(from, to)), want, "{to}");
    }
}

#[test]
fn the_gateway_keys_sit_beside_the_providers_own() {
    let text = EXAMPLE.replace(
        "first_chunk_timeout_ms = 15000",
        "first_chunk_timeout_ms = 15000\ndirect_models = [\"gpt-4o\"]\npass_rate_limit_headers = true\nstream_usage = false",
    );
    let config = Config::from_toml(&text).unwrap();
    let openai = config.provider("openai").unwrap();
    assert!(!openai.provider.stream_usage);
    assert!(config.provider("anthropic").unwrap().provider.stream_usage);
    assert!(
        config
            .explain()
            .contains("prefill instruction, stream usage off"),
        "{}",
        config.explain()
    );
    assert_eq!(openai.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
    assert_eq!(openai.direct_models, ["gpt-4o"]);
    assert!(openai.provider.pass_rate_limit_headers);
    assert!(
        config
            .provider("anthropic")
            .unwrap()
            .direct_models
            .is_empty()
    );

    // A typo is named at its line, and the keys listed include the
    // gateway's own.
    let typo = error_of(&EXAMPLE.replace("api_key_env = \"OPENAI", "api_key_var = \"OPENAI"));
    assert!(
        typo.starts_with("TOML error at line 11, column 1: unknown field `api_key_var`"),
        "{typo}"
    );
    assert!(
        typo.contains("`api_key_env`") && typo.contains("`direct_models`"),
        "{typo}"
    );
    assert!(!typo.contains("OPENAI_API_KEY"), "{typo}");

    // Each key once (TOML itself refuses a repeated key).
    let twice = EXAMPLE.replace(
        "api_key_env = \"OPENAI_API_KEY\"",
        "api_key_env = \"OPENAI_API_KEY\"\ndirect_models = []\ndirect_models = []",
    );
    let message = error_of(&twice);
    assert!(message.starts_with("TOML error at line"), "{message}");
}

#[test]
fn validate_rechecks_a_changed_config() {
    let mut config = Config::from_toml(EXAMPLE).unwrap();
    assert!(config.validate().is_ok());
    config.providers[0].provider.timeout = Duration::ZERO;
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "`providers[0].timeout`: must be greater than 0"
    );
    config.providers[0].provider.timeout = Duration::from_secs(1);
    config.providers[1].provider.name = "openai".to_owned();
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("`providers[1].name`")
    );
}

fn with_shared(keys: &str) -> String {
    EXAMPLE.replace(
        "probe_interval_secs = 10\n",
        &format!("probe_interval_secs = 10\n{keys}\n"),
    )
}

#[test]
fn shared_health_is_read_beside_the_librarys_keys() {
    let config = Config::from_toml(&with_shared(
        "shared = \"redis://127.0.0.1:6379/0\"\nshared_password_env = \"REDIS_PASSWORD\"",
    ))
    .unwrap();
    let shared = config.shared_health.as_ref().unwrap();
    assert_eq!(shared.url, "redis://127.0.0.1:6379/0");
    assert_eq!(shared.password_env.as_deref(), Some("REDIS_PASSWORD"));
    assert_eq!(config.health.consecutive_failures(), 5);
    assert_eq!(
        config
            .shared_password(|var| (var == "REDIS_PASSWORD").then(|| "s3cret".to_owned()))
            .unwrap()
            .as_deref(),
        Some("s3cret")
    );
    let unset = config.shared_password(|_| None).unwrap_err().to_string();
    assert!(unset.contains("`REDIS_PASSWORD` is not set"), "{unset}");
    // Without the key, health stays in this process.
    assert!(Config::from_toml(EXAMPLE).unwrap().shared_health.is_none());
}

#[test]
fn shared_health_settings_are_checked() {
    let error = error_of(&with_shared("shared = \"http://127.0.0.1:6379\""));
    assert!(error.contains("health.shared"), "{error}");
    assert!(error.contains("redis://"), "{error}");
    let error = error_of(&with_shared("shared_password_env = \"REDIS_PASSWORD\""));
    assert!(
        error.contains("`health.shared_password_env`: is set without `health.shared`"),
        "{error}"
    );
    // An unknown key lists the library's keys and the gateway's.
    let error = error_of(&with_shared("sharde = \"redis://x\""));
    assert!(error.contains("unknown field `sharde`"), "{error}");
    assert!(
        error.contains("`probe_interval_secs`, `shared`, `shared_password_env`"),
        "{error}"
    );
}

#[test]
fn a_password_in_the_store_url_is_never_shown() {
    let error = error_of(&with_shared("shared = \"redis://:hunter2@127.0.0.1 6379\""));
    assert!(!error.contains("hunter2"), "{error}");
    let config =
        Config::from_toml(&with_shared("shared = \"redis://:hunter2@127.0.0.1:6379\"")).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn extra_headers_come_from_the_file_and_the_environment() {
    let text = EXAMPLE.replace(
        "api_key_env = \"OPENAI_API_KEY\"\n",
        "api_key_env = \"OPENAI_API_KEY\"\nheaders = { \"OpenAI-Organization\" = \"org-1\" }\nheaders_env = { \"OpenAI-Project\" = \"OPENAI_PROJECT\" }\n",
    );
    let config = Config::from_toml(&text).unwrap();
    let openai = &config.providers[0];
    assert_eq!(
        openai
            .provider
            .headers
            .get("OpenAI-Organization")
            .map(String::as_str),
        Some("org-1")
    );
    assert_eq!(
        openai.headers_env.get("OpenAI-Project").map(String::as_str),
        Some("OPENAI_PROJECT")
    );
    assert!(config.secret_variables().contains(&"OPENAI_PROJECT"));

    let error = config
        .provider_secrets(|var| (var != "OPENAI_PROJECT").then(|| "value".to_owned()))
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "`providers[0].headers_env.OpenAI-Project`: the environment variable `OPENAI_PROJECT` is not set"
    );
    let secrets = config
        .provider_secrets(|var| Some(format!("{var}-secret-value")))
        .unwrap();
    assert_eq!(secrets[0].headers.len(), 1);
    assert_eq!(
        secrets[0].headers[0].1.expose(),
        "OPENAI_PROJECT-secret-value"
    );
    assert!(!format!("{secrets:?}").contains("secret-value"));

    // A header that carries credentials is refused wherever it is set.
    for (table, name) in [("headers", "Authorization"), ("headers_env", "x-api-key")] {
        let bad = EXAMPLE.replace(
            "api_key_env = \"OPENAI_API_KEY\"\n",
            &format!("api_key_env = \"OPENAI_API_KEY\"\n{table} = {{ \"{name}\" = \"X\" }}\n"),
        );
        let message = error_of(&bad);
        assert!(
            message.contains(table) && message.contains(name),
            "{message}"
        );
    }
}

/// The example with its route given settings of its own.
fn with_route_settings(settings: &str) -> String {
    EXAMPLE.replace(
        "fallback_on = [\"provider_failure\"]\n",
        &format!("fallback_on = [\"provider_failure\"]\n{settings}\n"),
    )
}

#[test]
fn a_route_overrides_timeouts_and_retry_settings() {
    let text = with_route_settings(
        "timeout_ms = 5000\nfirst_chunk_timeout_ms = 800\n[routes.retry]\nmax_retries = 0\nmax_delay_ms = 500",
    );
    let config = Config::from_toml(&text).unwrap();
    let route = &config.routes[0];
    let openai = &config.providers[0].provider;
    assert_eq!(route.attempt_timeout(openai), Duration::from_secs(5));
    assert_eq!(
        route.first_chunk_timeout(openai),
        Duration::from_millis(800)
    );
    let retry = route.effective_retry(config.retry);
    assert_eq!(retry.get_max_retries(), 0);
    assert_eq!(retry.get_max_delay(), Duration::from_millis(500));
    assert_eq!(
        retry.get_max_retry_after(),
        Duration::from_secs(3),
        "a key the route leaves out keeps the global value"
    );

    // Without settings of its own, a route takes the provider's and the
    // global ones.
    let plain = Config::from_toml(EXAMPLE).unwrap();
    let route = &plain.routes[0];
    assert_eq!(route.attempt_timeout(openai), Duration::from_secs(30));
    assert_eq!(route.effective_retry(plain.retry), plain.retry);
}

#[test]
fn route_settings_out_of_range_name_their_key() {
    let error = error_of(&with_route_settings("timeout_ms = 0"));
    assert!(error.contains("routes[0].timeout_ms"), "{error}");
    let error = error_of(&with_route_settings("first_chunk_timeout_ms = 90000000000"));
    assert!(
        error.contains("routes[0].first_chunk_timeout_ms"),
        "{error}"
    );
    // Checked against the global values it leaves in place: the global
    // `max_delay_ms` is 2000.
    let error = error_of(&with_route_settings("[routes.retry]\nbase_delay_ms = 3000"));
    assert!(error.contains("routes[0].retry.base_delay_ms"), "{error}");
    let error = error_of(&with_route_settings("[routes.retry]\nbudget_ratio = 0.5"));
    assert!(error.contains("budget_ratio"), "{error}");
}

#[test]
fn explain_shows_each_routes_effective_settings_and_their_source() {
    let text = with_route_settings("timeout_ms = 5000\n[routes.retry]\nmax_retries = 3");
    let explained = Config::from_toml(&text).unwrap().explain();
    assert!(explained.contains("route `chat`"), "{explained}");
    assert!(
        explained.contains("fallback_on: provider_failure"),
        "{explained}"
    );
    assert!(
        explained.contains("retry: max_retries 3, backoff 100 ms to 2000 ms, Retry-After honoured up to 3000 ms (route)"),
        "{explained}"
    );
    assert!(
        explained.contains(
            "1. openai/gpt-4o-mini: timeout 5000 ms (route), first chunk 15000 ms (provider)"
        ),
        "{explained}"
    );
    assert!(
        explained.contains("2. anthropic/claude-3-5-haiku-latest: timeout 5000 ms (route)"),
        "{explained}"
    );
    let plain = Config::from_toml(EXAMPLE).unwrap().explain();
    assert!(
        plain.contains(
            "max_retries 1, backoff 100 ms to 2000 ms, Retry-After honoured up to 3000 ms ([retry])"
        ),
        "{plain}"
    );
    assert!(!plain.contains("secret-token"), "{plain}");
    assert!(plain.contains("prefill native, stream usage on"), "{plain}");
}

/// `EXAMPLE` with the route's first target a balanced tier `tier`.
fn with_tier(tier: &str) -> String {
    EXAMPLE.replace(
        "{ provider = \"openai\", model = \"gpt-4o-mini\" },",
        &format!("{{ balance = [{tier}] }},"),
    )
}

#[test]
fn a_balanced_tier_parses_with_default_weights() {
    let config = Config::from_toml(&with_tier(
        "{ provider = \"openai\", model = \"gpt-4o\", weight = 2 }, { provider = \"anthropic\", model = \"claude\" }",
    ))
    .unwrap();
    let targets = &config.routes[0].targets;
    assert!(targets[0].is_balanced() && !targets[1].is_balanced());
    assert_eq!(
        targets[0].deployments().collect::<Vec<_>>(),
        [("openai", "gpt-4o", 2), ("anthropic", "claude", 1)]
    );
    assert_eq!(
        targets[0].to_string(),
        "balance(openai/gpt-4o×2, anthropic/claude×1)"
    );
    assert_eq!(targets[1].to_string(), "anthropic/claude-3-5-haiku-latest");
    assert_eq!(
        targets[1].deployments().collect::<Vec<_>>(),
        [("anthropic", "claude-3-5-haiku-latest", 1)]
    );

    // One deployment is a tier too.
    let config =
        Config::from_toml(&with_tier("{ provider = \"openai\", model = \"gpt-4o\" }")).unwrap();
    assert_eq!(
        config.routes[0].targets[0].to_string(),
        "balance(openai/gpt-4o×1)"
    );
}

#[test]
fn a_bad_balanced_tier_is_an_error_naming_the_key() {
    let deployment = |provider: &str, extra: &str| {
        format!("{{ provider = \"{provider}\", model = \"gpt-4o\"{extra} }}")
    };
    let cases = [
        (
            with_tier(&format!(
                "{}, {}",
                deployment("openai", ""),
                deployment("anthropic", ", weight = 0")
            )),
            "`routes[0].targets[0].balance[1].weight`: (0) must be between 1 and 1000",
        ),
        (
            with_tier(&deployment("openai", ", weight = 1001")),
            "`routes[0].targets[0].balance[0].weight`: (1001) must be between 1 and 1000",
        ),
        (
            with_tier(""),
            "`routes[0].targets[0].balance`: at least one deployment is required",
        ),
        (
            with_tier(&format!(
                "{}, {}",
                deployment("anthropic", ""),
                deployment("azure", "")
            )),
            "`routes[0].targets[0].balance[1].provider`: no provider is named `azure`",
        ),
        (
            with_tier(&format!(
                "{}, {}",
                deployment("openai", ", weight = 3"),
                deployment("openai", "")
            )),
            "`routes[0].targets[0].balance[1].provider`: `openai` is already a deployment of this tier",
        ),
        (
            EXAMPLE.replace(
                "{ provider = \"openai\", model = \"gpt-4o-mini\" },",
                &format!(
                    "{{ provider = \"openai\", model = \"gpt-4o-mini\", balance = [{}] }},",
                    deployment("openai", "")
                ),
            ),
            "`routes[0].targets[0]`: holds either `provider` and `model` (one target) or `balance` (a tier), not both",
        ),
        (
            EXAMPLE.replace(
                "{ provider = \"openai\", model = \"gpt-4o-mini\" },",
                "{ model = \"gpt-4o-mini\" },",
            ),
            "`routes[0].targets[0].provider`: is required (or `balance`, for a balanced tier)",
        ),
        (
            EXAMPLE.replace(
                "{ provider = \"openai\", model = \"gpt-4o-mini\" },",
                "{ provider = \"openai\" },",
            ),
            "`routes[0].targets[0].model`: is required",
        ),
        (
            with_tier(&deployment("openai", "").replace("gpt-4o", "")),
            "`routes[0].targets[0].balance[0].model`: must be non-empty",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(error_of(&text), want);
    }

    // Unknown keys stay errors, in a tier and beside a single target.
    let message = error_of(&with_tier(&deployment("openai", ", wieght = 2")));
    assert!(message.contains("wieght"), "{message}");
    let message = error_of(&EXAMPLE.replace(
        "{ provider = \"openai\", model = \"gpt-4o-mini\" },",
        "{ provider = \"openai\", model = \"gpt-4o-mini\", weight = 2 },",
    ));
    assert!(message.contains("weight"), "{message}");
}

#[test]
fn operation_gaps_name_the_deployments_of_a_tier() {
    let config = Config::from_toml(&with_tier(
        "{ provider = \"openai\", model = \"gpt-4o\" }, { provider = \"anthropic\", model = \"claude\" }",
    ))
    .unwrap();
    let gaps: Vec<String> = config
        .operation_gaps()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        gaps,
        ["route `chat` skips anthropic/claude, anthropic/claude-3-5-haiku-latest for embeddings"]
    );
}

#[test]
fn explain_lists_each_deployment_of_a_tier() {
    let text = with_tier(
        "{ provider = \"openai\", model = \"gpt-4o\", weight = 2 }, { provider = \"anthropic\", model = \"claude\" }",
    )
    .replace(
        "fallback_on = [\"provider_failure\"]\n",
        "fallback_on = [\"provider_failure\"]\ntimeout_ms = 7000\n",
    );
    let explained = Config::from_toml(&text).unwrap().explain();
    assert!(
        explained.contains("  1. balance(openai/gpt-4o×2, anthropic/claude×1)\n"),
        "{explained}"
    );
    assert!(
        explained.contains(
            "     openai/gpt-4o ×2: timeout 7000 ms (route), first chunk 15000 ms (provider)"
        ),
        "{explained}"
    );
    assert!(
        explained.contains("  2. anthropic/claude-3-5-haiku-latest: timeout 7000 ms (route)"),
        "{explained}"
    );
}

/// The example with `[auth]` holding `keys` (and `extra` after them).
fn with_auth(keys: &str, extra: &str) -> String {
    format!("{EXAMPLE}\n[auth]\nkeys = [\n{keys}\n]\n{extra}\n")
}

const SEARCH_KEY: &str =
    r#"{ name = "search", key_env = "SEARCH_KEY", routes = ["chat"], rpm = 600 }"#;

#[test]
fn auth_is_off_unless_present() {
    let config = Config::from_toml(EXAMPLE).unwrap();
    assert!(config.auth.is_none());
    assert!(config.auth_secrets(|_| None).unwrap().is_none());
}

#[test]
fn auth_keys_come_from_the_environment_or_as_digests() {
    let hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    let text = with_auth(
        &format!(
            r#"{SEARCH_KEY},
  {{ name = "batch", key_sha256 = "{}", routes = ["*"] }},"#,
            hello.to_ascii_uppercase()
        ),
        "metrics_key_env = \"METRICS_KEY\"\nadmin_key_env = \"ADMIN_KEY\"",
    );
    let config = Config::from_toml(&text).unwrap();
    let auth = config.auth.as_ref().unwrap();
    assert_eq!(auth.keys[0].rpm, Some(600));
    assert_eq!(auth.keys[1].rpm, None);
    assert!(!format!("{config:?}").contains(&hello[..16]));
    assert_eq!(
        config.secret_variables(),
        [
            "ADMIN_KEY",
            "ANTHROPIC_API_KEY",
            "METRICS_KEY",
            "OPENAI_API_KEY",
            "SEARCH_KEY"
        ]
    );

    let error = config
        .auth_secrets(|var| (var != "METRICS_KEY").then(|| format!("value-of-{var}")))
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "`auth.metrics_key_env`: the environment variable `METRICS_KEY` is not set"
    );
    let error = config
        .auth_secrets(|var| (var != "SEARCH_KEY").then(|| format!("value-of-{var}")))
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "`auth.keys[0].key_env`: the environment variable `SEARCH_KEY` is not set"
    );

    let secrets = config
        .auth_secrets(|var| Some(format!("sk-value-of-{var}")))
        .unwrap()
        .unwrap();
    assert_eq!(secrets.keys.len(), 2);
    assert!(secrets.keys[0].same_as(&crate::auth::KeyDigest::of(b"sk-value-of-SEARCH_KEY")));
    assert!(secrets.keys[1].same_as(&crate::auth::KeyDigest::of(b"hello")));
    assert!(secrets.metrics.is_some() && secrets.admin.is_some());
    assert!(!format!("{secrets:?}").contains("sk-value-of"));

    // The same key twice would make one name the other's.
    let error = config
        .auth_secrets(|var| {
            Some(if var == "SEARCH_KEY" {
                "hello".to_owned()
            } else {
                format!("sk-{var}")
            })
        })
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "`auth.keys[1].key_sha256`: holds the same key as `auth.keys[0]`"
    );
    assert!(!error.contains("hello"));
}

#[test]
fn auth_keys_are_checked_naming_the_key() {
    let digest = "a".repeat(64);
    let cases = [
        (String::new(), "`auth.keys`: at least one key is required"),
        (
            r#"{ name = "", key_env = "K", routes = ["chat"] }"#.to_owned(),
            "`auth.keys[0].name`: must be non-empty",
        ),
        (
            r#"{ name = "my key", key_env = "K", routes = ["chat"] }"#.to_owned(),
            "`auth.keys[0].name`: may hold only",
        ),
        (
            format!(r#"{SEARCH_KEY}, {{ name = "search", key_env = "K", routes = ["chat"] }}"#),
            "`auth.keys[1].name`: `search` is used by another key",
        ),
        (
            r#"{ name = "k", routes = ["chat"] }"#.to_owned(),
            "`auth.keys[0]`: exactly one of `key_env` and `key_sha256` is required",
        ),
        (
            format!(
                r#"{{ name = "k", key_env = "K", key_sha256 = "{digest}", routes = ["chat"] }}"#
            ),
            "`auth.keys[0]`: exactly one of `key_env` and `key_sha256` is required",
        ),
        (
            r#"{ name = "k", key_sha256 = "sk-pasted-secret-key", routes = ["chat"] }"#.to_owned(),
            "`auth.keys[0].key_sha256`: must be 64 hexadecimal characters",
        ),
        (
            format!(
                r#"{{ name = "a", key_sha256 = "{digest}", routes = ["chat"] }}, {{ name = "b", key_sha256 = "{}", routes = ["chat"] }}"#,
                digest.to_ascii_uppercase()
            ),
            "`auth.keys[1].key_sha256`: is the digest of another key's key",
        ),
        (
            r#"{ name = "k", key_env = "K", routes = [] }"#.to_owned(),
            "`auth.keys[0].routes`: at least one route",
        ),
        (
            r#"{ name = "k", key_env = "K", routes = ["chat", "embed"] }"#.to_owned(),
            "`auth.keys[0].routes[1]`: no route is named `embed`",
        ),
        (
            r#"{ name = "k", key_env = "K", routes = ["nobody/x"] }"#.to_owned(),
            "`auth.keys[0].routes[0]`: no provider is named `nobody`",
        ),
        (
            r#"{ name = "k", key_env = "K", routes = ["openai/*"] }"#.to_owned(),
            "`auth.keys[0].routes[0]`: `openai` cannot be addressed directly",
        ),
        (
            r#"{ name = "k", key_env = "K", routes = ["openai/gpt-4o"] }"#.to_owned(),
            "`auth.keys[0].routes[0]`: `gpt-4o` is not in the `direct_models` of `openai`",
        ),
        (
            r#"{ name = "k", key_env = "K", routes = ["chat"], rpm = 0 }"#.to_owned(),
            "`auth.keys[0].rpm`: must be greater than 0",
        ),
    ];
    for (keys, want) in cases {
        let message = error_of(&with_auth(&keys, ""));
        assert!(message.starts_with(want), "{keys}: {message}");
        assert!(!message.contains("sk-pasted-secret-key"), "{message}");
    }
    let message = error_of(&with_auth(SEARCH_KEY, "metrics_key_env = \"\""));
    assert_eq!(message, "`auth.metrics_key_env`: must be non-empty");
    let message = error_of(&with_auth(SEARCH_KEY, "admin_keys_env = \"A\""));
    assert!(message.contains("admin_keys_env"), "{message}");
}

#[test]
fn auth_routes_may_name_models_addressed_directly() {
    let direct = EXAMPLE.replace(
        "api_key_env = \"OPENAI_API_KEY\"",
        "api_key_env = \"OPENAI_API_KEY\"\ndirect_models = [\"gpt-4o\"]",
    );
    let text = format!(
        "{direct}\n[auth]\nkeys = [{{ name = \"k\", key_env = \"K\", routes = [\"openai/gpt-4o\", \"openai/*\", \"chat\"] }}]\n"
    );
    Config::from_toml(&text).unwrap();

    let open = EXAMPLE.replace(
        "request_timeout_ms = 120000",
        "request_timeout_ms = 120000\ndirect_addressing = true",
    );
    let text = format!(
        "{open}\n[auth]\nkeys = [{{ name = \"k\", key_env = \"K\", routes = [\"anthropic/*\"] }}]\n"
    );
    let mut config = Config::from_toml(&text).unwrap();
    config.server.direct_addressing = false;
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("`auth.keys[0].routes[0]`: `anthropic` cannot be addressed directly")
    );
}

#[test]
fn resume_hedge_and_prefill_are_read_and_checked() {
    let route = |extra: &str| {
        EXAMPLE.replace(
            "fallback_on = [\"provider_failure\"]",
            &format!("fallback_on = [\"provider_failure\"]\n{extra}"),
        )
    };
    let config = Config::from_toml(&route(
        "resume = true\nmax_resume_bytes = 4096\nhedge_after_ms = 250\nhedge_budget_ratio = 0.5",
    ))
    .unwrap();
    let chat = &config.routes[0];
    assert!(chat.resume);
    assert_eq!(chat.effective_max_resume_bytes(), 4096);
    assert_eq!(
        chat.effective_hedge(),
        Some((std::time::Duration::from_millis(250), 1, 0.5))
    );
    let explained = config.explain();
    assert!(
        explained.contains("resume: on, up to 4096 bytes sent (route)"),
        "{explained}"
    );
    assert!(
        explained.contains("hedge: after 250 ms, at most 1 per request, budget ratio 0.5"),
        "{explained}"
    );
    assert!(
        explained.contains("anthropic/claude-3-5-haiku-latest: ")
            && explained.contains("prefill native"),
        "{explained}"
    );
    assert!(explained.contains("prefill instruction"), "{explained}");

    // Off by default.
    let plain = Config::from_toml(EXAMPLE).unwrap();
    assert!(!plain.routes[0].resume);
    assert_eq!(plain.routes[0].effective_hedge(), None);

    let vllm = EXAMPLE.replace(
        "first_chunk_timeout_ms = 15000",
        "first_chunk_timeout_ms = 15000\nprefill = \"continue_final_message\"",
    );
    let config = Config::from_toml(&vllm).unwrap();
    assert_eq!(
        config.providers[0].effective_prefill(),
        understudy_fallback::resume::Prefill::ContinueFinalMessage
    );

    for (text, want) in [
        (
            route("max_hedges = 0"),
            "`routes[0].max_hedges`: must be between 1 and 4",
        ),
        (
            route("hedge_budget_ratio = 1.5"),
            "`routes[0].hedge_budget_ratio`: must be between 0 and 1",
        ),
        (
            EXAMPLE.replace(
                "first_chunk_timeout_ms = 15000",
                "first_chunk_timeout_ms = 15000\nprefill = \"sometimes\"",
            ),
            "`providers[0].prefill`: must be one of `native`, `continue_final_message`, `prefix`, `instruction`",
        ),
    ] {
        assert_eq!(error_of(&text), want);
    }
}

#[test]
fn server_workers_default_to_the_cores_and_are_bounded() {
    let config = Config::from_toml(EXAMPLE).unwrap();
    assert_eq!(config.server.workers, None);
    assert!(config.server.worker_count() >= 1);
    let with = |workers: &str| {
        Config::from_toml(&EXAMPLE.replacen(
            "[server]\n",
            &format!("[server]\nworkers = {workers}\n"),
            1,
        ))
    };
    assert_eq!(with("3").unwrap().server.worker_count(), 3);
    for bad in ["0", "1025"] {
        let message = with(bad).unwrap_err().to_string();
        assert!(message.starts_with("`server.workers`"), "{bad}: {message}");
    }
}

#[test]
fn upstream_pools_keep_idle_connections_90_s_without_a_limit_by_default() {
    let config = Config::from_toml(EXAMPLE).unwrap();
    assert_eq!(config.server.upstream_idle_timeout_ms, 90_000);
    assert_eq!(config.server.upstream_max_idle_per_host, None);
    let with = |line: &str| {
        Config::from_toml(&EXAMPLE.replacen("[server]\n", &format!("[server]\n{line}\n"), 1))
    };
    let config = with("upstream_idle_timeout_ms = 5000\nupstream_max_idle_per_host = 0").unwrap();
    assert_eq!(config.server.upstream_idle_timeout_ms, 5000);
    assert_eq!(config.server.upstream_max_idle_per_host, Some(0));
    for bad in ["0", "86400001"] {
        let message = with(&format!("upstream_idle_timeout_ms = {bad}"))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("`server.upstream_idle_timeout_ms`"),
            "{bad}: {message}"
        );
    }
}

#[test]
fn telemetry_defaults_to_no_export() {
    let config = Config::from_toml(EXAMPLE).unwrap();
    assert_eq!(config.telemetry, super::TelemetryConfig::default());
    assert!(config.telemetry.otlp_endpoint.is_none());
    assert_eq!(config.telemetry.service_name, "understudy");
    assert!((config.telemetry.sample_ratio - 1.0).abs() < f64::EPSILON);
    assert_eq!(config.telemetry.max_queue_size, 2048);
}

#[test]
fn telemetry_values_are_checked_by_key() {
    let with = |section: &str| format!("{EXAMPLE}\n[telemetry]\n{section}\n");
    let config = Config::from_toml(&with(
        "otlp_endpoint = \"http://127.0.0.1:4318\"\nservice_name = \"edge\"\nsample_ratio = 0.25\nmax_queue_size = 16\nexport_timeout_ms = 2000",
    ))
    .unwrap();
    assert_eq!(config.telemetry.service_name, "edge");
    assert_eq!(config.telemetry.max_queue_size, 16);
    for (section, key) in [
        (
            "otlp_endpoint = \"ftp://collector\"",
            "telemetry.otlp_endpoint",
        ),
        ("otlp_endpoint = \"not a url\"", "telemetry.otlp_endpoint"),
        ("sample_ratio = 1.5", "telemetry.sample_ratio"),
        ("sample_ratio = -0.1", "telemetry.sample_ratio"),
        ("sample_ratio = nan", "telemetry.sample_ratio"),
        ("service_name = \"\"", "telemetry.service_name"),
        ("max_queue_size = 0", "telemetry.max_queue_size"),
        ("export_timeout_ms = 0", "telemetry.export_timeout_ms"),
        ("otlp_endpointt = \"http://x\"", "otlp_endpointt"),
    ] {
        let message = error_of(&with(section));
        assert!(message.contains(key), "{section}: {message}");
    }
    // An endpoint is never echoed, nor printed by Debug.
    let message = error_of(&with("otlp_endpoint = \"collector-secret-token\""));
    assert!(!message.contains("secret"), "{message}");
    let config = Config::from_toml(&with(
        "otlp_endpoint = \"https://u:secret-pass@collector:4318/v1/traces?key=secret-key\"",
    ))
    .unwrap();
    let debug = format!("{:?}", config.telemetry);
    assert!(!debug.contains("secret"), "{debug}");
    assert!(
        debug.contains("https://collector:4318/v1/traces"),
        "{debug}"
    );
}

#[cfg(feature = "otlp")]
#[test]
fn the_base_endpoint_gets_the_traces_path() {
    let with = |endpoint: &str| {
        Config::from_toml(&format!(
            "{EXAMPLE}\n[telemetry]\notlp_endpoint = \"{endpoint}\"\n"
        ))
        .unwrap()
        .telemetry
        .otlp()
        .unwrap()
        .traces_url()
    };
    assert_eq!(
        with("http://127.0.0.1:4318"),
        "http://127.0.0.1:4318/v1/traces"
    );
    assert_eq!(
        with("http://127.0.0.1:4318/"),
        "http://127.0.0.1:4318/v1/traces"
    );
    assert_eq!(
        with("https://collector/v1/traces"),
        "https://collector/v1/traces"
    );
}
