//! Arbitrary bytes as an OpenAI chat request translated for Gemini: no
//! panic, and an accepted request is a JSON object whose `contents` are
//! turns of alternating roles with parts, whose `systemInstruction` is
//! text parts, and whose `generationConfig` holds only the fields the
//! translation writes, each of its type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use understudy_provider::gemini::translate_request;

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
                "contents" | "systemInstruction" | "tools" | "toolConfig" | "generationConfig"
            ),
            "unexpected field {key}"
        );
    }
    let contents = json["contents"].as_array().expect("`contents` an array");
    let mut last_role = None;
    for turn in contents {
        let role = turn["role"].as_str().expect("a role");
        assert!(role == "user" || role == "model", "role {role}");
        assert_ne!(last_role, Some(role), "consecutive turns of one role");
        last_role = Some(role);
        let parts = turn["parts"].as_array().expect("parts");
        assert!(!parts.is_empty(), "a turn without parts");
        assert!(
            parts
                .iter()
                .all(|part| part.as_object().is_some_and(|p| p.len() == 1))
        );
    }
    if let Some(system) = object.get("systemInstruction") {
        let parts = system["parts"].as_array().expect("system parts");
        assert!(!parts.is_empty());
        for part in parts {
            let text = part["text"].as_str().expect("system text");
            assert!(!text.is_empty());
        }
    }
    if let Some(config) = object.get("generationConfig") {
        let config = config.as_object().expect("`generationConfig` an object");
        assert!(!config.is_empty());
        for (key, value) in config {
            match key.as_str() {
                "maxOutputTokens" => assert!(value.is_u64()),
                "temperature" | "topP" | "topK" | "seed" | "presencePenalty"
                | "frequencyPenalty" => assert!(value.is_number()),
                "stopSequences" => {
                    let stops = value.as_array().expect("stop sequences");
                    assert!(!stops.is_empty() && stops.iter().all(Value::is_string));
                }
                "responseMimeType" => assert_eq!(value, "application/json"),
                "responseSchema" => {
                    assert!(value.is_object());
                    assert_eq!(
                        config.get("responseMimeType"),
                        Some(&"application/json".into())
                    );
                }
                other => panic!("unexpected generationConfig field {other}"),
            }
        }
    }
    if let Some(tools) = object.get("tools") {
        let declarations = tools[0]["functionDeclarations"]
            .as_array()
            .expect("declarations");
        assert!(!declarations.is_empty());
        assert!(declarations.iter().all(|d| d["name"].is_string()));
    } else {
        assert!(
            object.get("toolConfig").is_none(),
            "toolConfig without tools"
        );
    }
    assert!(!out.include_usage || out.stream);
});
