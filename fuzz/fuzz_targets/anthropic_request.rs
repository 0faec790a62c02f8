//! Arbitrary bytes as an OpenAI chat request translated for Anthropic: no
//! panic, and an accepted request is a JSON object with the target model
//! and a `max_tokens`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use understudy_provider::anthropic::translate_request;

fuzz_target!(|body: &[u8]| {
    let Ok(out) = translate_request(body, "claude-test", 1024) else {
        return;
    };
    let json: serde_json::Value = serde_json::from_slice(&out.body).expect("valid JSON");
    assert_eq!(json["model"], "claude-test");
    assert!(json["max_tokens"].is_u64());
    assert!(json["messages"].is_array());
    assert_eq!(json.get("stream").is_some(), out.stream);
    assert!(!out.include_usage || out.stream);
});
