//! Arbitrary bytes as an OpenAI chat request translated for Bedrock's
//! Converse API: no panic, and an accepted request is a JSON object whose
//! `messages` are turns of alternating roles, whose `system` is text
//! blocks, and whose `inferenceConfig` holds only the fields the
//! translation writes, each of its type and range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use understudy_provider::bedrock::translate_request;

fuzz_target!(|body: &[u8]| {
    let Ok(out) = translate_request(body) else {
        return;
    };
    let json: Value = serde_json::from_slice(&out.body).expect("valid JSON");
    let object = json.as_object().expect("a JSON object");
    for key in object.keys() {
        assert!(
            matches!(
                key.as_str(),
                "messages" | "system" | "inferenceConfig" | "toolConfig"
            ),
            "unexpected field {key}"
        );
    }
    let messages = json["messages"].as_array().expect("`messages` an array");
    let mut last_role = None;
    for turn in messages {
        let role = turn["role"].as_str().expect("a role");
        assert!(role == "user" || role == "assistant", "role {role}");
        assert_ne!(last_role, Some(role), "consecutive turns of one role");
        last_role = Some(role);
        let blocks = turn["content"].as_array().expect("content blocks");
        assert!(
            blocks
                .iter()
                .all(|block| block.as_object().is_some_and(|b| b.len() == 1))
        );
    }
    if let Some(system) = object.get("system") {
        let blocks = system.as_array().expect("system blocks");
        assert!(!blocks.is_empty());
        assert!(blocks.iter().all(|block| block["text"].is_string()));
    }
    if let Some(config) = object.get("inferenceConfig") {
        let config = config.as_object().expect("`inferenceConfig` an object");
        assert!(!config.is_empty());
        for (key, value) in config {
            match key.as_str() {
                "maxTokens" => assert!(value.is_u64()),
                "temperature" => {
                    let t = value.as_f64().expect("a number");
                    assert!((0.0..=1.0).contains(&t), "temperature {t}");
                }
                "topP" => assert!(value.is_number()),
                "stopSequences" => {
                    let stops = value.as_array().expect("stop sequences");
                    assert!(!stops.is_empty() && stops.iter().all(Value::is_string));
                }
                other => panic!("unexpected inferenceConfig field {other}"),
            }
        }
    }
    if let Some(tool_config) = object.get("toolConfig") {
        let tools = tool_config["tools"].as_array().expect("tools");
        assert!(!tools.is_empty());
        for tool in tools {
            assert!(tool["toolSpec"]["name"].is_string());
            assert!(tool["toolSpec"]["inputSchema"].get("json").is_some());
        }
        if let Some(choice) = tool_config.get("toolChoice") {
            let choice = choice.as_object().expect("toolChoice an object");
            assert_eq!(choice.len(), 1);
            if let Some(named) = choice.get("tool") {
                assert!(named["name"].is_string());
            }
        }
    }
    assert!(!out.include_usage || out.stream);
});
