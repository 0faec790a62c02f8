//! Arbitrary UTF-8 as the gateway's TOML configuration: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use understudy_gateway::config::Config;

fuzz_target!(|text: &str| {
    if let Ok(config) = Config::from_toml(text) {
        assert!(config.validate().is_ok());
    }
});
