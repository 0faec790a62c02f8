//! Arbitrary statuses, headers and bodies through
//! `LlmClassifier::classify_parts`: no panic.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use understudy_core::LlmClassifier;

const NAMES: [&str; 8] = [
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "x-should-retry",
    "content-type",
];

fuzz_target!(|input: &[u8]| {
    // [status hi, status lo, header count, (name index, len, value)..., body]
    let &[hi, lo, count, ref tail @ ..] = input else {
        return;
    };
    let mut rest: &[u8] = tail;
    let status = u16::from_be_bytes([hi, lo]) % 1000;
    let Ok(status) = StatusCode::from_u16(status.max(100)) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for _ in 0..(count % 6) {
        let &[name, len, ref tail @ ..] = rest else {
            break;
        };
        let len = usize::from(len % 48).min(tail.len());
        let (value, tail) = tail.split_at(len);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            let name = NAMES[usize::from(name) % NAMES.len()];
            headers.append(HeaderName::from_static(name), value);
        }
        rest = tail;
    }
    let classifier = LlmClassifier::new();
    let _ = classifier.classify_parts(status, &headers, Some(rest));
    let _ = classifier.classify_parts(status, &headers, None);
});
