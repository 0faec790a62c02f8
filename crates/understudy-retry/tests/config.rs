//! `RetryConfig` deserialised from a file's keys.
#![cfg(feature = "serde")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use understudy_retry::RetryConfig;

fn parse(text: &str) -> Result<RetryConfig, String> {
    toml::from_str(text).map_err(|e| e.message().to_owned())
}

#[test]
fn an_empty_table_is_the_default() {
    assert_eq!(parse("").unwrap(), RetryConfig::default());
}

#[test]
fn every_key_sets_its_setting() {
    let config = parse(
        "max_retries = 3\n\
         base_delay_ms = 50\n\
         max_delay_ms = 500\n\
         max_retry_after_ms = 1000\n\
         budget_ratio = 0.5\n\
         budget_min_per_sec = 4\n",
    )
    .unwrap();
    let built = RetryConfig::default()
        .max_retries(3)
        .base_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(500))
        .max_retry_after(Duration::from_secs(1))
        .budget_ratio(0.5)
        .budget_min_per_sec(4);
    assert_eq!(config, built);
}

#[test]
fn an_unknown_key_is_an_error_naming_it() {
    let error = parse("max_retry = 2").unwrap_err();
    assert!(error.contains("unknown field `max_retry`"), "{error}");
    // The error lists the keys there are.
    assert!(error.contains("`max_retries`"), "{error}");
}

#[test]
fn a_duration_over_a_day_is_refused_naming_the_file_key() {
    let error = parse("max_retry_after_ms = 86400001").unwrap_err();
    assert_eq!(
        error,
        "max_retry_after_ms (86400.001s) must be at most 86400s (one day)"
    );
    // A day is allowed.
    let day = parse("max_delay_ms = 86400000\nmax_retry_after_ms = 86400000").unwrap();
    assert!(day.validate().is_ok());
}

#[test]
fn out_of_range_values_are_refused() {
    assert_eq!(
        parse("max_retries = 11").unwrap_err(),
        "max_retries (11) must be at most 10"
    );
    assert_eq!(
        parse("budget_ratio = -1.0").unwrap_err(),
        "budget_ratio (-1) must be in the range [0.0, 1.0]"
    );
    assert_eq!(
        parse("base_delay_ms = 3000").unwrap_err(),
        "base_delay_ms (3s) must not exceed max_delay_ms (2s)"
    );
    assert!(parse("max_retries = -1").is_err());
}

#[test]
fn deserialize_checked_keeps_parse_and_range_errors_apart() {
    let de = |text| toml::de::ValueDeserializer::parse(text).unwrap();
    let malformed = RetryConfig::deserialize_checked(de("{ max_retries = \"two\" }"));
    assert!(malformed.is_err());
    let out_of_range = RetryConfig::deserialize_checked(de("{ max_retries = 12 }")).unwrap();
    let error = out_of_range.unwrap_err();
    assert_eq!(error.key(), "max_retries");
    assert_eq!(error.problem(), "(12) must be at most 10");
    let fine = RetryConfig::deserialize_checked(de("{ max_retries = 0 }")).unwrap();
    assert_eq!(fine.unwrap().get_max_retries(), 0);
}

#[test]
fn validate_names_the_methods() {
    let error = RetryConfig::default()
        .max_delay(Duration::from_hours(48))
        .validate()
        .unwrap_err();
    assert_eq!(error.key(), "max_delay");
}
