//! `HealthConfig` deserialised from a file's keys.
#![cfg(feature = "serde")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use understudy_health::HealthConfig;

fn parse(text: &str) -> Result<HealthConfig, String> {
    toml::from_str(text).map_err(|e| e.message().to_owned())
}

#[test]
fn an_empty_table_is_the_default() {
    let config = parse("").unwrap();
    assert_eq!(config, HealthConfig::default());
    assert_eq!(config.probe_interval(), Some(Duration::from_secs(10)));
}

#[test]
fn every_key_sets_its_setting() {
    let config = parse(
        "consecutive_failures = 3\n\
         failure_ratio = 0.25\n\
         min_requests = 8\n\
         window_secs = 60\n\
         base_ejection_secs = 5\n\
         max_ejection_secs = 600\n\
         probe_interval_secs = 2\n",
    )
    .unwrap();
    let built = HealthConfig::builder()
        .consecutive_failures(3)
        .failure_ratio(0.25)
        .min_requests(8)
        .window(Duration::from_mins(1))
        .base_ejection(Duration::from_secs(5))
        .max_ejection(Duration::from_mins(10))
        .probe_interval(Some(Duration::from_secs(2)))
        .build()
        .unwrap();
    assert_eq!(config, built);
}

#[test]
fn a_zero_probe_interval_turns_probing_off() {
    assert_eq!(
        parse("probe_interval_secs = 0").unwrap().probe_interval(),
        None
    );
}

#[test]
fn an_unknown_key_is_an_error_naming_it() {
    let error = parse("consecutive_failure = 3").unwrap_err();
    assert!(
        error.contains("unknown field `consecutive_failure`"),
        "{error}"
    );
    // Builder-only settings are not file keys.
    assert!(parse("decay_after_secs = 10").is_err());
}

#[test]
fn the_keys_listed_are_the_keys_read() {
    let error = parse("nonsense = 1").unwrap_err();
    let listed = HealthConfig::KEYS
        .iter()
        .map(|key| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(
        error.contains(&format!("expected one of {listed}")),
        "{error}"
    );
}

#[test]
fn a_duration_over_a_day_is_refused_naming_the_file_key() {
    let error =
        parse("base_ejection_secs = 9223372036854775807\nmax_ejection_secs = 9223372036854775807")
            .unwrap_err();
    assert_eq!(
        error,
        "base_ejection_secs (9223372036854775807s) must be in the range [1ns, 86400s]"
    );
    let error = parse("probe_interval_secs = 86401").unwrap_err();
    assert!(error.starts_with("probe_interval_secs (86401s)"), "{error}");
    // A day is allowed.
    assert!(parse("window_secs = 86400\nmax_ejection_secs = 86400").is_ok());
}

#[test]
fn inconsistent_values_are_refused_naming_the_file_keys() {
    assert_eq!(
        parse("base_ejection_secs = 60\nmax_ejection_secs = 30").unwrap_err(),
        "base_ejection_secs (60s) must be greater than 0 and at most max_ejection_secs (30s)"
    );
    assert_eq!(
        parse("failure_ratio = 1.5").unwrap_err(),
        "failure_ratio (1.5) must be finite and in the range (0.0, 1.0]"
    );
    assert_eq!(
        parse("consecutive_failures = 0").unwrap_err(),
        "consecutive_failures (0) must be at least 1"
    );
    assert_eq!(
        parse("window_secs = 0").unwrap_err(),
        "window_secs (0ns) must be at least 10ms"
    );
}

#[test]
fn deserialize_checked_keeps_parse_and_range_errors_apart() {
    let de = |text| toml::de::ValueDeserializer::parse(text).unwrap();
    assert!(HealthConfig::deserialize_checked(de("{ min_requests = \"many\" }")).is_err());
    let error = HealthConfig::deserialize_checked(de("{ window_secs = 0 }"))
        .unwrap()
        .unwrap_err();
    assert_eq!(error.key(), "window_secs");
}

#[test]
fn the_builder_refuses_a_zero_probe_interval() {
    let error = HealthConfig::builder()
        .probe_interval(Some(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!(error.key(), "probe_interval");
}
