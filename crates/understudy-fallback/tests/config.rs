//! `FallbackRules` and `FallbackOn` deserialised from a file.
#![cfg(feature = "serde")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use understudy_fallback::{FallbackOn, FallbackRules};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    #[serde(default)]
    fallback_on: FallbackRules,
}

fn parse(text: &str) -> Result<FallbackRules, String> {
    toml::from_str::<Route>(text)
        .map(|route| route.fallback_on)
        .map_err(|e| e.message().to_owned())
}

#[test]
fn the_default_fails_over_on_provider_failures() {
    assert_eq!(parse("").unwrap(), FallbackRules::default());
    assert_eq!(
        parse(r#"fallback_on = ["provider_failure"]"#).unwrap(),
        FallbackRules::default()
    );
}

#[test]
fn the_list_names_exactly_the_kinds() {
    assert_eq!(
        parse(r#"fallback_on = ["context_length", "content_filter"]"#).unwrap(),
        FallbackRules::only([FallbackOn::ContextLength, FallbackOn::ContentFilter])
    );
    assert_eq!(parse("fallback_on = []").unwrap(), FallbackRules::only([]));
}

#[test]
fn an_unknown_kind_is_an_error_naming_it() {
    let error = parse(r#"fallback_on = ["timeouts"]"#).unwrap_err();
    assert!(error.contains("unknown variant `timeouts`"), "{error}");
    assert!(error.contains("`provider_failure`"), "{error}");
    // A string where the list belongs is refused too.
    assert!(parse(r#"fallback_on = "provider_failure""#).is_err());
}

#[test]
fn kinds_deserialise_from_json_too() {
    let kinds: Vec<FallbackOn> =
        serde_json::from_str(r#"["provider_failure", "content_filter"]"#).unwrap();
    assert_eq!(
        kinds,
        [FallbackOn::ProviderFailure, FallbackOn::ContentFilter]
    );
}
