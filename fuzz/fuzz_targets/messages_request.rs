//! Arbitrary bytes as an Anthropic Messages request converted to an OpenAI
//! chat request: no panic; an accepted request is a JSON object with the
//! caller's model, a `messages` array of system, user, assistant and tool
//! messages, `stream` and `stream_options.include_usage` as the request
//! asked, and tool calls whose arguments are JSON. The converted body is
//! itself an OpenAI request the Anthropic translator accepts or refuses
//! with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use understudy_provider::anthropic::translate_request;
use understudy_provider::messages::to_chat;

fuzz_target!(|body: &[u8]| {
    let Ok(chat) = to_chat(body) else {
        return;
    };
    let json: Value = serde_json::from_slice(&chat.body).expect("valid JSON");
    let object = json.as_object().expect("a JSON object");
    assert_eq!(object["model"].as_str(), Some(chat.model.as_str()));
    assert!(object["max_tokens"].is_u64());
    let messages = object["messages"].as_array().expect("a messages array");
    for message in messages {
        let role = message["role"].as_str().expect("a role");
        assert!(
            matches!(role, "system" | "user" | "assistant" | "tool"),
            "role {role}"
        );
        if role == "tool" {
            assert!(message["tool_call_id"].is_string());
            assert!(message["content"].is_string());
        }
        for call in message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            assert!(call["id"].is_string());
            assert!(call["function"]["name"].is_string());
            let arguments = call["function"]["arguments"].as_str().expect("arguments");
            serde_json::from_str::<Value>(arguments).expect("JSON arguments");
        }
    }
    if chat.stream {
        assert_eq!(object.get("stream"), Some(&Value::Bool(true)));
        assert_eq!(json["stream_options"]["include_usage"], true);
    } else {
        assert!(object.get("stream").is_none());
        assert!(object.get("stream_options").is_none());
    }
    // OpenAI refuses `tool_choice` and `parallel_tool_calls` without tools.
    if object.get("tools").is_none() {
        assert!(object.get("tool_choice").is_none());
        assert!(object.get("parallel_tool_calls").is_none());
    }

    // The converted body through the OpenAI → Anthropic translator.
    if let Ok(back) = translate_request(&chat.body, "claude-test", 1024) {
        let json: Value = serde_json::from_slice(&back.body).expect("valid JSON");
        assert!(json["messages"].is_array());
        assert_eq!(back.stream, chat.stream);
        assert_eq!(back.include_usage, chat.stream);
    }
});
