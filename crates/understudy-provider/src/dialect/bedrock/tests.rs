use std::time::{Duration, UNIX_EPOCH};

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use http::HeaderMap;
use serde_json::{Value, json};
use understudy_core::{ClientErrorKind, FailureKind, OutcomeKind};

use super::*;

fn dialect() -> BedrockDialect {
    BedrockDialect::new(
        "us-east-1",
        AwsCredentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
        ),
    )
    .unwrap()
}

fn translate(request: &Value) -> Value {
    let out = translate_request(request.to_string().as_bytes()).unwrap();
    serde_json::from_slice(&out.body).unwrap()
}

fn refused(request: &Value) -> String {
    translate_request(request.to_string().as_bytes())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

// ===== Endpoints and signing =====

#[test]
fn the_model_id_is_one_encoded_path_segment() {
    let bedrock = dialect();
    let path = |model: &str, stream: bool| {
        bedrock
            .endpoint(Operation::ChatCompletions, model, stream)
            .map(Cow::into_owned)
    };
    assert_eq!(
        path("anthropic.claude-3-haiku-20240307-v1:0", false).as_deref(),
        Some("model/anthropic.claude-3-haiku-20240307-v1%3A0/converse")
    );
    assert_eq!(
        path(
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            true
        )
        .as_deref(),
        Some(
            "model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse-stream"
        )
    );
    assert_eq!(bedrock.probe_path(), None);
    assert!(
        bedrock
            .auth_headers(&ApiKey::new("unused"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn regions_name_hosts_only() {
    let credentials = AwsCredentials::new("AKID", "secret", None);
    for bad in [
        "",
        "us-east-1.evil.com",
        "us east",
        "US-EAST-1",
        "-x",
        "a/b",
    ] {
        assert!(
            BedrockDialect::new(bad, credentials.clone()).is_err(),
            "{bad}"
        );
    }
    assert_eq!(
        BedrockDialect::new("eu-central-2", credentials)
            .unwrap()
            .region(),
        "eu-central-2"
    );
}

#[test]
fn signing_adds_sensitive_headers_and_never_the_secret() {
    let credentials = AwsCredentials::new(
        "ASIAEXAMPLE",
        "secret-key-value",
        Some("session-token-value".to_owned()),
    );
    let bedrock = BedrockDialect::new("us-west-2", credentials).unwrap();
    let uri: Uri = "https://bedrock-runtime.us-west-2.amazonaws.com/model/m%3A0/converse"
        .parse()
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("authorization", "Bearer stale".parse().unwrap());
    let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    bedrock
        .sign_at(&Method::POST, &uri, &mut headers, b"{}", time)
        .unwrap();
    let auth = headers.get("authorization").unwrap();
    assert!(auth.is_sensitive());
    let auth = auth.to_str().unwrap();
    assert!(auth.starts_with(
        "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20231114/us-west-2/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
    ));
    assert_eq!(headers.get("x-amz-date").unwrap(), "20231114T221320Z");
    let token = headers.get("x-amz-security-token").unwrap();
    assert_eq!(token, "session-token-value");
    assert!(token.is_sensitive());
    for value in headers.values() {
        assert!(!value.to_str().unwrap().contains("secret-key-value"));
    }
    assert!(!format!("{bedrock:?}").contains("secret-key-value"));
    assert!(!format!("{bedrock:?}").contains("session-token-value"));

    // The same request at the same time signs the same; another body not.
    let mut again = HeaderMap::new();
    again.insert("content-type", "application/json".parse().unwrap());
    bedrock
        .sign_at(&Method::POST, &uri, &mut again, b"{}", time)
        .unwrap();
    assert_eq!(again.get("authorization"), headers.get("authorization"));
    bedrock
        .sign_at(&Method::POST, &uri, &mut again, b"{ }", time)
        .unwrap();
    assert_ne!(again.get("authorization"), headers.get("authorization"));

    let relative: Uri = "/model/m/converse".parse().unwrap();
    assert!(
        bedrock
            .sign(&Method::POST, &relative, &mut HeaderMap::new(), b"")
            .is_err()
    );
}

// ===== Requests =====

#[test]
fn text_system_and_turns_translate() {
    let out = translate(&json!({
        "model": "chat",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
            {"role": "user", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "Again"}], "name": "alice"},
            {"role": "assistant", "content": "Hi!"}
        ],
        "max_completion_tokens": 50,
        "max_tokens": 10,
        "temperature": 1.6,
        "top_p": 0.5,
        "stop": ["END", "STOP"],
        "seed": 3,
        "presence_penalty": 0.1,
        "user": "u-1",
        "x_unknown": true
    }));
    assert_eq!(
        out,
        json!({
            "system": [{"text": "Be brief."}, {"text": "Use metric."}],
            "messages": [
                {"role": "user", "content": [{"text": "Hello"}, {"text": "Again"}]},
                {"role": "assistant", "content": [{"text": "Hi!"}]}
            ],
            "inferenceConfig": {"maxTokens": 50, "temperature": 1.0, "topP": 0.5, "stopSequences": ["END", "STOP"]}
        })
    );
}

#[test]
fn streams_ask_for_converse_stream() {
    let bedrock = dialect();
    let upstream = bedrock
        .translate_request(
            Operation::ChatCompletions,
            br#"{"messages":[{"role":"user","content":"Hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
            "m",
        )
        .unwrap();
    assert_eq!(
        upstream.reply,
        crate::dialect::Reply::Stream {
            include_usage: true
        }
    );
    let body: Value = serde_json::from_slice(&upstream.body).unwrap();
    assert!(body.get("stream").is_none());
}

#[test]
fn images_are_data_urls_of_four_formats() {
    let out = translate(&json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}
    ]}]}));
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"text": "What is this?"},
            {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
            {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}}
        ])
    );
    let url = refused(&json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    ]}]}));
    assert!(
        url.starts_with("`messages[0].content[0].image_url.url` other than a base64 `data:` URL"),
        "{url}"
    );
    let tiff = refused(&json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}
    ]}]}));
    assert!(tiff.contains("image/tiff"), "{tiff}");
    let audio = refused(&json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi"},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    ]}]}));
    assert!(audio.starts_with("`messages[0].content[1]`"), "{audio}");
}

#[test]
fn tool_calls_and_results_translate() {
    let out = translate(&json!({
        "messages": [
            {"role": "user", "content": "Weather in Paris and Boston?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "not json"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "22F"}]},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [{"type": "function", "function": {
            "name": "weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}
        }}, {"type": "function", "function": {"name": "now"}}],
        "tool_choice": "auto",
        "parallel_tool_calls": false
    }));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"text": "Weather in Paris and Boston?"}]},
            {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "call_1", "name": "weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "call_2", "name": "weather", "input": {}}}
            ]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C"}]}},
                {"toolResult": {"toolUseId": "call_2", "content": [{"text": "22F"}]}},
                {"text": "Thanks"}
            ]}
        ])
    );
    assert_eq!(
        out["toolConfig"],
        json!({
            "tools": [
                {"toolSpec": {"name": "weather", "description": "Weather for a city",
                    "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
                {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
            ],
            "toolChoice": {"auto": {}}
        })
    );
}

#[test]
fn tool_choice_maps_and_none_withholds_the_tools() {
    let tools = json!([{"type": "function", "function": {"name": "lookup"}}]);
    let choice = |choice: Value| {
        translate(&json!({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice}))
            ["toolConfig"]
            .clone()
    };
    assert_eq!(choice(json!("required"))["toolChoice"], json!({"any": {}}));
    assert_eq!(
        choice(json!({"type": "function", "function": {"name": "lookup"}}))["toolChoice"],
        json!({"tool": {"name": "lookup"}})
    );
    assert!(choice(Value::Null).get("toolChoice").is_none());
    assert_eq!(choice(json!("none")), Value::Null);

    // With tool blocks in the conversation, Bedrock needs the tools.
    let error = refused(&json!({
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "done"}
        ],
        "tools": tools, "tool_choice": "none"
    }));
    assert!(error.starts_with("`tool_choice` `none`"), "{error}");
    let error = refused(&json!({"messages": [], "tools": [{"type": "web_search"}]}));
    assert!(error.starts_with("`tools[0]`"), "{error}");
    let error = refused(&json!({"messages": [], "tools": [
        {"type": "function", "function": {"name": FORCED_TOOL_NAME}}
    ]}));
    assert!(error.contains("reserved"), "{error}");
}

#[test]
fn structured_output_is_a_forced_tool() {
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let out = translate(&json!({
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "capital", "schema": schema, "strict": true}}
    }));
    assert_eq!(
        out["toolConfig"]["tools"][0]["toolSpec"]["name"],
        FORCED_TOOL_NAME
    );
    assert_eq!(
        out["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
        schema
    );
    assert_eq!(
        out["toolConfig"]["toolChoice"],
        json!({"tool": {"name": FORCED_TOOL_NAME}})
    );
    let object = translate(&json!({
        "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_object"}
    }));
    assert_eq!(
        object["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
        json!({"type": "object"})
    );
    let clash = refused(&json!({
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "lookup"}}],
        "tool_choice": "required",
        "response_format": {"type": "json_object"}
    }));
    assert!(clash.starts_with("`response_format`"), "{clash}");
}

#[test]
fn fields_bedrock_cannot_express_are_refused_by_name() {
    let base = |field: &str, value: Value| {
        let mut request = json!({"messages": [{"role": "user", "content": "x"}]});
        request[field] = value;
        refused(&request)
    };
    for (field, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("audio", json!({"voice": "alloy", "format": "wav"})),
        ("modalities", json!(["text", "audio"])),
        ("functions", json!([{"name": "f"}])),
        ("function_call", json!("auto")),
        ("logit_bias", json!({"50256": -100})),
        ("web_search_options", json!({})),
    ] {
        let error = base(field, value);
        assert!(error.starts_with(&format!("`{field}`")), "{field}: {error}");
        assert!(
            error.contains("is not supported by `bedrock` targets"),
            "{error}"
        );
    }
    assert_eq!(base("n", json!(1)), "");
    assert_eq!(base("logprobs", json!(false)), "");
    assert!(base("stop", json!([1])).starts_with("`stop`"));
    assert!(base("max_tokens", json!(-1)).starts_with("`max_tokens`"));
    assert!(refused(&json!({"messages": "x"})).starts_with("`messages`"));
    assert!(
        refused(&json!({"messages": [{"role": "function", "content": "x"}]}))
            .starts_with("`messages[0].role`")
    );
}

// ===== Responses =====

fn respond(body: &Value) -> Value {
    let out = translate_response(body.to_string().as_bytes(), "m:0", "chatcmpl-x", 7).unwrap();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn responses_translate_text_tools_and_usage() {
    let out = respond(&json!({
        "output": {"message": {"role": "assistant", "content": [
            {"text": "Let me check. "},
            {"reasoningContent": {"reasoningText": {"text": "hmm"}}},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "weather", "input": {"city": "Paris"}}},
            {"text": "One moment."}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 27, "cacheReadInputTokens": 8, "cacheWriteInputTokens": 4},
        "metrics": {"latencyMs": 100}
    }));
    assert_eq!(out["id"], "chatcmpl-x");
    assert_eq!(out["model"], "m:0");
    assert_eq!(out["created"], 7);
    let choice = &out["choices"][0];
    assert_eq!(choice["message"]["content"], "Let me check. One moment.");
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "tooluse_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}])
    );
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 22, "completion_tokens": 5, "total_tokens": 27, "prompt_tokens_details": {"cached_tokens": 8}})
    );
}

#[test]
fn stop_reasons_map() {
    for (reason, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("content_filtered", "content_filter"),
        ("guardrail_intervened", "content_filter"),
    ] {
        let out = respond(
            &json!({"output": {"message": {"content": [{"text": "x"}]}}, "stopReason": reason}),
        );
        assert_eq!(out["choices"][0]["finish_reason"], finish, "{reason}");
        assert!(out["choices"][0]["message"].get("tool_calls").is_none());
    }
    let empty = respond(
        &json!({"output": {"message": {"content": []}}, "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 0}}),
    );
    assert_eq!(empty["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(empty["usage"]["total_tokens"], 1);
    assert!(translate_response(b"[]", "m", "id", 0).is_err());
}

#[test]
fn the_forced_tool_input_is_the_answer() {
    let out = respond(&json!({
        "output": {"message": {"content": [
            {"text": "Here you go."},
            {"toolUse": {"toolUseId": "t", "name": FORCED_TOOL_NAME, "input": {"city": "Paris"}}}
        ]}},
        "stopReason": "tool_use"
    }));
    let choice = &out["choices"][0];
    assert_eq!(choice["message"]["content"], "{\"city\":\"Paris\"}");
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(choice["finish_reason"], "stop");
}

#[test]
fn a_filtered_answer_that_said_nothing_is_content_filtered() {
    let bedrock = dialect();
    let hint = |body: &Value| {
        bedrock.classify_hint(
            StatusCode::OK,
            &HeaderMap::new(),
            body.to_string().as_bytes(),
        )
    };
    assert_eq!(
        hint(&json!({"output": {"message": {"content": []}}, "stopReason": "content_filtered"})),
        Some(Outcome::ClientError(ClientErrorKind::ContentFiltered))
    );
    assert_eq!(
        hint(
            &json!({"output": {"message": {"content": [{"text": "Once"}]}}, "stopReason": "content_filtered"})
        ),
        None
    );
    assert_eq!(
        hint(&json!({"output": {"message": {"content": []}}, "stopReason": "end_turn"})),
        None
    );
}

// ===== Errors =====

fn error_headers(name: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amzn-errortype",
        format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/")
            .parse()
            .unwrap(),
    );
    headers
}

#[test]
fn errors_classify_by_their_name() {
    let classify = |status: u16, name: &str, message: &str| {
        classify_error(
            StatusCode::from_u16(status).unwrap(),
            &error_headers(name),
            json!({ "message": message }).to_string().as_bytes(),
        )
        .map(|outcome| outcome.kind())
    };
    assert_eq!(
        classify(429, "ThrottlingException", "Too many requests"),
        Some(OutcomeKind::RateLimited)
    );
    assert_eq!(
        classify(503, "ServiceUnavailableException", "busy"),
        Some(OutcomeKind::Overloaded)
    );
    assert_eq!(
        classify(429, "ModelNotReadyException", "not ready"),
        Some(OutcomeKind::Overloaded)
    );
    assert_eq!(
        classify(400, "ValidationException", "Malformed input request"),
        Some(OutcomeKind::ClientError)
    );
    for too_long in [
        "Input is too long for requested model.",
        "The model returned the following errors: prompt is too long: 250000 tokens > 200000 maximum",
        "Too many input tokens. Max input tokens: 8192, request input token count: 9000",
    ] {
        assert_eq!(
            classify(400, "ValidationException", too_long),
            Some(OutcomeKind::ContextLengthExceeded),
            "{too_long}"
        );
    }
    assert_eq!(
        classify(408, "ModelTimeoutException", "timeout"),
        Some(OutcomeKind::Timeout)
    );
    assert_eq!(
        classify_error(
            StatusCode::from_u16(424).unwrap(),
            &error_headers("ModelErrorException"),
            b"{}"
        ),
        Some(Outcome::Failure(FailureKind::Server(
            StatusCode::from_u16(424).unwrap()
        )))
    );
    assert_eq!(
        classify(500, "InternalServerException", "oops"),
        Some(OutcomeKind::Server)
    );
    assert_eq!(classify(404, "ResourceNotFoundException", "no model"), None);
    // The body's __type names it when the header does not.
    assert_eq!(
        classify_error(
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            br#"{"__type":"com.amazon.bedrock#ThrottlingException","message":"slow"}"#
        )
        .map(|outcome| outcome.kind()),
        Some(OutcomeKind::RateLimited)
    );
    // A retry-after is kept.
    let mut headers = error_headers("ThrottlingException");
    headers.insert("retry-after", "3".parse().unwrap());
    assert_eq!(
        classify_error(StatusCode::TOO_MANY_REQUESTS, &headers, b"{}")
            .and_then(|outcome| outcome.retry_after()),
        Some(Duration::from_secs(3))
    );
}

#[test]
fn errors_are_shaped_with_bedrocks_message() {
    let bedrock = dialect();
    let body = br#"{"message":"Too many requests, please wait before trying again."}"#;
    let shaped = bedrock.shape_error(
        StatusCode::TOO_MANY_REQUESTS,
        &error_headers("ThrottlingException"),
        Outcome::Failure(FailureKind::RateLimited { retry_after: None }),
        body,
    );
    let ShapedError::Rewritten(error) = shaped else {
        panic!("not rewritten");
    };
    let json: Value = serde_json::from_slice(&error.to_json()).unwrap();
    assert_eq!(
        json["error"]["message"],
        "Too many requests, please wait before trying again."
    );
    assert_eq!(json["error"]["type"], "rate_limit_error");
    assert_eq!(json["error"]["code"], "rate_limit_exceeded");
    assert_eq!(error.status(), StatusCode::TOO_MANY_REQUESTS);
}

// ===== Streams =====

fn frame(message_type: &str, kind_header: &str, kind: &str, payload: &Value) -> Vec<u8> {
    let message = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(message_type.to_owned().into()),
        ))
        .add_header(Header::new(
            kind_header.to_owned(),
            HeaderValue::String(kind.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

fn event(kind: &str, payload: &Value) -> Vec<u8> {
    frame("event", ":event-type", kind, payload)
}

fn exception(kind: &str, message: &str) -> Vec<u8> {
    frame(
        "exception",
        ":exception-type",
        kind,
        &json!({ "message": message }),
    )
}

fn translator(include_usage: bool) -> BedrockStreamTranslator {
    BedrockStreamTranslator::new("chatcmpl-s".to_owned(), "m:0".to_owned(), 9, include_usage)
}

/// The JSON chunks of an SSE body, and whether it ended with `[DONE]`.
fn chunks(sse: &[u8]) -> (Vec<Value>, bool) {
    let text = std::str::from_utf8(sse).unwrap();
    let mut done = false;
    let mut out = Vec::new();
    for data in text.split("\n\n").filter(|e| !e.is_empty()) {
        let data = data.strip_prefix("data: ").unwrap();
        if data == "[DONE]" {
            done = true;
        } else {
            out.push(serde_json::from_str(data).unwrap());
        }
    }
    (out, done)
}

fn text_stream() -> Vec<u8> {
    let mut input = event("messageStart", &json!({"role": "assistant"}));
    input.extend(event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}, "p": "abc"}),
    ));
    input.extend(event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": "lo"}}),
    ));
    input.extend(event("contentBlockStop", &json!({"contentBlockIndex": 0})));
    input.extend(event("messageStop", &json!({"stopReason": "end_turn"})));
    input.extend(event(
        "metadata",
        &json!({"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}, "metrics": {"latencyMs": 10}}),
    ));
    input
}

#[test]
fn a_text_stream_translates_byte_by_byte() {
    let mut translator = translator(true);
    let mut out = Vec::new();
    for byte in text_stream() {
        out.extend_from_slice(&translator.push(&[byte]).unwrap());
    }
    assert!(translator.is_finished());
    assert!(translator.finish().unwrap().is_empty());
    let (chunks, done) = chunks(&out);
    assert!(done);
    assert_eq!(chunks.len(), 5);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks[0]["id"], "chatcmpl-s");
    assert_eq!(chunks[0]["model"], "m:0");
    assert_eq!(chunks[0]["usage"], Value::Null);
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hel");
    assert_eq!(chunks[2]["choices"][0]["delta"]["content"], "lo");
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(
        chunks[4]["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
    );
}

#[test]
fn nothing_but_usage_follows_the_finish_reason() {
    let mut input = event("messageStart", &json!({"role": "assistant"}));
    input.extend(event("messageStop", &json!({"stopReason": "end_turn"})));
    input.extend(event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": "late"}}),
    ));
    input.extend(event(
        "contentBlockStart",
        &json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t", "name": "f"}}}),
    ));
    input.extend(event("messageStop", &json!({"stopReason": "max_tokens"})));
    input.extend(event(
        "metadata",
        &json!({"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}}),
    ));
    let mut translator = translator(true);
    let out = translator.push(&input).unwrap();
    assert!(translator.is_finished());
    let (chunks, done) = chunks(&out);
    assert!(done);
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[2]["choices"], json!([]));
    assert_eq!(chunks[2]["usage"]["total_tokens"], 7);
}

#[test]
fn a_tool_call_streams_as_openai_deltas() {
    let mut input = event("messageStart", &json!({"role": "assistant"}));
    input.extend(event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": "Checking."}}),
    ));
    input.extend(event(
        "contentBlockStart",
        &json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_9", "name": "weather"}}}),
    ));
    input.extend(event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}}),
    ));
    input.extend(event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
    ));
    input.extend(event("contentBlockStop", &json!({"contentBlockIndex": 1})));
    input.extend(event("messageStop", &json!({"stopReason": "tool_use"})));
    let mut translator = translator(false);
    let mut out = translator.push(&input).unwrap().to_vec();
    // No metadata: the end of the body ends the stream after messageStop.
    out.extend_from_slice(&translator.finish().unwrap());
    let (chunks, done) = chunks(&out);
    assert!(done);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(deltas[1]["content"], "Checking.");
    assert_eq!(
        deltas[2]["tool_calls"],
        json!([{"index": 0, "id": "tooluse_9", "type": "function", "function": {"name": "weather", "arguments": ""}}])
    );
    assert_eq!(
        deltas[3]["tool_calls"],
        json!([{"index": 0, "function": {"arguments": "{\"city\":"}}])
    );
    assert_eq!(
        deltas[4]["tool_calls"],
        json!([{"index": 0, "function": {"arguments": "\"Paris\"}"}}])
    );
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn a_structured_stream_is_content() {
    let mut input = event("messageStart", &json!({"role": "assistant"}));
    input.extend(event(
        "contentBlockStart",
        &json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t", "name": FORCED_TOOL_NAME}}}),
    ));
    for part in ["{\"city\"", ":\"Paris\"}"] {
        input.extend(event(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": part}}}),
        ));
    }
    input.extend(event("messageStop", &json!({"stopReason": "tool_use"})));
    input.extend(event("metadata", &json!({"usage": {}})));
    let mut translator = translator(false);
    let (chunks, done) = chunks(&translator.push(&input).unwrap());
    assert!(done);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "{\"city\":\"Paris\"}");
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["delta"].get("tool_calls").is_none())
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

fn outcome_of_error(error: &understudy_core::ClassifiedError) -> Outcome {
    error.outcome()
}

/// What the error's source says.
fn source_text(error: &understudy_core::ClassifiedError) -> String {
    std::error::Error::source(error)
        .map(ToString::to_string)
        .unwrap_or_default()
}

#[test]
fn exception_frames_are_classified_errors() {
    for (name, message, expected) in [
        ("throttlingException", "slow down", OutcomeKind::RateLimited),
        (
            "serviceUnavailableException",
            "busy",
            OutcomeKind::Overloaded,
        ),
        ("modelNotReadyException", "warming", OutcomeKind::Overloaded),
        ("internalServerException", "oops", OutcomeKind::Server),
        (
            "modelStreamErrorException",
            "broke",
            OutcomeKind::StreamBroken,
        ),
        (
            "validationException",
            "Input is too long for requested model.",
            OutcomeKind::ContextLengthExceeded,
        ),
        ("validationException", "bad", OutcomeKind::ClientError),
        ("somethingNewException", "?", OutcomeKind::StreamBroken),
    ] {
        let mut translator = translator(false);
        let error = translator.push(&exception(name, message)).unwrap_err();
        assert_eq!(outcome_of_error(&error).kind(), expected, "{name}");
        assert!(source_text(&error).contains(name), "{name}");
        assert!(translator.is_finished());
        assert!(translator.push(&text_stream()).unwrap().is_empty());
    }
    // After content, chunks come first and the error next.
    let mut input = event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
    );
    input.extend(exception("throttlingException", "slow"));
    let mut before = translator(false);
    let (chunks, done) = chunks(&before.push(&input).unwrap());
    assert!(!done);
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        outcome_of_error(&before.take_error().unwrap()).kind(),
        OutcomeKind::RateLimited
    );
    // An `error` frame names its code in headers.
    let error_frame = {
        let message = Message::new(Vec::<u8>::new())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("error".into()),
            ))
            .add_header(Header::new(
                ":error-code",
                HeaderValue::String("InternalFailure".into()),
            ))
            .add_header(Header::new(
                ":error-message",
                HeaderValue::String("failed".into()),
            ));
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    };
    let error = translator(false).push(&error_frame).unwrap_err();
    assert_eq!(outcome_of_error(&error).kind(), OutcomeKind::StreamBroken);
}

#[test]
fn corrupt_cut_and_oversized_streams_are_broken() {
    // A flipped payload byte fails the message CRC.
    let mut corrupt = event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": "Hello"}}),
    );
    let at = corrupt.len() - 8;
    corrupt[at] ^= 0x01;
    let error = translator(false).push(&corrupt).unwrap_err();
    assert_eq!(error.outcome().kind(), OutcomeKind::StreamBroken);

    // A flipped length fails the prelude CRC.
    let mut prelude = event("messageStart", &json!({"role": "assistant"}));
    prelude[3] ^= 0x01;
    let mut translator_b = translator(false);
    let result = translator_b
        .push(&prelude)
        .and_then(|_| translator_b.finish());
    assert_eq!(
        result.unwrap_err().outcome().kind(),
        OutcomeKind::StreamBroken
    );

    // Cut between frames, before messageStop.
    let stream = text_stream();
    let start = event("messageStart", &json!({"role": "assistant"}));
    let mut cut = translator(false);
    assert!(!cut.push(&start).unwrap().is_empty());
    assert_eq!(
        cut.finish().unwrap_err().outcome().kind(),
        OutcomeKind::StreamBroken
    );
    // Cut inside a frame.
    let mut cut = translator(false);
    let _ = cut.push(&stream[..start.len() + 10]).unwrap();
    assert_eq!(
        cut.finish().unwrap_err().outcome().kind(),
        OutcomeKind::StreamBroken
    );

    // A frame longer than the bound fails as soon as its length is read.
    let big = event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": "x".repeat(4096)}}),
    );
    let mut bounded = translator(false).max_event_bytes(1024);
    let error = bounded.push(&big[..4]).unwrap_err();
    assert_eq!(error.outcome().kind(), OutcomeKind::StreamBroken);
    assert!(source_text(&error).contains("over the bound"));
    let mut roomy = translator(false).max_event_bytes(8192);
    assert!(roomy.push(&big).is_ok());
}

#[test]
fn the_dialect_streams_through_its_body() {
    use http_body_util::BodyExt;

    let bedrock = dialect();
    let context = AnswerContext::new(Operation::ChatCompletions, "m:0").with_include_usage(true);
    let upstream = ResponseBody::full(Bytes::from(text_stream()));
    let body = bedrock.translate_stream(upstream, &context);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = runtime.block_on(body.collect()).unwrap().to_bytes();
    let (chunks, done) = chunks(&bytes);
    assert!(done);
    assert!(chunks[0]["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 7);
}
