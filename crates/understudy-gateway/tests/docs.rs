//! The configuration the documentation shows is configuration the gateway
//! reads: the full example and the balanced tier of `docs/fallback.md`,
//! and every TOML block of `docs/providers.md`, parse and build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use understudy_gateway::config::Config;
use understudy_gateway::gateway::Gateway;

/// The TOML code blocks of a document.
fn toml_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn read(name: &str) -> String {
    let path = format!("{}/../../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Builds the gateway `text` describes, every variable it reads set (in a
/// runtime: probes are spawned).
fn builds(text: &str) {
    let config = Config::from_toml(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Gateway::new(&config, |var| Some(format!("{var}-value")))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
}

#[tokio::test]
async fn the_documented_configuration_builds() {
    let blocks = toml_blocks(&read("fallback.md"));
    let full = blocks
        .iter()
        .find(|b| b.contains("[server]"))
        .expect("a full example");
    builds(full);
}

#[tokio::test]
async fn the_documented_balanced_tier_builds() {
    let blocks = toml_blocks(&read("fallback.md"));
    let tier = blocks
        .iter()
        .find(|b| b.contains("balance = [") && !b.contains("[server]"))
        .expect("a balanced tier example");
    builds(tier);
    let config = Config::from_toml(tier).unwrap();
    assert_eq!(
        config.routes[0].targets[0].to_string(),
        "balance(east/gpt-4o×2, west/gpt-4o×1)"
    );
}

#[tokio::test]
async fn every_documented_provider_builds() {
    let blocks = toml_blocks(&read("providers.md"));
    assert!(blocks.len() >= 5, "{blocks:?}");
    for block in blocks {
        let name = block
            .lines()
            .find_map(|line| line.strip_prefix("name = \""))
            .and_then(|rest| rest.split('"').next())
            .expect("a provider name");
        let text = format!(
            "{block}\n[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"{name}\", model = \"m\" }}]\n"
        );
        builds(&text);
    }
}

#[tokio::test]
async fn the_documented_caller_keys_build_with_the_full_example() {
    let blocks = toml_blocks(&read("fallback.md"));
    let full = blocks.iter().find(|b| b.contains("[server]")).unwrap();
    let auth = blocks
        .iter()
        .find(|b| b.starts_with("[auth]"))
        .expect("a caller keys example");
    builds(&format!("{full}\n{auth}"));
}

#[tokio::test]
async fn the_documented_resume_and_hedge_routes_build_with_the_full_example() {
    let blocks = toml_blocks(&read("fallback.md"));
    let full = blocks.iter().find(|b| b.contains("[server]")).unwrap();
    for key in ["resume = true", "hedge_after_ms ="] {
        let route = blocks
            .iter()
            .find(|b| b.contains(key) && !b.contains("[server]"))
            .unwrap_or_else(|| panic!("an example with `{key}`"));
        builds(&format!("{full}\n{route}"));
    }
}

#[tokio::test]
async fn the_complete_shared_gateway_example_builds() {
    let blocks = toml_blocks(&read("fallback.md"));
    let complete = blocks
        .iter()
        .find(|b| b.contains("[server]") && b.contains("[auth]") && b.contains("balance = ["))
        .expect("the complete example");
    builds(complete);
    let config = Config::from_toml(complete).unwrap();
    assert!(config.routes.iter().any(|r| r.timeout_ms.is_some()));
    assert!(config.auth.is_some());
}
