//! The `understudy` binary's `--check`.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn write(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("understudy-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn check(path: &PathBuf) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .arg("--config")
        .arg(path)
        .arg("--check")
        .env_remove("UNDERSTUDY_TEST_UNSET_KEY")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

const VALID: &str = r#"
[[providers]]
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:11434/v1"
api_key_env = "UNDERSTUDY_TEST_UNSET_KEY"

[[routes]]
model = "chat"
targets = [{ provider = "local", model = "llama3" }]
"#;

#[test]
fn a_valid_file_passes_and_unset_keys_are_noted() {
    let path = write("valid", VALID);
    let (ok, stdout, _) = check(&path);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("valid"));
    assert!(stdout.contains("UNDERSTUDY_TEST_UNSET_KEY"));
}

#[test]
fn a_typo_fails_naming_the_key() {
    let path = write("typo", &VALID.replace("base_url", "base_ulr"));
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    assert!(stderr.contains("base_ulr"), "{stderr}");
}

#[test]
fn a_route_to_a_missing_provider_fails_naming_it() {
    let path = write(
        "missing",
        &VALID.replace(r#"provider = "local""#, r#"provider = "remote""#),
    );
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    assert!(stderr.contains("remote"), "{stderr}");
    assert!(stderr.contains("routes[0]"), "{stderr}");
}

#[test]
fn a_pasted_secret_is_never_echoed() {
    // A key pasted under a wrong name, and one pasted as a wrong value.
    for (name, text) in [
        (
            "pasted-name",
            VALID.replace(
                "api_key_env = \"UNDERSTUDY_TEST_UNSET_KEY\"",
                "api_key = \"sk-live-0123456789abcdef\"",
            ),
        ),
        (
            "pasted-value",
            VALID.replace(
                "kind = \"openai\"",
                "kind = \"openai\"\ntimeout_ms = \"sk-live-0123456789abcdef\"",
            ),
        ),
        (
            "pasted-url",
            VALID.replace(
                "http://127.0.0.1:11434/v1",
                "127.0.0.1:11434/v1?key=sk-live-0123456789abcdef",
            ),
        ),
    ] {
        let path = write(name, &text);
        let (ok, stdout, stderr) = check(&path);
        assert!(!ok, "{name}: {stdout}");
        assert!(!stderr.contains("sk-live"), "{name}: {stderr}");
        assert!(!stdout.contains("sk-live"), "{name}: {stdout}");
        assert!(
            stderr.contains("line") || stderr.contains("providers[0]"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn check_refuses_what_start_would_refuse() {
    for (name, text, want) in [
        (
            "query",
            VALID.replace("11434/v1", "11434/v1?api-version=1"),
            "providers[0].base_url",
        ),
        (
            "huge-ejection",
            format!(
                "{VALID}\n[health]\nbase_ejection_secs = 9223372036854775807\nmax_ejection_secs = 9223372036854775807\n"
            ),
            "health.base_ejection_secs",
        ),
        (
            "huge-timeout",
            VALID.replace(
                "kind = \"openai\"",
                "kind = \"openai\"\ntimeout_ms = 18446744073709551615",
            ),
            "providers[0].timeout_ms",
        ),
    ] {
        let path = write(name, &text);
        let (ok, stdout, stderr) = check(&path);
        assert!(!ok, "{name}: {stdout}");
        assert!(stderr.contains(want), "{name}: {stderr}");
    }
}

#[test]
fn check_names_the_targets_an_operation_skips() {
    let path = write(
        "gaps",
        &format!(
            "{VALID}\n[[providers]]\nname = \"claude\"\nkind = \"anthropic\"\nbase_url = \"https://api.anthropic.com/v1\"\n\n[[routes]]\nmodel = \"mixed\"\ntargets = [{{ provider = \"claude\", model = \"claude-3-5-haiku-latest\" }}, {{ provider = \"local\", model = \"nomic-embed\" }}]\n\n[[routes]]\nmodel = \"only-claude\"\ntargets = [{{ provider = \"claude\", model = \"claude-3-5-haiku-latest\" }}]\n"
        ),
    );
    let (ok, stdout, stderr) = check(&path);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("note: route `mixed` skips claude/claude-3-5-haiku-latest for embeddings"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "note: route `only-claude` cannot serve embeddings: none of its targets does"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("route `chat`"), "{stdout}");
}

#[test]
fn explain_prints_each_routes_effective_settings() {
    let path = write(
        "explain",
        &format!("{VALID}timeout_ms = 4000\n[routes.retry]\nmax_retries = 0\n"),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .arg("--config")
        .arg(&path)
        .args(["--check", "--explain"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("route `chat`"), "{stdout}");
    assert!(
        stdout
            .contains("1. local/llama3: timeout 4000 ms (route), first chunk 15000 ms (provider)"),
        "{stdout}"
    );
    assert!(stdout.contains("max_retries 0"), "{stdout}");

    // Without `--check` it is refused.
    let refused = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .arg("--config")
        .arg(&path)
        .arg("--explain")
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[test]
fn check_shows_each_routes_tiers() {
    let path = write(
        "tiers",
        &format!(
            "{VALID}\n[[providers]]\nname = \"west\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:11435/v1\"\n\n[[routes]]\nmodel = \"balanced\"\ntargets = [{{ balance = [{{ provider = \"local\", model = \"gpt-4o\", weight = 2 }}, {{ provider = \"west\", model = \"gpt-4o\" }}] }}, {{ provider = \"local\", model = \"llama3\" }}]\n"
        ),
    );
    let (ok, stdout, stderr) = check(&path);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("model `chat`: local/llama3\n"), "{stdout}");
    assert!(
        stdout.contains(
            "model `balanced`: balance(local/gpt-4o×2, west/gpt-4o×1), then local/llama3\n"
        ),
        "{stdout}"
    );
}

#[test]
fn check_names_unset_caller_key_variables() {
    let text = format!(
        "{VALID}\n[auth]\nkeys = [\n  {{ name = \"a\", key_env = \"UNDERSTUDY_TEST_UNSET_A\", routes = [\"chat\"] }},\n  {{ name = \"b\", key_env = \"UNDERSTUDY_TEST_UNSET_B\", routes = [\"*\"] }},\n]\nmetrics_key_env = \"UNDERSTUDY_TEST_UNSET_METRICS\"\n"
    );
    let path = write("auth", &text);
    let (ok, stdout, stderr) = check(&path);
    assert!(ok, "{stdout}{stderr}");
    for var in [
        "UNDERSTUDY_TEST_UNSET_A",
        "UNDERSTUDY_TEST_UNSET_B",
        "UNDERSTUDY_TEST_UNSET_METRICS",
    ] {
        assert!(stdout.contains(var), "{var}: {stdout}");
    }

    let path = write("auth-bad", &text.replace("\"*\"", "\"embed\""));
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    assert!(stderr.contains("auth.keys[1].routes[0]"), "{stderr}");
}

#[test]
fn check_shows_the_trace_export_without_credentials() {
    let (ok, stdout, _) = check(&write("no-telemetry", VALID));
    assert!(ok, "{stdout}");
    assert!(stdout.contains("telemetry: no trace export"), "{stdout}");

    let path = write(
        "telemetry",
        &format!(
            "{VALID}\n[telemetry]\notlp_endpoint = \"https://user:otlp-secret@collector.example:4318/?token=otlp-secret\"\nservice_name = \"edge\"\nsample_ratio = 0.5\n"
        ),
    );
    let (ok, stdout, stderr) = check(&path);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "telemetry: OTLP/HTTP traces to https://collector.example:4318/ as service `edge`, sample ratio 0.5"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("otlp-secret"), "{stdout}");

    let refused = write(
        "bad-telemetry",
        &format!("{VALID}\n[telemetry]\notlp_endpoint = \"collector:4318\"\n"),
    );
    let (ok, _, stderr) = check(&refused);
    assert!(!ok);
    assert!(stderr.contains("`telemetry.otlp_endpoint`"), "{stderr}");
}
