#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use understudy_core::{ClientErrorKind, FailureKind, Outcome};

use super::error::classify;
use super::schema::to_gemini;
use super::*;
use crate::dialect::Reply;

fn translate(request: &Value) -> Result<Value, ProviderError> {
    let out = translate_request(&serde_json::to_vec(request).unwrap())?;
    Ok(serde_json::from_slice(&out.body).unwrap())
}

fn refused(request: &Value) -> String {
    translate(request)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn text_system_and_turns_translate_and_merge() {
    let out = translate(&json!({
        "model": "chat",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "Again"}]},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "Thanks", "name": "alice"}
        ],
        "temperature": 0.3, "top_p": 0.9, "seed": 7,
        "presence_penalty": 0.1, "frequency_penalty": 0.2,
        "max_completion_tokens": 100, "max_tokens": 5,
        "stop": ["END", "STOP"], "n": 1, "logprobs": false,
        "user": "u-1", "store": true, "metadata": {"a": "b"}, "service_tier": "auto",
        "parallel_tool_calls": false
    }))
    .unwrap();
    assert_eq!(
        out,
        json!({
            "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use French."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "Hello"}, {"text": "Again"}]},
                {"role": "model", "parts": [{"text": "Bonjour"}]},
                {"role": "user", "parts": [{"text": "Thanks"}]}
            ],
            "generationConfig": {
                "maxOutputTokens": 100, "temperature": 0.3, "topP": 0.9, "seed": 7,
                "presencePenalty": 0.1, "frequencyPenalty": 0.2,
                "stopSequences": ["END", "STOP"]
            }
        })
    );
}

#[test]
fn no_max_output_tokens_unless_the_caller_sets_one() {
    let out = translate(
        &json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 9, "stop": "X"}),
    )
    .unwrap();
    assert_eq!(
        out["generationConfig"],
        json!({"maxOutputTokens": 9, "stopSequences": ["X"]})
    );
    let out = translate(&json!({"messages": [{"role": "user", "content": "Hi"}]})).unwrap();
    assert!(out.get("generationConfig").is_none());
}

#[test]
fn images_audio_and_files_become_inline_data() {
    let out = translate(&json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://generativelanguage.googleapis.com/v1beta/files/abc"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}}
    ]}]}))
    .unwrap();
    assert_eq!(
        out["contents"][0]["parts"],
        json!([
            {"text": "What is this?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}
        ])
    );
    let link = refused(&json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    ]}]}));
    assert!(
        link.starts_with("`messages[0].content[0].image_url.url`"),
        "{link}"
    );
    let by_id = refused(&json!({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-1"}}
    ]}]}));
    assert!(
        by_id.starts_with("`messages[0].content[0].file`"),
        "{by_id}"
    );
}

#[test]
fn tool_calls_and_results_translate_with_names_looked_up() {
    let out = translate(&json!({"messages": [
        {"role": "user", "content": "Weather in Boston and Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Boston\"}"}},
            {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "not json"}}
        ]},
        {"role": "tool", "tool_call_id": "call_a", "content": "{\"temperature\": 22}"},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "And?"}
    ]}))
    .unwrap();
    assert_eq!(
        out["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in Boston and Paris?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Boston"}}},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temperature": 22}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
                {"text": "And?"}
            ]}
        ])
    );
    let orphan = refused(&json!({"messages": [
        {"role": "tool", "tool_call_id": "call_x", "content": "1"}
    ]}));
    assert!(
        orphan.starts_with("`messages[0].tool_call_id` `call_x`"),
        "{orphan}"
    );
}

#[test]
fn tools_and_tool_choice_translate() {
    let tools = json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Weather", "strict": true,
        "parameters": {"type": "object", "additionalProperties": false, "$schema": "x",
            "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["c", "f"]}},
            "required": ["city"]}
    }}, {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}]);
    let cases = [
        (json!("auto"), json!({"mode": "AUTO"})),
        (json!("none"), json!({"mode": "NONE"})),
        (json!("required"), json!({"mode": "ANY"})),
        (
            json!({"type": "function", "function": {"name": "now"}}),
            json!({"mode": "ANY", "allowedFunctionNames": ["now"]}),
        ),
    ];
    for (choice, expected) in cases {
        let out = translate(&json!({
            "messages": [{"role": "user", "content": "Hi"}], "tools": tools, "tool_choice": choice
        }))
        .unwrap();
        assert_eq!(
            out["toolConfig"],
            json!({"functionCallingConfig": expected})
        );
        assert_eq!(
            out["tools"],
            json!([{"functionDeclarations": [
                {"name": "get_weather", "description": "Weather", "parameters": {
                    "type": "OBJECT",
                    "properties": {"city": {"type": "STRING"}, "unit": {"type": "STRING", "enum": ["c", "f"], "nullable": true}},
                    "required": ["city"]
                }},
                {"name": "now"}
            ]}])
        );
    }
    let hosted = refused(&json!({"messages": [], "tools": [{"type": "web_search"}]}));
    assert!(hosted.starts_with("`tools[0]`"), "{hosted}");
}

#[test]
fn structured_output_sets_the_mime_type_and_schema() {
    let out = translate(&json!({"messages": [{"role": "user", "content": "Hi"}],
        "response_format": {"type": "json_object"}}))
    .unwrap();
    assert_eq!(
        out["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
    let out = translate(&json!({"messages": [{"role": "user", "content": "Hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "strict": true, "schema": {
            "type": "object", "additionalProperties": false,
            "properties": {"place": {"$ref": "#/$defs/Place"}, "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["place"],
            "$defs": {"Place": {"type": "object", "properties": {"name": {"type": "string"}}}}
        }}}}))
    .unwrap();
    assert_eq!(
        out["generationConfig"],
        json!({"responseMimeType": "application/json", "responseSchema": {
            "type": "OBJECT",
            "properties": {
                "place": {"type": "OBJECT", "properties": {"name": {"type": "STRING"}}},
                "tags": {"type": "ARRAY", "items": {"type": "STRING"}}
            },
            "required": ["place"]
        }})
    );
}

#[test]
fn schemas_gemini_cannot_express_are_refused() {
    let field = "response_format.json_schema.schema";
    let recursive = json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object",
        "properties": {"next": {"$ref": "#/$defs/Node"}}}}});
    for bad in [
        recursive,
        json!({"$ref": "https://example.com/schema"}),
        json!({"type": "array", "items": [{"type": "string"}]}),
        json!({"allOf": [{"type": "string"}, {"minLength": 1}]}),
    ] {
        let error = to_gemini(&bad, field)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.starts_with("`response_format.json_schema.schema`"),
            "{error}"
        );
    }
    // Definitions that refer to each other many times over.
    let mut defs = serde_json::Map::new();
    for level in 0..12 {
        let next = json!({"$ref": format!("#/$defs/L{}", level + 1)});
        defs.insert(
            format!("L{level}"),
            json!({"type": "object", "properties": {"a": next, "b": next, "c": next}}),
        );
    }
    defs.insert("L12".to_owned(), json!({"type": "string"}));
    let wide = json!({"$ref": "#/$defs/L0", "$defs": defs});
    let error = to_gemini(&wide, field)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("more than 10000 schemas"), "{error}");
    let any = to_gemini(
        &json!({"anyOf": [{"type": "integer"}, {"type": "null"}], "const": 3}),
        field,
    )
    .unwrap();
    assert_eq!(
        any,
        json!({"type": "INTEGER", "enum": ["3"], "nullable": true})
    );
}

#[test]
fn fields_gemini_cannot_express_are_refused_by_name() {
    let base = || json!({"messages": [{"role": "user", "content": "Hi"}]});
    for (field, value) in [
        ("logprobs", json!(true)),
        ("top_logprobs", json!(2)),
        ("logit_bias", json!({"50256": -100})),
        ("audio", json!({"voice": "alloy"})),
        ("web_search_options", json!({"search_context_size": "low"})),
        ("functions", json!([{"name": "f"}])),
        ("modalities", json!(["text", "audio"])),
    ] {
        let mut request = base();
        request[field] = value;
        assert_eq!(
            refused(&request),
            format!("`{field}` is not supported by `gemini` targets")
        );
    }
    let mut request = base();
    request["n"] = json!(2);
    assert!(refused(&request).starts_with("`n` other than 1"));
    let function_role =
        refused(&json!({"messages": [{"role": "function", "name": "f", "content": "1"}]}));
    assert!(
        function_role.starts_with("`messages[0].role` `function`"),
        "{function_role}"
    );
    for (field, value) in [
        ("logprobs", json!(false)),
        ("logit_bias", json!({})),
        ("modalities", json!(["text"])),
    ] {
        let mut request = base();
        request[field] = value;
        assert!(translate(&request).is_ok(), "{field}");
    }
}

#[test]
fn the_stream_flag_and_include_usage_are_read() {
    let out = translate_request(
        br#"{"messages":[{"role":"user","content":"Hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
    )
    .unwrap();
    assert!(out.stream && out.include_usage);
    let out = translate_request(
        br#"{"messages":[{"role":"user","content":"Hi"}],"stream_options":{"include_usage":true}}"#,
    )
    .unwrap();
    assert!(!out.stream && !out.include_usage);
    assert!(translate_request(br#"{"messages":[],"stream":"yes"}"#).is_err());
    assert!(translate_request(b"[]").is_err());
}

fn completion(body: &Value) -> Value {
    let out = translate_response(&serde_json::to_vec(body).unwrap(), "gemini-asked", 42).unwrap();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn a_response_translates_text_tool_calls_and_usage() {
    let out = completion(&json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "thinking…", "thought": true},
            {"text": "Let me "}, {"text": "check."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"id": "fc-9", "name": "now"}}
        ]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7,
            "totalTokenCount": 22, "cachedContentTokenCount": 4},
        "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"
    }));
    assert_eq!(out["id"], "chatcmpl-resp-1");
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["created"], 42);
    assert_eq!(out["model"], "gemini-2.5-flash");
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Let me check.");
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([
            {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "fc-9", "type": "function", "function": {"name": "now", "arguments": "{}"}}
        ])
    );
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 7}})
    );
}

#[test]
fn stop_reasons_map() {
    for (reason, expected) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("OTHER", "stop"),
        ("LANGUAGE", "stop"),
    ] {
        let out = completion(
            &json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}),
        );
        assert_eq!(out["choices"][0]["finish_reason"], expected, "{reason}");
        // Without an id or model, the completion has its own.
        assert!(
            out["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("chatcmpl-"))
        );
        assert_eq!(out["model"], "gemini-asked");
    }
}

#[test]
fn a_blocked_prompt_is_a_filtered_completion() {
    let body = json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}});
    let out = completion(&body);
    assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(out["usage"]["prompt_tokens"], 12);
    let bytes = serde_json::to_vec(&body).unwrap();
    assert_eq!(
        classify(StatusCode::OK, &HeaderMap::new(), &bytes),
        Some(Outcome::ClientError(ClientErrorKind::ContentFiltered))
    );
    let stopped = br#"{"candidates":[{"content":{"parts":[]},"finishReason":"SAFETY"}]}"#;
    assert_eq!(
        classify(StatusCode::OK, &HeaderMap::new(), stopped),
        Some(Outcome::ClientError(ClientErrorKind::ContentFiltered))
    );
    let fine = br#"{"candidates":[{"content":{"parts":[{"text":"ok"}]},"finishReason":"SAFETY"}]}"#;
    assert_eq!(classify(StatusCode::OK, &HeaderMap::new(), fine), None);
    assert!(translate_response(b"{}", "m", 0).is_err());
}

fn google_error(code: u16, status: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"error": {"code": code, "message": message, "status": status}}))
        .unwrap()
}

#[test]
fn google_errors_classify_by_status() {
    let headers = HeaderMap::new();
    let status = |code| StatusCode::from_u16(code).unwrap();
    let retry = br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[
        {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]},
        {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.5s"}]}}"#;
    assert_eq!(
        classify(status(429), &headers, retry),
        Some(Outcome::Failure(FailureKind::RateLimited {
            retry_after: Some(std::time::Duration::from_millis(1500))
        }))
    );
    let mut with_header = HeaderMap::new();
    with_header.insert("retry-after", "3".parse().unwrap());
    assert_eq!(
        classify(
            status(429),
            &with_header,
            &google_error(429, "RESOURCE_EXHAUSTED", "slow")
        ),
        Some(Outcome::Failure(FailureKind::RateLimited {
            retry_after: Some(std::time::Duration::from_secs(3))
        }))
    );
    for (code, google, expected) in [
        (
            503,
            "UNAVAILABLE",
            Outcome::Failure(FailureKind::Overloaded),
        ),
        (
            500,
            "INTERNAL",
            Outcome::Failure(FailureKind::Server(status(500))),
        ),
        (
            504,
            "DEADLINE_EXCEEDED",
            Outcome::Failure(FailureKind::Timeout),
        ),
        (
            400,
            "INVALID_ARGUMENT",
            Outcome::ClientError(ClientErrorKind::Rejected(status(400))),
        ),
        (
            400,
            "FAILED_PRECONDITION",
            Outcome::Failure(FailureKind::Server(status(400))),
        ),
    ] {
        assert_eq!(
            classify(status(code), &headers, &google_error(code, google, "x")),
            Some(expected),
            "{google}"
        );
    }
    let too_long = google_error(
        400,
        "INVALID_ARGUMENT",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    );
    assert_eq!(
        classify(status(400), &headers, &too_long),
        Some(Outcome::ClientError(ClientErrorKind::ContextLengthExceeded))
    );
    let bad_key = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT",
        "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
    assert_eq!(
        classify(status(400), &headers, bad_key),
        Some(Outcome::Failure(FailureKind::Unauthorized(
            StatusCode::UNAUTHORIZED
        )))
    );
    assert_eq!(
        classify(status(502), &headers, b"<html>bad gateway</html>"),
        None
    );
}

#[test]
fn errors_are_shaped_with_googles_message() {
    let outcome = Outcome::ClientError(ClientErrorKind::ContextLengthExceeded);
    let error = translate_error(
        StatusCode::BAD_REQUEST,
        outcome,
        &google_error(
            400,
            "INVALID_ARGUMENT",
            "The input token count (5) exceeds the maximum",
        ),
    );
    let json: Value = serde_json::from_slice(&error.to_json()).unwrap();
    assert_eq!(
        json["error"]["message"],
        "The input token count (5) exceeds the maximum"
    );
    assert_eq!(json["error"]["type"], "invalid_request_error");
    assert_eq!(json["error"]["code"], "context_length_exceeded");
    let foreign = translate_error(
        StatusCode::BAD_GATEWAY,
        Outcome::Failure(FailureKind::Server(StatusCode::BAD_GATEWAY)),
        b"no route",
    );
    assert_eq!(
        foreign.body().error.message,
        "upstream returned 502: no route"
    );
}

fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|e| !e.is_empty() && *e != "data: [DONE]")
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect()
}

#[test]
fn a_stream_translates_text_tool_calls_finish_and_usage() {
    let mut translator = GeminiStreamTranslator::with_created("gemini-asked", true, 9);
    let input = concat!(
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Checking\"}]}}],\"responseId\":\"r-1\"}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Oslo\"}}}]},",
        "\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":4,\"totalTokenCount\":7}}\r\n\r\n",
    );
    // Byte by byte: the decoder finds the same events however they arrive.
    let mut out = Vec::new();
    for byte in input.as_bytes() {
        out.extend_from_slice(&translator.push(std::slice::from_ref(byte)).unwrap());
    }
    out.extend_from_slice(&translator.finish().unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let chunks = events(&text);
    assert_eq!(chunks.len(), 5);
    for chunk in &chunks {
        assert_eq!(chunk["id"], "chatcmpl-r-1");
        assert_eq!(chunk["created"], 9);
        assert_eq!(chunk["model"], "gemini-asked");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(
        chunks[1]["choices"][0]["delta"],
        json!({"content": "Checking"})
    );
    assert_eq!(
        chunks[2]["choices"][0]["delta"],
        json!({"tool_calls": [{"index": 0, "id": "call_0", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]})
    );
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["total_tokens"], 7);
}

#[test]
fn a_stream_without_a_finish_reason_is_broken() {
    let mut translator = GeminiStreamTranslator::new("m", false);
    let out = translator
        .push(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\n\n")
        .unwrap();
    assert!(!out.is_empty());
    let error = translator.finish().err().unwrap();
    assert_eq!(error.outcome(), Outcome::Failure(FailureKind::StreamBroken));
}

#[test]
fn a_blocked_prompt_and_error_events_end_the_stream_classified() {
    let mut translator = GeminiStreamTranslator::new("m", false);
    let error = translator
        .push(b"data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}\n\n")
        .err()
        .unwrap();
    assert_eq!(
        error.outcome(),
        Outcome::ClientError(ClientErrorKind::ContentFiltered)
    );

    let mut translator = GeminiStreamTranslator::new("m", false);
    let out = translator
        .push(concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\n\n",
            "data: {\"error\":{\"code\":503,\"message\":\"overloaded\",\"status\":\"UNAVAILABLE\"}}\n\n",
        ).as_bytes())
        .unwrap();
    assert!(!out.is_empty());
    let error = translator.push(b"").err().unwrap();
    assert_eq!(error.outcome(), Outcome::Failure(FailureKind::Overloaded));
    assert!(
        error.to_string().contains("overloaded") || format!("{error:?}").contains("overloaded")
    );
}

#[test]
fn an_event_past_the_bound_breaks_the_stream() {
    let mut translator = GeminiStreamTranslator::new("m", false).max_event_bytes(64);
    let error = translator.push(&[b'x'; 200]).err().unwrap();
    assert_eq!(error.outcome(), Outcome::Failure(FailureKind::StreamBroken));
}

#[test]
fn a_long_upstream_model_or_id_is_not_repeated_in_every_chunk() {
    // One event: a 64 KiB modelVersion and responseId, 200 tiny parts.
    // Repeating them in each of the 200 chunks would be 25 MiB of output.
    let long = "m".repeat(64 * 1024);
    let parts: Vec<String> = (0..200).map(|_| r#"{"text":"a"}"#.to_owned()).collect();
    let event = format!(
        "data: {{\"candidates\":[{{\"content\":{{\"role\":\"model\",\"parts\":[{}]}},\"finishReason\":\"STOP\"}}],\"modelVersion\":\"{long}\",\"responseId\":\"{long}\"}}\n\n",
        parts.join(",")
    );
    let mut translator = GeminiStreamTranslator::with_created("gemini-asked", false, 9);
    let mut out = translator.push(event.as_bytes()).unwrap().to_vec();
    out.extend_from_slice(&translator.finish().unwrap());
    assert!(out.len() < 4 * event.len(), "{} bytes out", out.len());
    let text = String::from_utf8(out).unwrap();
    let chunks = events(&text);
    assert_eq!(chunks[0]["model"], "gemini-asked");
    assert!(chunks[0]["id"].as_str().unwrap().len() < 100);
}

fn embed(request: &Value) -> Result<Value, ProviderError> {
    let out = GeminiDialect::new().translate_request(
        Operation::Embeddings,
        &serde_json::to_vec(request).unwrap(),
        "gemini-embedding-001",
    )?;
    assert_eq!(out.reply, Reply::Whole);
    Ok(serde_json::from_slice(&out.body).unwrap())
}

fn embed_refused(request: &Value) -> String {
    embed(request)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn embeddings_go_to_batch_embed_contents() {
    let dialect = GeminiDialect::new();
    for stream in [false, true] {
        assert_eq!(
            dialect
                .endpoint(Operation::Embeddings, "models/gemini-embedding-001", stream)
                .as_deref(),
            Some("models/gemini-embedding-001:batchEmbedContents")
        );
    }
    assert_eq!(
        dialect.endpoint(Operation::Messages, "gemini-2.5-flash", false),
        None
    );
}

#[test]
fn a_single_string_is_one_embed_request() {
    let out = embed(
        &json!({"model": "embed", "input": "The food was delicious", "user": "u-1",
        "encoding_format": "float"}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"requests": [{
            "model": "models/gemini-embedding-001",
            "content": {"parts": [{"text": "The food was delicious"}]}
        }]})
    );
}

#[test]
fn an_array_is_one_request_per_string_in_order_with_dimensions() {
    let out = embed(&json!({"model": "embed", "input": ["one", "two", "three"],
        "dimensions": 768, "encoding_format": "base64"}))
    .unwrap();
    let requests = out["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 3);
    for (request, text) in requests.iter().zip(["one", "two", "three"]) {
        assert_eq!(
            request,
            &json!({"model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": text}]},
                "outputDimensionality": 768})
        );
    }
}

#[test]
fn tokens_empty_inputs_and_unknown_formats_are_refused() {
    let tokens = "`input` as tokens is not supported by `gemini` targets: send text";
    assert_eq!(embed_refused(&json!({"input": [1234, 5678]})), tokens);
    assert_eq!(embed_refused(&json!({"input": [[1234], [5678]]})), tokens);
    assert_eq!(embed_refused(&json!({"input": 42})), tokens);
    assert_eq!(
        embed_refused(&json!({"input": []})),
        "`input` must not be empty"
    );
    assert_eq!(
        embed_refused(&json!({"input": ""})),
        "`input` must not be empty"
    );
    assert_eq!(
        embed_refused(&json!({"input": ["a", ""]})),
        "`input[1]` must not be empty"
    );
    assert_eq!(
        embed_refused(&json!({"input": ["a", {"text": "b"}]})),
        "`input[1]` must be a string"
    );
    assert_eq!(embed_refused(&json!({"model": "e"})), "`input` is required");
    assert_eq!(
        embed_refused(&json!({"input": "a", "encoding_format": "int8"})),
        "`encoding_format` must be `float` or `base64`"
    );
    for dimensions in [json!(0), json!(-3), json!(1.5), json!("256")] {
        assert_eq!(
            embed_refused(&json!({"input": "a", "dimensions": dimensions})),
            "`dimensions` must be a positive integer"
        );
    }
    assert!(embed_refused(&json!(["a"])).contains("not a JSON object"));
}

#[test]
fn an_embeddings_answer_becomes_an_openai_list() {
    let context = AnswerContext::new(Operation::Embeddings, "gemini-embedding-001");
    let body = Bytes::from_static(
        br#"{"embeddings": [{"values": [0.0131, -0.0087, -0.0467]}, {"values": [0.5, 1]}]}"#,
    );
    let out = GeminiDialect::new()
        .translate_response(body, &context)
        .unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        out,
        json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": [0.0131, -0.0087, -0.0467]},
                {"object": "embedding", "index": 1, "embedding": [0.5, 1]}
            ],
            "model": "gemini-embedding-001",
            "usage": {"prompt_tokens": 0, "total_tokens": 0}
        })
    );
}

#[test]
fn an_embeddings_answer_without_vectors_is_invalid() {
    let context = AnswerContext::new(Operation::Embeddings, "gemini-embedding-001");
    for body in [
        &br#"{"embeddings": []}"#[..],
        b"{}",
        br#"{"embeddings": [{"values": ["x"]}]}"#,
        br#"{"embeddings": [{}]}"#,
        br#"{"candidates": []}"#,
    ] {
        let error = GeminiDialect::new()
            .translate_response(Bytes::copy_from_slice(body), &context)
            .unwrap_err();
        assert!(
            matches!(error, ProviderError::InvalidResponse { .. }),
            "{error:?}"
        );
    }
}
