#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error as _;

use http::StatusCode;
use serde_json::{Value, json};
use understudy_core::{ClassifiedError, ClientErrorKind, FailureKind, Outcome};

use super::*;

fn chat(request: &Value) -> Value {
    let out = to_chat(request.to_string().as_bytes()).unwrap();
    serde_json::from_slice(&out.body).unwrap()
}

/// A request of `messages` with the required fields.
fn with_messages(messages: &Value) -> Value {
    json!({ "model": "claude", "max_tokens": 100, "messages": messages })
}

fn refused(request: &Value) -> String {
    to_chat(request.to_string().as_bytes())
        .unwrap_err()
        .to_string()
}

const REFUSED: &str = "is not supported on this route's non-Anthropic targets";

// ===== requests =====

#[test]
fn a_plain_request_maps_each_field() {
    let request = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["END", "STOP"],
        "metadata": {"user_id": "u-1"},
        "service_tier": "auto",
        "thinking": {"type": "disabled"},
    });
    let out = to_chat(request.to_string().as_bytes()).unwrap();
    assert_eq!(out.model, "claude-sonnet-4-5");
    assert!(!out.stream);
    let body: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello"},
            ],
            "max_tokens": 256,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": ["END", "STOP"],
            "user": "u-1",
        })
    );
}

#[test]
fn stream_asks_for_usage() {
    let mut request = with_messages(&json!([{"role": "user", "content": "Hi"}]));
    request["stream"] = json!(true);
    let out = to_chat(request.to_string().as_bytes()).unwrap();
    assert!(out.stream);
    let body: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));

    request["stream"] = json!(false);
    let body = chat(&request);
    assert!(body.get("stream").is_none());
    assert!(body.get("stream_options").is_none());
}

#[test]
fn system_blocks_join_and_cache_control_is_dropped() {
    let mut request = with_messages(&json!([{"role": "user", "content": [
        {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}},
    ]}]));
    request["system"] = json!([
        {"type": "text", "text": "Rule one."},
        {"type": "text", "text": "Rule two.", "cache_control": {"type": "ephemeral"}},
    ]);
    let body = chat(&request);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Rule one.\n\nRule two."},
            {"role": "user", "content": "Hi"},
        ])
    );
    assert!(!body.to_string().contains("cache_control"));
}

#[test]
fn user_blocks_become_parts() {
    let body = chat(&with_messages(&json!([{"role": "user", "content": [
        {"type": "text", "text": "Look:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}, "title": "report.pdf", "context": "Q3"},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Plain words."}},
    ]}])));
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "Look:"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBER"}},
            {"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBER"}},
            {"type": "text", "text": "Plain words."},
        ]}])
    );
}

#[test]
fn assistant_turns_join_text_and_carry_tool_calls() {
    let body = chat(&with_messages(&json!([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Let me check.", "signature": "sig"},
            {"type": "text", "text": "Checking "},
            {"type": "text", "text": "now."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
        ]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_3", "name": "noop"},
        ]},
        {"role": "assistant", "content": "Plain."},
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}]},
    ])));
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": "Checking now.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
        ]})
    );
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "toolu_3", "type": "function", "function": {"name": "noop", "arguments": "{}"}},
        ]})
    );
    assert_eq!(
        messages[3],
        json!({"role": "assistant", "content": "Plain."})
    );
    assert_eq!(messages[4], json!({"role": "assistant", "content": ""}));
}

#[test]
fn tool_results_become_tool_messages_before_the_turns_content() {
    let body = chat(&with_messages(&json!([{"role": "user", "content": [
        {"type": "text", "text": "Here you go."},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": [
            {"type": "text", "text": "line one"},
            {"type": "text", "text": "line two"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
        ]},
        {"type": "tool_result", "tool_use_id": "toolu_3", "content": "no such city", "is_error": true},
        {"type": "tool_result", "tool_use_id": "toolu_4", "is_error": true},
        {"type": "tool_result", "tool_use_id": "toolu_5"},
    ]}])));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "line one\nline two"},
            {"role": "tool", "tool_call_id": "toolu_3", "content": "Error: no such city"},
            {"role": "tool", "tool_call_id": "toolu_4", "content": "Error"},
            {"role": "tool", "tool_call_id": "toolu_5", "content": ""},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                {"type": "text", "text": "Here you go."},
            ]},
        ])
    );

    // A turn of tool results only is tool messages only.
    let body = chat(&with_messages(&json!([{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
    ]}])));
    assert_eq!(
        body["messages"],
        json!([{"role": "tool", "tool_call_id": "toolu_1", "content": "ok"}])
    );
}

#[test]
fn tools_become_function_tools() {
    let mut request = with_messages(&json!([]));
    request["tools"] = json!([
        {"name": "get_weather", "description": "Weather by city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}, "cache_control": {"type": "ephemeral"}},
        {"type": "custom", "name": "strict_one", "input_schema": {"type": "object"}, "strict": true},
    ]);
    let body = chat(&request);
    assert_eq!(
        body["tools"],
        json!([
            {"type": "function", "function": {"name": "get_weather", "description": "Weather by city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "strict_one", "parameters": {"type": "object"}, "strict": true}},
        ])
    );
    assert!(body.get("tool_choice").is_none());
    assert!(body.get("parallel_tool_calls").is_none());
}

#[test]
fn tool_choice_maps_each_mode() {
    let cases = [
        (json!({"type": "auto"}), json!("auto")),
        (json!({"type": "any"}), json!("required")),
        (json!({"type": "none"}), json!("none")),
        (
            json!({"type": "tool", "name": "f"}),
            json!({"type": "function", "function": {"name": "f"}}),
        ),
    ];
    for (choice, want) in cases {
        let mut request = with_messages(&json!([]));
        request["tools"] = json!([{"name": "f", "input_schema": {"type": "object"}}]);
        request["tool_choice"] = choice.clone();
        let body = chat(&request);
        assert_eq!(body["tool_choice"], want, "{choice}");
        assert!(body.get("parallel_tool_calls").is_none(), "{choice}");

        request["tool_choice"]["disable_parallel_tool_use"] = json!(true);
        let body = chat(&request);
        assert_eq!(body["tool_choice"], want, "{choice}");
        assert_eq!(body["parallel_tool_calls"], false, "{choice}");

        // Without tools, neither is sent (OpenAI refuses them).
        request["tools"] = json!([]);
        let body = chat(&request);
        assert!(body.get("tool_choice").is_none(), "{choice}");
        assert!(body.get("parallel_tool_calls").is_none(), "{choice}");
    }
}

#[test]
fn unsupported_features_are_refused_naming_them() {
    let base = with_messages(&json!([{"role": "user", "content": "Hi"}]));
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "thinking",
            json!({"type": "enabled", "budget_tokens": 1024}),
            "`thinking`",
        ),
        ("thinking", json!({"type": "between_tools"}), "`thinking`"),
        (
            "tools",
            json!([{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]),
            "`tools[0]` of type `web_search_20250305`",
        ),
        (
            "tools",
            json!([{"name": "f", "input_schema": {"type": "object"}}, {"type": "bash_20250124", "name": "bash"}]),
            "`tools[1]` of type `bash_20250124`",
        ),
        (
            "mcp_servers",
            json!([{"type": "url", "url": "https://mcp.example.com", "name": "x"}]),
            "`mcp_servers`",
        ),
        ("container", json!("container_1"), "`container`"),
        (
            "context_management",
            json!({"edits": []}),
            "`context_management`",
        ),
        (
            "output_format",
            json!({"type": "json_schema", "schema": {}}),
            "`output_format`",
        ),
        (
            "output_config",
            json!({"format": {"type": "json_schema", "schema": {}}}),
            "`output_config.format`",
        ),
    ];
    for (field, value, named) in cases {
        let mut request = base.clone();
        request[field] = value;
        assert_eq!(refused(&request), format!("{named} {REFUSED}"));
    }
    // What asks for nothing passes.
    let mut request = base;
    request["mcp_servers"] = json!([]);
    request["output_config"] = json!({"effort": "low"});
    request["container"] = Value::Null;
    request["thinking"] = json!({"type": "adaptive", "display": "omitted"});
    request["cache_control"] = json!({"type": "ephemeral"});
    request["speed"] = json!("fast");
    request["inference_geo"] = json!("us");
    let body = chat(&request);
    for dropped in [
        "mcp_servers",
        "output_config",
        "container",
        "thinking",
        "cache_control",
        "speed",
        "inference_geo",
    ] {
        assert!(body.get(dropped).is_none(), "{dropped}");
    }
}

#[test]
fn unsupported_blocks_are_refused_naming_them() {
    let cases = [
        (
            json!({"role": "user", "content": [{"type": "search_result", "source": "s", "title": "t", "content": []}]}),
            "`messages[0].content[0]` of type `search_result` in a user turn",
        ),
        (
            json!({"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}),
            "`messages[0].content[0]` of type `server_tool_use` in an assistant turn",
        ),
        (
            json!({"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}),
            "`messages[0].content[0].source` of type `file`",
        ),
        (
            json!({"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}]}),
            "`messages[0].content[0].source` of type `url`",
        ),
        (
            json!({"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "J"}, "citations": {"enabled": true}}]}),
            "`messages[0].content[0].citations`",
        ),
        (
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "search_result"}]}]}),
            "`messages[0].content[0].content[0]` of type `search_result`",
        ),
    ];
    for (turn, named) in cases {
        assert_eq!(
            refused(&with_messages(&json!([turn]))),
            format!("{named} {REFUSED}")
        );
    }
}

#[test]
fn malformed_requests_name_the_field() {
    let cases = [
        (json!("not an object"), "request body is not a JSON object"),
        (
            json!({"max_tokens": 1, "messages": []}),
            "`model` must be a string",
        ),
        (
            json!({"model": "m", "max_tokens": 1}),
            "`messages` must be an array",
        ),
        (
            json!({"model": "m", "messages": []}),
            "`max_tokens` is required: a non-negative integer",
        ),
        (
            json!({"model": "m", "max_tokens": -1, "messages": []}),
            "`max_tokens` is required: a non-negative integer",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
            "`messages[0].role` must be `user` or `assistant`",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 3}]}),
            "`messages[0].content` must be a string or an array of content blocks",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
            "`messages[0].content[0].text` must be a string",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}),
            "`messages[0].content[0].tool_use_id` must be a string",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t"}]}]}),
            "`messages[0].content[0].name` must be a string",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]}),
            "`messages[0].content[0].source.media_type` must be a string",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "system": [{"type": "image"}]}),
            "`system[0]` must be a text block",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "tools": [{"name": "f"}]}),
            "`tools[0].input_schema` must be an object",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": "sometimes"}}),
            "`tool_choice.type` must be `auto`, `any`, `tool` or `none`",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": "tool"}}),
            "`tool_choice.name` must be a string",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "stop_sequences": "END"}),
            "`stop_sequences` must be an array of strings",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "stream": "yes"}),
            "`stream` must be a boolean",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "temperature": "hot"}),
            "`temperature` must be a number",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "metadata": {"user_id": 7}}),
            "`metadata.user_id` must be a string",
        ),
    ];
    for (request, message) in cases {
        assert_eq!(refused(&request), message, "{request}");
    }
    let error = to_chat(b"{not json").unwrap_err();
    assert!(matches!(error, ProviderError::InvalidRequest { .. }));
    assert!(
        error
            .to_string()
            .starts_with("request body is not valid JSON")
    );
}

// ===== responses =====

fn completion(message: &Value, finish: &str, usage: &Value) -> Vec<u8> {
    json!({
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage,
    })
    .to_string()
    .into_bytes()
}

fn message(completion: &[u8]) -> Value {
    serde_json::from_slice(&from_chat(completion, "claude-sonnet-4-5").unwrap()).unwrap()
}

#[test]
fn a_text_answer_becomes_a_message() {
    let out = message(&completion(
        &json!({"role": "assistant", "content": "Hello!", "refusal": null}),
        "stop",
        &json!({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}),
    ));
    assert_eq!(
        out,
        json!({
            "id": "msg_chatcmpl-9",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "Hello!"}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 3},
        })
    );
}

#[test]
fn tool_calls_become_tool_use_blocks() {
    let out = message(&completion(
        &json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}},
            {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": "[1,2]"}},
            {"id": "call_3", "type": "function", "function": {"name": "c", "arguments": "{not json"}},
            {"id": "call_4", "type": "function", "function": {"name": "d", "arguments": ""}},
            {"type": "function", "function": {"name": "e"}},
        ]}),
        "tool_calls",
        &json!({"prompt_tokens": 1, "completion_tokens": 1}),
    ));
    assert_eq!(
        out["content"],
        json!([
            {"type": "tool_use", "id": "call_1", "name": "a", "input": {"x": 1}},
            {"type": "tool_use", "id": "call_2", "name": "b", "input": {}},
            {"type": "tool_use", "id": "call_3", "name": "c", "input": {}},
            {"type": "tool_use", "id": "call_4", "name": "d", "input": {}},
            {"type": "tool_use", "id": "toolu_4", "name": "e", "input": {}},
        ])
    );
    assert_eq!(out["stop_reason"], "tool_use");
}

#[test]
fn finish_reasons_map_to_stop_reasons() {
    let cases = [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        ("something_new", "end_turn"),
    ];
    for (finish, want) in cases {
        let out = message(&completion(
            &json!({"role": "assistant", "content": "x"}),
            finish,
            &json!({}),
        ));
        assert_eq!(out["stop_reason"], want, "{finish}");
        assert_eq!(stop_reason(finish), want);
    }
    // Tool calls that finished with `stop` stopped for tool use.
    let out = message(&completion(
        &json!({"role": "assistant", "content": "", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        ]}),
        "stop",
        &json!({}),
    ));
    assert_eq!(out["stop_reason"], "tool_use");
    assert_eq!(out["content"].as_array().unwrap().len(), 1);
}

#[test]
fn cached_tokens_are_cache_reads() {
    let out = message(&completion(
        &json!({"role": "assistant", "content": "x"}),
        "stop",
        &json!({"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020,
                "prompt_tokens_details": {"cached_tokens": 768}}),
    ));
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 232, "output_tokens": 20, "cache_read_input_tokens": 768})
    );
}

#[test]
fn refusals_and_empty_answers() {
    let out = message(&completion(
        &json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
        "stop",
        &json!({}),
    ));
    assert_eq!(
        out["content"],
        json!([{"type": "text", "text": "I can't help with that."}])
    );
    let out = message(&completion(
        &json!({"role": "assistant", "content": ""}),
        "content_filter",
        &json!({}),
    ));
    assert_eq!(out["content"], json!([]));
    assert_eq!(out["stop_reason"], "refusal");
    assert_eq!(out["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
}

#[test]
fn unreadable_completions_are_invalid_responses() {
    for body in [
        &b"not json"[..],
        br#"{"id":"x","choices":[]}"#,
        br#"{"error":{"message":"boom"}}"#,
    ] {
        assert!(matches!(
            from_chat(body, "m").unwrap_err(),
            ProviderError::InvalidResponse { .. }
        ));
    }
    // No id: one is made.
    let out = message(br#"{"choices":[{"message":{"content":"x"},"finish_reason":"stop"}]}"#);
    assert!(out["id"].as_str().unwrap().starts_with("msg_"));
}

#[test]
fn a_tool_round_trip_keeps_ids_names_and_inputs() {
    // The target answers with a tool call...
    let answer = message(&completion(
        &json!({"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        ]}),
        "tool_calls",
        &json!({"prompt_tokens": 5, "completion_tokens": 5}),
    ));
    let tool_use = answer["content"][1].clone();
    assert_eq!(tool_use["id"], "call_abc");
    // ...the client sends the answer back with the tool's result...
    let mut request = with_messages(&json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": answer["content"]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_use["id"], "content": [{"type": "text", "text": "18°C"}]},
        ]},
    ]));
    request["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    let body = chat(&request);
    // ...and the target gets the OpenAI conversation it would have had.
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "18°C"},
        ])
    );
}

// ===== streams =====

/// Splits Anthropic SSE output into (event name, data).
fn events(out: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
    text.split_terminator("\n\n")
        .map(|event| {
            let (name, data) = event.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name, "{event}");
            (name.to_owned(), data)
        })
        .collect()
}

fn chunk(delta: &Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-7",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        "usage": null,
    });
    format!("data: {chunk}\n\n")
}

fn usage_chunk(usage: &Value) -> String {
    let chunk = json!({"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1,
                       "model": "gpt-4o", "choices": [], "usage": usage});
    format!("data: {chunk}\n\n")
}

/// Translates a whole stream fed in `pieces`; the output and how it ended.
fn translate_in_pieces(stream: &[u8], pieces: &[usize]) -> (Vec<u8>, Result<(), ClassifiedError>) {
    let mut translator = MessagesStreamTranslator::new("claude-sonnet-4-5");
    let mut out = Vec::new();
    let mut rest = stream;
    for &size in pieces {
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        match translator.push(piece) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(error) => return (out, Err(error)),
        }
    }
    let ended = translator.push(rest).and_then(|bytes| {
        out.extend_from_slice(&bytes);
        translator.finish()
    });
    match ended {
        Ok(bytes) => {
            out.extend_from_slice(&bytes);
            assert!(translator.is_finished());
            (out, Ok(()))
        }
        Err(error) => (out, Err(error)),
    }
}

fn translate(stream: &str) -> Vec<(String, Value)> {
    let (out, ended) = translate_in_pieces(stream.as_bytes(), &[]);
    ended.unwrap();
    events(&out)
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

fn text_stream() -> String {
    [
        chunk(&json!({"role": "assistant", "content": ""}), None),
        chunk(&json!({"content": "Hel"}), None),
        chunk(&json!({"content": "lo"}), None),
        chunk(&json!({}), Some("stop")),
        usage_chunk(&json!({"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11})),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat()
}

#[test]
fn a_text_stream_becomes_message_events() {
    let events = translate(&text_stream());
    let want = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_chatcmpl-7", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                                 "usage": {"input_tokens": 9, "output_tokens": 2}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let want: Vec<(String, Value)> = want
        .into_iter()
        .map(|(name, data)| (name.to_owned(), data))
        .collect();
    assert_eq!(events, want);
}

fn tool_stream() -> String {
    let call = |index: u64, id: &str, name: &str| json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]});
    let args = |index: u64, fragment: &str| json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]});
    [
        chunk(&json!({"role": "assistant", "content": null}), None),
        chunk(&json!({"content": "Checking."}), None),
        chunk(&call(0, "call_a", "get_weather"), None),
        chunk(&args(0, "{\"ci"), None),
        chunk(&args(0, "ty\": \"Par"), None),
        chunk(&args(0, "is\"}"), None),
        chunk(&call(1, "call_b", "get_time"), None),
        chunk(&args(1, "{}"), None),
        chunk(&json!({}), Some("tool_calls")),
        usage_chunk(&json!({"prompt_tokens": 50, "completion_tokens": 30,
                            "prompt_tokens_details": {"cached_tokens": 40}})),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat()
}

#[test]
fn a_streamed_tool_call_becomes_tool_use_blocks() {
    let events = translate(&tool_stream());
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(
        events[4].1["content_block"],
        json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}})
    );
    assert_eq!(events[4].1["index"], 1);
    let partial: String = events[5..8]
        .iter()
        .map(|(_, data)| {
            assert_eq!(data["index"], 1);
            assert_eq!(data["delta"]["type"], "input_json_delta");
            data["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&partial).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(events[8].1["index"], 1);
    assert_eq!(
        events[9].1["content_block"],
        json!({"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}})
    );
    assert_eq!(events[9].1["index"], 2);
    assert_eq!(events[11].1["index"], 2);
    assert_eq!(
        events[12].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
               "usage": {"input_tokens": 10, "output_tokens": 30, "cache_read_input_tokens": 40}})
    );
}

#[test]
fn any_split_gives_the_same_events() {
    for stream in [text_stream(), tool_stream()] {
        let stream = stream.replace("\n\n", "\r\n\r\n");
        let (whole, ended) = translate_in_pieces(stream.as_bytes(), &[]);
        ended.unwrap();
        for split in 1..stream.len() {
            let (out, ended) = translate_in_pieces(stream.as_bytes(), &[split]);
            ended.unwrap();
            assert_eq!(out, whole, "split at {split}");
        }
        let (out, ended) = translate_in_pieces(stream.as_bytes(), &vec![1; stream.len()]);
        ended.unwrap();
        assert_eq!(out, whole);
        let (out, ended) = translate_in_pieces(stream.as_bytes(), &[7, 13, 1, 64, 3, 250]);
        ended.unwrap();
        assert_eq!(out, whole);
    }
}

#[test]
fn stream_stop_reasons_follow_the_finish_reason() {
    for (finish, want) in [
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("stop", "end_turn"),
    ] {
        let stream = [
            chunk(&json!({"content": "x"}), Some(finish)),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        let events = translate(&stream);
        let (name, delta) = &events[events.len() - 2];
        assert_eq!(name, "message_delta");
        assert_eq!(delta["delta"]["stop_reason"], want, "{finish}");
        // No usage chunk: zero output tokens.
        assert_eq!(delta["usage"], json!({"output_tokens": 0}));
    }
    // Tool calls ending in `stop` stopped for tool use.
    let stream = [
        chunk(&json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}), None),
        chunk(&json!({}), Some("stop")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let events = translate(&stream);
    assert_eq!(
        events[events.len() - 2].1["delta"]["stop_reason"],
        "tool_use"
    );
}

#[test]
fn an_empty_answer_has_no_blocks() {
    let stream = [
        chunk(&json!({"role": "assistant", "content": ""}), None),
        chunk(&json!({}), Some("stop")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    assert_eq!(
        names(&translate(&stream)),
        ["message_start", "message_delta", "message_stop"]
    );
}

#[test]
fn refusal_deltas_are_text() {
    let stream = [
        chunk(&json!({"refusal": "No."}), None),
        chunk(&json!({}), Some("stop")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let events = translate(&stream);
    assert_eq!(
        events[2].1["delta"],
        json!({"type": "text_delta", "text": "No."})
    );
}

fn outcome(error: &ClassifiedError) -> Outcome {
    error.outcome()
}

#[test]
fn error_events_are_classified() {
    let cases = [
        (
            r#"{"error":{"message":"Overloaded","type":"overloaded_error"}}"#,
            Outcome::Failure(FailureKind::Overloaded),
        ),
        (
            r#"{"error":{"message":"Slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#,
            Outcome::Failure(FailureKind::RateLimited { retry_after: None }),
        ),
        (
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
            Outcome::ClientError(ClientErrorKind::ContextLengthExceeded),
        ),
        (
            r#"{"error":{"message":"Something broke","type":"server_error"}}"#,
            Outcome::Failure(FailureKind::StreamBroken),
        ),
    ];
    for (data, want) in cases {
        let stream = format!("data: {data}\n\n");
        let (out, ended) = translate_in_pieces(stream.as_bytes(), &[]);
        assert!(out.is_empty());
        let error = ended.unwrap_err();
        assert_eq!(outcome(&error), want, "{data}");
        let source = error.source().unwrap().to_string();
        assert!(source.starts_with("upstream stream error"), "{source}");
    }
    // `event: error` with any data is an error too.
    let (_, ended) = translate_in_pieces(b"event: error\ndata: {}\n\n", &[]);
    assert_eq!(
        outcome(&ended.unwrap_err()),
        Outcome::Failure(FailureKind::StreamBroken)
    );
}

#[test]
fn an_error_after_events_comes_after_them() {
    let mut translator = MessagesStreamTranslator::new("m");
    let input = [
        chunk(&json!({"content": "Hi"}), None),
        r#"data: {"error":{"message":"Overloaded","type":"overloaded_error"}}"#.to_owned(),
        "\n\n".to_owned(),
    ]
    .concat();
    let out = translator.push(input.as_bytes()).unwrap();
    assert_eq!(
        names(&events(&out)),
        [
            "message_start",
            "content_block_start",
            "content_block_delta"
        ]
    );
    assert!(!translator.is_finished());
    let error = translator.push(b"data: [DONE]\n\n").unwrap_err();
    assert_eq!(outcome(&error), Outcome::Failure(FailureKind::Overloaded));
    assert!(translator.is_finished());
    assert!(translator.push(b"more").unwrap().is_empty());
    assert!(translator.finish().unwrap().is_empty());
}

#[test]
fn a_stream_that_ends_early_broke() {
    let broken = Outcome::Failure(FailureKind::StreamBroken);
    // No [DONE].
    let stream = [chunk(&json!({"content": "Hi"}), Some("stop"))].concat();
    let (out, ended) = translate_in_pieces(stream.as_bytes(), &[]);
    assert_eq!(
        names(&events(&out)),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop"
        ]
    );
    assert_eq!(outcome(&ended.unwrap_err()), broken);
    // [DONE] without a finish reason.
    let stream = [
        chunk(&json!({"content": "Hi"}), None),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let (_, ended) = translate_in_pieces(stream.as_bytes(), &[]);
    assert_eq!(outcome(&ended.unwrap_err()), broken);
    // Nothing at all.
    let (out, ended) = translate_in_pieces(b"", &[]);
    assert!(out.is_empty());
    assert_eq!(outcome(&ended.unwrap_err()), broken);
}

#[test]
fn unreadable_chunks_and_tool_calls_break_the_stream() {
    let broken = Outcome::Failure(FailureKind::StreamBroken);
    let cases = [
        "data: {not json\n\n".to_owned(),
        // A tool call starting without a name.
        chunk(
            &json!({"tool_calls": [{"index": 0, "id": "c", "function": {"arguments": "{}"}}]}),
            None,
        ),
        // A tool call continued after the next one started.
        [
            chunk(
                &json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}),
                None,
            ),
            chunk(
                &json!({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g"}}]}),
                None,
            ),
            chunk(
                &json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
                None,
            ),
        ]
        .concat(),
    ];
    for stream in cases {
        let (_, ended) = translate_in_pieces(stream.as_bytes(), &[]);
        assert_eq!(outcome(&ended.unwrap_err()), broken, "{stream}");
    }
}

#[test]
fn an_event_larger_than_the_bound_breaks_the_stream() {
    let mut translator = MessagesStreamTranslator::new("m").max_event_bytes(64);
    let long = chunk(&json!({"content": "x".repeat(100)}), None);
    let error = translator.push(long.as_bytes()).unwrap_err();
    assert_eq!(outcome(&error), Outcome::Failure(FailureKind::StreamBroken));
    // Within the bound, the same translator type reads it.
    let mut translator = MessagesStreamTranslator::new("m").max_event_bytes(1024);
    assert!(!translator.push(long.as_bytes()).unwrap().is_empty());
}

#[test]
fn input_after_done_is_ignored() {
    let mut translator = MessagesStreamTranslator::new("m");
    let out = translator.push(text_stream().as_bytes()).unwrap();
    assert_eq!(names(&events(&out)).last(), Some(&"message_stop"));
    assert!(translator.is_finished());
    assert!(
        translator
            .push(text_stream().as_bytes())
            .unwrap()
            .is_empty()
    );
    assert!(translator.finish().unwrap().is_empty());
}

// ===== errors =====

#[test]
fn error_types_follow_the_status() {
    let cases = [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (408, "invalid_request_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ];
    for (status, want) in cases {
        let status = StatusCode::from_u16(status).unwrap();
        let openai =
            br#"{"error":{"message":"It failed.","type":"whatever","param":null,"code":null}}"#;
        let (out_status, body) = error_body(status, openai);
        assert_eq!(out_status, status);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": want, "message": "It failed."}}),
            "{status}"
        );
        assert_eq!(error_type(status), want);
    }
}

#[test]
fn error_bodies_keep_the_message_and_never_quote_other_bodies() {
    let read = |status: u16, body: &[u8]| {
        let (status, body) = error_body(StatusCode::from_u16(status).unwrap(), body);
        (
            status.as_u16(),
            serde_json::from_slice::<Value>(&body).unwrap(),
        )
    };
    // Context length: the words Anthropic's clients look for.
    let (_, body) = read(
        400,
        br#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
    );
    assert_eq!(
        body["error"]["message"],
        "prompt is too long: This model's maximum context length is 8192 tokens."
    );
    // An HTML page from a proxy is not quoted.
    let (status, body) = read(
        502,
        b"<html><body>Bad Gateway: secret-internal-host</body></html>",
    );
    assert_eq!(status, 502);
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "api_error", "message": "Bad Gateway"}})
    );
    // vLLM's bare error.
    let (_, body) = read(
        400,
        br#"{"object":"error","message":"bad prompt","type":"BadRequestError","code":400}"#,
    );
    assert_eq!(body["error"]["message"], "bad prompt");
    // A status that is no error is answered as a server error.
    let (status, body) = read(200, br#"{"error":{"message":"odd"}}"#);
    assert_eq!(status, 500);
    assert_eq!(body["error"]["type"], "api_error");
}

#[test]
fn error_events_are_anthropic_sse() {
    let event = understudy_core::OpenAiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        "He said \"no\"",
    )
    .to_sse_event_for(understudy_core::Operation::Messages);
    let events = events(&event);
    assert_eq!(
        events,
        [(
            "error".to_owned(),
            json!({"type": "error", "error": {"type": "api_error", "message": "He said \"no\""}})
        )]
    );
}
