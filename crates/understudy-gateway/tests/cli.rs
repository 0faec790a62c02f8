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
