//! Arbitrary header values through the `Retry-After` and rate-limit reset
//! parsers: no panic.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use understudy_core::classify::{parse_reset_duration, parse_retry_after, retry_after};

const NAMES: [&str; 6] = [
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
];

fuzz_target!(|input: &[u8]| {
    let Some((&selector, value)) = input.split_first() else {
        return;
    };
    // A few clocks: now, the epoch, and far ahead.
    let nows = [
        SystemTime::now(),
        SystemTime::UNIX_EPOCH,
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 8),
    ];
    let now = nows[usize::from(selector) % nows.len()];
    if let Ok(text) = std::str::from_utf8(value) {
        let _ = parse_retry_after(text, now);
        let _ = parse_reset_duration(text);
    }
    if let Ok(value) = HeaderValue::from_bytes(value) {
        let mut headers = HeaderMap::new();
        let name = NAMES[usize::from(selector / 4) % NAMES.len()];
        headers.insert(HeaderName::from_static(name), value.clone());
        let _ = retry_after(&headers, now);
        // Every name at once, as a provider may send.
        for name in NAMES {
            headers.insert(HeaderName::from_static(name), value.clone());
        }
        let _ = retry_after(&headers, now);
    }
});
