#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::Body;
use serde_json::{Value, json};
use understudy_core::{ClassifiedError, ClientErrorKind, FailureKind, LlmClassifier, Outcome};

use super::*;

fn translate(request: &Value) -> Value {
    let out = translate_request(request.to_string().as_bytes(), "claude", 1000).unwrap();
    serde_json::from_slice(&out.body).unwrap()
}

fn refused(request: &str) -> String {
    translate_request(request.as_bytes(), "claude", 1000)
        .unwrap_err()
        .to_string()
}

// ===== requests =====

#[test]
fn several_system_and_developer_messages_become_system_blocks() {
    let out = translate(&json!({
        "messages": [
            {"role": "system", "content": "Rule one."},
            {"role": "developer", "content": [{"type": "text", "text": "Rule two.", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": "Hi"},
        ],
    }));
    assert_eq!(
        out["system"],
        json!([
            {"type": "text", "text": "Rule one."},
            {"type": "text", "text": "Rule two.", "cache_control": {"type": "ephemeral"}},
        ])
    );
    assert_eq!(out["messages"], json!([{"role": "user", "content": "Hi"}]));
    assert_eq!(out["max_tokens"], 1000);
    assert!(out.get("stream").is_none());
}

#[test]
fn tool_choice_maps_each_mode() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let cases = [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (json!("required"), json!({"type": "any"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
    ];
    for (choice, want) in cases {
        let out = translate(&json!({"messages": [], "tools": tools, "tool_choice": choice}));
        assert_eq!(out["tool_choice"], want);
        assert_eq!(
            out["tools"],
            json!([{"name": "f", "input_schema": {"type": "object", "properties": {}}}])
        );
    }
    let out = translate(&json!({"messages": [], "tools": tools, "parallel_tool_calls": false}));
    assert_eq!(
        out["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    // Without tools there is nothing to choose from.
    let out = translate(&json!({"messages": [], "tools": [], "tool_choice": "auto"}));
    assert!(out.get("tools").is_none());
    assert!(out.get("tool_choice").is_none());
}

#[test]
fn assistant_text_and_tool_calls_keep_their_order() {
    let out = translate(&json!({"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "not json"}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                {"type": "text", "text": "And tomorrow?"},
            ]},
        ])
    );
}

#[test]
fn pdf_files_become_documents() {
    let out = translate(&json!({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]}]}));
    assert_eq!(
        out["messages"][0]["content"],
        json!([{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}])
    );
    assert_eq!(
        refused(
            r#"{"messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"JVBERi0="}}]}]}"#
        ),
        "`messages[0].content` has a file part without a base64 `file_data` data URL"
    );
}

#[test]
fn sampling_parameters_map_or_drop() {
    // `n: 1`, an empty `logit_bias` and a `text` format ask for nothing.
    let out = translate(&json!({
        "messages": [],
        "stop": "END",
        "temperature": -1,
        "top_p": 0.5,
        "top_k": 40,
        "max_tokens": 77,
        "stream": true,
        "stream_options": {"include_usage": true},
        "n": 1, "seed": 1, "logit_bias": {}, "response_format": {"type": "text"},
    }));
    assert_eq!(
        out,
        json!({
            "model": "claude",
            "messages": [],
            "stop_sequences": ["END"],
            "temperature": 0.0,
            "top_p": 0.5,
            "top_k": 40,
            "max_tokens": 77,
            "stream": true,
        })
    );
    let translated = translate_request(
        br#"{"messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
        "claude",
        1,
    )
    .unwrap();
    assert!(translated.stream && translated.include_usage);
}

#[test]
fn malformed_requests_are_refused_with_a_reason() {
    assert_eq!(refused("[]"), "request body is not a JSON object");
    assert_eq!(refused("{}"), "`messages` must be an array");
    assert_eq!(
        refused(r#"{"messages":[{"content":"x"}]}"#),
        "`messages[0].role` must be a string"
    );
    assert_eq!(
        refused(r#"{"messages":[{"role":"robot","content":"x"}]}"#),
        "`messages[0].role` `robot` is not supported"
    );
    assert_eq!(
        refused(r#"{"messages":[],"max_tokens":"many"}"#),
        "`max_tokens` must be a non-negative integer"
    );
    assert!(refused(
        r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}"#
    )
    .contains("not base64"));
    assert!(refused(r#"{"messages":[{"role":"tool","content":"x"}]}"#).contains("tool_call_id"));
}

#[test]
fn stream_fields_of_the_wrong_type_are_refused() {
    for stream in [r#""yes""#, "1", "{}", "[true]"] {
        assert_eq!(
            refused(&format!(r#"{{"messages":[],"stream":{stream}}}"#)),
            "`stream` must be a boolean",
            "stream: {stream}"
        );
    }
    for options in [r#""usage""#, "true", "[]"] {
        assert_eq!(
            refused(&format!(
                r#"{{"messages":[],"stream":true,"stream_options":{options}}}"#
            )),
            "`stream_options` must be an object",
            "stream_options: {options}"
        );
    }
    assert_eq!(
        refused(r#"{"messages":[],"stream":true,"stream_options":{"include_usage":"yes"}}"#),
        "`stream_options.include_usage` must be a boolean"
    );
    // null is "not set", as OpenAI reads it.
    let out = translate_request(
        br#"{"messages":[],"stream":null,"stream_options":null}"#,
        "claude",
        1000,
    )
    .unwrap();
    assert!(!out.stream && !out.include_usage);
    let out = translate_request(
        br#"{"messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
        "claude",
        1000,
    )
    .unwrap();
    assert!(out.stream && out.include_usage);
}

// ===== structured output =====

fn user_says_hi() -> Value {
    json!([{"role": "user", "content": "Weather in Paris?"}])
}

#[test]
fn json_object_becomes_a_forced_tool_beside_the_callers() {
    let out = translate(&json!({
        "messages": user_says_hi(),
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "response_format": {"type": "json_object"},
    }));
    assert_eq!(
        out["tools"],
        json!([
            {"name": "lookup", "input_schema": {"type": "object"}},
            {
                "name": "json_response",
                "description": "Respond with a JSON object: pass the whole answer as this tool's input.",
                "input_schema": {"type": "object"},
            },
        ])
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "tool", "name": "json_response", "disable_parallel_tool_use": true})
    );
}

#[test]
fn json_schema_becomes_a_forced_tool_with_its_schema() {
    let schema = json!({
        "type": "object",
        "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
        "required": ["city", "celsius"],
        "additionalProperties": false,
    });
    let out = translate(&json!({
        "messages": user_says_hi(),
        "stream": true,
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "weather", "strict": true, "schema": schema,
        }},
    }));
    assert_eq!(
        out["tools"],
        json!([{
            "name": "json_response",
            "description": "Respond with the `weather` JSON object: pass the whole answer as this tool's input.",
            "input_schema": schema,
        }])
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "tool", "name": "json_response", "disable_parallel_tool_use": true})
    );
    assert_eq!(out["stream"], true);

    // The schema's own description describes the tool.
    let out = translate(&json!({
        "messages": user_says_hi(),
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "weather", "description": "The weather report.", "schema": schema,
        }},
    }));
    assert_eq!(out["tools"][0]["description"], "The weather report.");
    // A `text` format is no format.
    let out = translate(&json!({"messages": user_says_hi(), "response_format": {"type": "text"}}));
    assert!(out.get("tools").is_none() && out.get("tool_choice").is_none());
}

#[test]
fn the_forced_tool_refuses_what_it_would_override() {
    let mine = r#"[{"type":"function","function":{"name":"json_response"}}]"#;
    let reserved = "`tools`: the name `json_response` is reserved for `response_format` on `anthropic` targets";
    // Reserved with or without `response_format`: the answer is read by it.
    assert_eq!(
        refused(&format!(r#"{{"messages":[],"tools":{mine}}}"#)),
        reserved
    );
    assert_eq!(
        refused(&format!(
            r#"{{"messages":[],"tools":{mine},"response_format":{{"type":"json_object"}}}}"#
        )),
        reserved
    );
    let lookup = r#"[{"type":"function","function":{"name":"lookup"}}]"#;
    for choice in [
        r#""required""#,
        r#"{"type":"function","function":{"name":"lookup"}}"#,
    ] {
        assert_eq!(
            refused(&format!(
                r#"{{"messages":[],"tools":{lookup},"tool_choice":{choice},"response_format":{{"type":"json_object"}}}}"#
            )),
            "`response_format` cannot be combined with a required `tool_choice` on `anthropic` targets"
        );
    }
    assert!(
        refused(r#"{"messages":[],"response_format":{"type":"yaml"}}"#)
            .starts_with("`response_format`")
    );
}

#[test]
fn each_refused_field_is_named() {
    let user =
        |content: &str| format!(r#"{{"messages":[{{"role":"user","content":[{content}]}}]}}"#);
    let cases = [
        (
            r#"{"messages":[],"n":2}"#.to_owned(),
            "`n` other than 1 is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[],"logprobs":true}"#.to_owned(),
            "`logprobs` is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[],"top_logprobs":5}"#.to_owned(),
            "`top_logprobs` is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[],"logit_bias":{"50256":-100}}"#.to_owned(),
            "`logit_bias` is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[],"audio":{"voice":"alloy","format":"wav"}}"#.to_owned(),
            "`audio` is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[],"modalities":["text","audio"]}"#.to_owned(),
            "`modalities` other than `[\"text\"]` is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[],"web_search_options":{}}"#.to_owned(),
            "`web_search_options` is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[],"functions":[{"name":"f","parameters":{}}]}"#.to_owned(),
            "`functions` (the legacy form of `tools`) is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[],"function_call":"auto"}"#.to_owned(),
            "`function_call` (the legacy form of `tool_choice`) is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[{"role":"function","name":"f","content":"42"}]}"#.to_owned(),
            "`messages[0].role` `function` (the legacy form of `tool`) is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[{"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{}"}}]}"#.to_owned(),
            "`messages[0].function_call` is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[{"role":"assistant","audio":{"id":"audio_1"}}]}"#.to_owned(),
            "`messages[0].audio` is not supported by `anthropic` targets",
        ),
        (
            user(r#"{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}"#),
            "`messages[0].content` part of type `input_audio` is not supported by `anthropic` targets",
        ),
        (
            user(r#"{"type":"file","file":{"file_id":"file-abc"}}"#),
            "`messages[0].content` file given by `file_id` is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[],"tools":[{"type":"web_search"}]}"#.to_owned(),
            "`tools[0]` of type `web_search` is not supported by `anthropic` targets",
        ),
        (
            r#"{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}"#.to_owned(),
            "`messages[0].content` part of type `image_url` is not supported by `anthropic` targets",
        ),
    ];
    for (request, message) in cases {
        let error = translate_request(request.as_bytes(), "claude", 1000).unwrap_err();
        assert!(
            matches!(error, crate::ProviderError::InvalidRequest { .. }),
            "{request}"
        );
        assert_eq!(error.to_string(), message, "{request}");
    }
}

#[test]
fn safe_fields_are_dropped() {
    let out = translate(&json!({
        "messages": [
            {"role": "user", "name": "alice", "content": [
                {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
            ]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
            {"role": "user", "content": "Why?"},
            {"role": "assistant", "content": null, "refusal": "Policy."},
        ],
        "presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": 7,
        "service_tier": "flex", "store": true, "metadata": {"team": "a"},
        "prediction": {"type": "content", "content": "x"},
        "reasoning_effort": "high", "verbosity": "low",
        "prompt_cache_key": "k", "safety_identifier": "s",
        "n": 1, "logprobs": false, "top_logprobs": 0, "logit_bias": {},
        "modalities": ["text"], "functions": [], "audio": null,
        "parallel_tool_calls": true,
        "stream_options": {"include_obfuscation": false},
        "x_unknown": {"anything": true},
    }));
    assert_eq!(
        out,
        json!({
            "model": "claude",
            "messages": [
                {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}]},
                {"role": "assistant", "content": [{"type": "text", "text": "I can't."}]},
                {"role": "user", "content": "Why?"},
                {"role": "assistant", "content": "Policy."},
            ],
            "max_tokens": 1000,
        })
    );
}

// ===== answers =====

#[test]
fn an_answer_without_text_has_null_content() {
    let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude",
        "content":[{"type":"thinking","thinking":"hmm","signature":"x"}],
        "stop_reason":"max_tokens","usage":{"input_tokens":1,"output_tokens":2}}"#;
    let out: Value = serde_json::from_slice(&translate_response(body, 9).unwrap()).unwrap();
    assert_eq!(out["created"], 9);
    assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
    assert!(out["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(out["choices"][0]["finish_reason"], "length");
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
    );
    assert!(translate_response(b"{\"nope\":1}", 0).is_err());
}

#[test]
fn the_forced_tools_input_is_the_answers_content() {
    let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude",
        "content":[{"type":"tool_use","id":"toolu_1","name":"json_response","input":{"city":"Paris","celsius":18}}],
        "stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":5}}"#;
    let out: Value = serde_json::from_slice(&translate_response(body, 1).unwrap()).unwrap();
    let message = &out["choices"][0]["message"];
    let content: Value = serde_json::from_str(message["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"city": "Paris", "celsius": 18}));
    assert!(message.get("tool_calls").is_none());
    assert_eq!(out["choices"][0]["finish_reason"], "stop");

    // A cut-off answer still says so.
    let body = br#"{"id":"msg_1","model":"claude",
        "content":[{"type":"tool_use","id":"toolu_1","name":"json_response","input":{}}],
        "stop_reason":"max_tokens"}"#;
    let out: Value = serde_json::from_slice(&translate_response(body, 1).unwrap()).unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "{}");
    assert_eq!(out["choices"][0]["finish_reason"], "length");

    // Any other tool is a tool call, as before.
    let body = br#"{"id":"msg_1","model":"claude",
        "content":[{"type":"tool_use","id":"toolu_1","name":"lookup","input":{"q":1}}],
        "stop_reason":"tool_use"}"#;
    let out: Value = serde_json::from_slice(&translate_response(body, 1).unwrap()).unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        out["choices"][0]["message"]["tool_calls"][0]["function"],
        json!({"name": "lookup", "arguments": "{\"q\":1}"})
    );
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn error_types_map_to_openai_types() {
    let cases = [
        ("invalid_request_error", 400, "invalid_request_error"),
        ("authentication_error", 401, "authentication_error"),
        ("permission_error", 403, "permission_error"),
        ("not_found_error", 404, "invalid_request_error"),
        ("request_too_large", 413, "invalid_request_error"),
        ("rate_limit_error", 429, "rate_limit_error"),
        ("api_error", 500, "server_error"),
        ("overloaded_error", 529, "overloaded_error"),
    ];
    for (anthropic, status, openai) in cases {
        let body = format!(r#"{{"type":"error","error":{{"type":"{anthropic}","message":"m"}}}}"#);
        let status = StatusCode::from_u16(status).unwrap();
        let outcome =
            LlmClassifier::new().classify_parts(status, &HeaderMap::new(), Some(body.as_bytes()));
        let error = translate_error(status, outcome, body.as_bytes());
        assert_eq!(error.status(), status);
        assert_eq!(error.body().error.kind, openai, "{anthropic}");
        assert_eq!(error.body().error.message, "m");
    }
    let body = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#;
    let outcome = Outcome::ClientError(ClientErrorKind::ContextLengthExceeded);
    let error = translate_error(StatusCode::BAD_REQUEST, outcome, body);
    assert_eq!(
        error.body().error.code.as_deref(),
        Some("context_length_exceeded")
    );
    // A body that is not Anthropic's: the status speaks.
    let error = translate_error(
        StatusCode::BAD_GATEWAY,
        Outcome::Failure(FailureKind::Server(StatusCode::BAD_GATEWAY)),
        b"<html>",
    );
    assert_eq!(error.body().error.message, "upstream returned 502");
}

// ===== streams =====

const TWO_TOOLS: &str = concat!(
    "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\r\n\r\n",
    "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\r\n\r\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Two cities.\"}}\r\n\r\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig\"}}\r\n\r\n",
    "event: content_block_stop\r\ndata: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\n",
    "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_a\",\"name\":\"weather\",\"input\":{}}}\r\n\r\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}\r\n\r\n",
    "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_b\",\"name\":\"weather\",\"input\":{}}}\r\n\r\n",
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\\\"Rome\\\"}\"}}\r\n\r\n",
    ": a comment\r\n\r\n",
    "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":40}}\r\n\r\n",
    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
);

fn translate_stream(pieces: &[&[u8]], include_usage: bool) -> String {
    let mut translator = AnthropicStreamTranslator::with_created(include_usage, 42);
    let mut out = Vec::new();
    for piece in pieces {
        out.extend_from_slice(&translator.push(piece).unwrap());
    }
    out.extend_from_slice(&translator.finish().unwrap());
    String::from_utf8(out).unwrap()
}

#[test]
fn tool_calls_are_indexed_among_tool_calls() {
    let out = translate_stream(&[TWO_TOOLS.as_bytes()], true);
    let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let tool_deltas: Vec<Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls").cloned())
        .collect();
    assert_eq!(
        tool_deltas,
        vec![
            json!([{"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "weather", "arguments": ""}}]),
            json!([{"index": 0, "function": {"arguments": "{\"city\":\"Paris\"}"}}]),
            json!([{"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "weather", "arguments": ""}}]),
            json!([{"index": 1, "function": {"arguments": "{\"city\":\"Rome\"}"}}]),
        ]
    );
    assert!(!out.contains("Two cities"));
    assert_eq!(chunks[0]["created"], 42);
    assert_eq!(
        chunks.last().unwrap()["usage"],
        json!({"prompt_tokens": 15, "completion_tokens": 40, "total_tokens": 55, "prompt_tokens_details": {"cached_tokens": 5}})
    );
    assert_eq!(events.last(), Some(&"data: [DONE]"));
}

#[test]
fn the_usage_chunk_alone_is_written_when_asked_of_the_translator() {
    let mut translator = AnthropicStreamTranslator::with_created(false, 42).usage_chunk(true);
    let mut out = translator.push(TWO_TOOLS.as_bytes()).unwrap().to_vec();
    out.extend_from_slice(&translator.finish().unwrap());
    let out = String::from_utf8(out).unwrap();
    // One usage chunk, no `"usage": null` on the others.
    assert_eq!(out.matches(r#""usage""#).count(), 1, "{out}");
    let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
    let usage: Value =
        serde_json::from_str(events[events.len() - 2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 40);
    assert!(!translate_stream(&[TWO_TOOLS.as_bytes()], false).contains(r#""usage""#));
}

const STRUCTURED: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_s\",\"model\":\"claude\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_s\",\"name\":\"json_response\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

/// Each chunk's (delta, finish reason), in order; the usage chunk and
/// `[DONE]` left out.
fn deltas(sse: &str) -> Vec<(Value, Value)> {
    sse.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str::<Value>(data).unwrap())
        .filter_map(|chunk| {
            let choice = chunk["choices"].get(0)?.clone();
            Some((choice["delta"].clone(), choice["finish_reason"].clone()))
        })
        .collect()
}

#[test]
fn a_streamed_forced_tool_is_content_that_stops() {
    let out = translate_stream(&[STRUCTURED.as_bytes()], false);
    assert_eq!(
        deltas(&out),
        vec![
            (json!({"role": "assistant", "content": ""}), Value::Null),
            (json!({"content": "{\"city\": \"Par"}), Value::Null),
            (json!({"content": "is\"}"}), Value::Null),
            (json!({}), json!("stop")),
        ]
    );
    assert!(!out.contains("tool_calls") && !out.contains("json_response"));
    assert!(out.ends_with("data: [DONE]\n\n"));
    // Split anywhere, the same.
    let bytes: Vec<&[u8]> = STRUCTURED.as_bytes().chunks(5).collect();
    assert_eq!(translate_stream(&bytes, false), out);

    // Other tools in the same stream keep their calls, indexed among
    // themselves, and the finish says so.
    let mixed = TWO_TOOLS.replace("\"index\":2", "\"index\":3").replace(
        "event: message_delta",
        concat!(
            "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_s\",\"name\":\"json_response\",\"input\":{}}}\r\n\r\n",
            "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\r\n\r\n",
            "event: message_delta",
        ),
    );
    let out = deltas(&translate_stream(&[mixed.as_bytes()], false));
    assert!(out.contains(&(json!({"content": "{}"}), Value::Null)));
    assert!(out.contains(&(
        json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"city\":\"Rome\"}"}}]}),
        Value::Null
    )));
    assert_eq!(out.last(), Some(&(json!({}), json!("tool_calls"))));
}

#[test]
fn any_split_of_the_input_gives_the_same_output() {
    let stream = TWO_TOOLS.as_bytes();
    let whole = translate_stream(&[stream], false);
    for split in (1..stream.len()).step_by(7) {
        let (head, tail) = stream.split_at(split);
        assert_eq!(
            translate_stream(&[head, tail], false),
            whole,
            "split at {split}"
        );
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(translate_stream(&bytes, false), whole);
}

#[test]
fn an_error_after_chunks_waits_for_the_next_call() {
    let mut translator = AnthropicStreamTranslator::with_created(false, 0);
    let out = translator
        .push(concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\"}}\n\n",
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n",
        ).as_bytes())
        .unwrap();
    assert!(!out.is_empty());
    assert!(!translator.is_finished());
    let error = translator.push(b"").unwrap_err();
    assert_eq!(
        error.outcome(),
        Outcome::Failure(FailureKind::RateLimited { retry_after: None })
    );
    assert!(translator.is_finished());
    assert!(translator.push(b"data: {}\n\n").unwrap().is_empty());
    assert!(translator.finish().unwrap().is_empty());
}

#[test]
fn unreadable_events_and_early_ends_break_the_stream() {
    let mut translator = AnthropicStreamTranslator::with_created(false, 0);
    let error = translator
        .push(b"event: message_start\ndata: {not json}\n\n")
        .unwrap_err();
    assert_eq!(error.outcome(), Outcome::Failure(FailureKind::StreamBroken));

    let mut translator = AnthropicStreamTranslator::with_created(false, 0);
    assert!(
        translator
            .push(b"event: ping\ndata: {\"type\":\"ping\"}\n\n")
            .unwrap()
            .is_empty()
    );
    let error = translator.finish().unwrap_err();
    assert_eq!(error.outcome(), Outcome::Failure(FailureKind::StreamBroken));
}

#[test]
fn a_text_block_may_start_with_text() {
    let out = translate_stream(
        &[concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\"}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"Hello\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":1}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        )
        .as_bytes()],
        false,
    );
    assert!(out.contains(r#""delta":{"content":"Hello"},"logprobs":null,"finish_reason":null"#));
    assert!(out.contains(r#""delta":{},"logprobs":null,"finish_reason":"stop""#));
}

const MESSAGE_START: &[u8] = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\"}}\n\n";
const PING: &[u8] = b"event: ping\ndata: {\"type\":\"ping\"}\n\n";
const TEXT: &[u8] = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";

#[test]
fn an_endless_line_breaks_the_stream() {
    let mut translator = AnthropicStreamTranslator::with_created(false, 0).max_event_bytes(1000);
    assert!(!translator.push(MESSAGE_START).unwrap().is_empty());
    assert!(translator.push(b"data: ").unwrap().is_empty());
    let error = loop {
        match translator.push(&[b'x'; 100]) {
            Ok(out) => assert!(out.is_empty()),
            Err(error) => break error,
        }
    };
    assert_eq!(error.outcome(), Outcome::Failure(FailureKind::StreamBroken));
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert!(cause.contains("larger than 1000 bytes"), "{cause}");
    assert!(translator.is_finished());
    assert!(translator.push(b"\n\n").unwrap().is_empty());
}

#[test]
fn pings_past_the_bound_before_content_break_the_stream() {
    let limit = 10 * 1024;
    let mut translator =
        AnthropicStreamTranslator::with_created(false, 0).max_bytes_before_content(limit);
    // The role chunk of message_start is not content.
    let mut sent = MESSAGE_START.len();
    assert!(!translator.push(MESSAGE_START).unwrap().is_empty());
    let error = loop {
        sent += PING.len();
        match translator.push(PING) {
            Ok(out) => {
                assert!(out.is_empty());
                assert!(sent <= limit);
            }
            Err(error) => break error,
        }
    };
    assert!(sent > limit);
    assert_eq!(error.outcome(), Outcome::Failure(FailureKind::StreamBroken));
    assert!(translator.is_finished());

    // Once content came, pings no longer count.
    let mut translator =
        AnthropicStreamTranslator::with_created(false, 0).max_bytes_before_content(limit);
    translator.push(MESSAGE_START).unwrap();
    assert!(!translator.push(TEXT).unwrap().is_empty());
    for _ in 0..limit {
        assert!(translator.push(PING).unwrap().is_empty());
    }
}

/// An upstream body that always has another frame ready.
struct Endless(Bytes);

impl Body for Endless {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(self.0.clone()))))
    }
}

#[test]
fn a_body_fed_only_pings_yields_to_its_task() {
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    let wakes = Arc::new(Count::default());
    let waker = Waker::from(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    let translator = AnthropicStreamTranslator::with_created(false, 0);
    let mut body = pin!(
        AnthropicStreamBody::new(Endless(Bytes::from_static(PING)), translator)
            .max_bytes_before_content(1024 * 1024)
    );
    // Without the yield this poll would never return.
    assert!(body.as_mut().poll_frame(&mut cx).is_pending());
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    // Polled again and again, it ends with the bound before content.
    let mut polls = 1_usize;
    let error = loop {
        polls += 1;
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Pending => {}
            Poll::Ready(Some(Err(error))) => break error,
            Poll::Ready(other) => panic!("unexpected {:?}", other.map(|r| r.is_ok())),
        }
    };
    let error = error.downcast::<ClassifiedError>().unwrap();
    assert_eq!(error.outcome(), Outcome::Failure(FailureKind::StreamBroken));
    assert_eq!(wakes.0.load(Ordering::SeqCst), polls - 1);
    assert!(body.as_mut().poll_frame(&mut cx).is_ready());
}

/// Treats an in-stream `rate_limit_error` as the caller's problem.
struct QuotaIsTheCallers;

impl understudy_core::Classify for QuotaIsTheCallers {
    fn classify_parts(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Outcome {
        if body.is_some_and(|body| body.windows(16).any(|w| w == b"rate_limit_error")) {
            return Outcome::ClientError(ClientErrorKind::Rejected(StatusCode::TOO_MANY_REQUESTS));
        }
        LlmClassifier::new().classify_parts(status, headers, body)
    }

    fn classify_error(&self, error: &(dyn std::error::Error + 'static)) -> Outcome {
        LlmClassifier::new().classify_error(error)
    }
}

#[test]
fn an_error_event_means_what_the_services_classifier_says() {
    let event = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n";
    let mut default = AnthropicStreamTranslator::with_created(false, 0);
    assert_eq!(
        default.push(event.as_bytes()).unwrap_err().outcome(),
        Outcome::Failure(FailureKind::RateLimited { retry_after: None })
    );
    let mut custom =
        AnthropicStreamTranslator::with_created(false, 0).classifier(QuotaIsTheCallers);
    assert_eq!(
        custom.push(event.as_bytes()).unwrap_err().outcome(),
        Outcome::ClientError(ClientErrorKind::Rejected(StatusCode::TOO_MANY_REQUESTS))
    );
}
