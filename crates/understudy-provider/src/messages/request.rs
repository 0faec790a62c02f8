//! Anthropic Messages request → OpenAI chat-completions request.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::unsupported;
use crate::error::ProviderError;

/// A Messages API request, converted to the OpenAI chat-completions request
/// every target serves.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    /// The OpenAI chat-completions request body (JSON).
    pub body: Bytes,
    /// The caller asked for a stream (`"stream": true`); the body then asks
    /// for `stream_options.include_usage`, which the converted stream needs
    /// for its `message_delta` usage.
    pub stream: bool,
    /// The caller's `model` field, as it wrote it: the route's name, and the
    /// `model` of the answer converted back.
    pub model: String,
}

/// Converts an Anthropic Messages API request body into an OpenAI
/// chat-completions request.
///
/// See the [module documentation](crate::messages) for what maps to what,
/// what is refused (an [`invalid_request`](ProviderError::invalid_request)
/// error naming the field) and what is dropped. A request that is not a
/// valid Messages request (not JSON, `messages` not an array, `max_tokens`
/// missing, a field of the wrong type) is an `invalid_request` error naming
/// the field too.
///
/// # Example
///
/// ```
/// use understudy_provider::messages::to_chat;
///
/// let body = br#"{"model":"claude-sonnet-4-5","max_tokens":512,"system":"Be brief.",
///   "messages":[{"role":"user","content":"Hello"}],"stop_sequences":["END"],"stream":true}"#;
/// let chat = to_chat(body).unwrap();
/// assert_eq!(chat.model, "claude-sonnet-4-5");
/// assert!(chat.stream);
/// let json: serde_json::Value = serde_json::from_slice(&chat.body).unwrap();
/// assert_eq!(json["messages"][0], serde_json::json!({"role":"system","content":"Be brief."}));
/// assert_eq!(json["messages"][1], serde_json::json!({"role":"user","content":"Hello"}));
/// assert_eq!(json["max_tokens"], 512);
/// assert_eq!(json["stop"], serde_json::json!(["END"]));
/// assert_eq!(json["stream_options"]["include_usage"], true);
///
/// let thinking = br#"{"model":"m","max_tokens":2048,"messages":[],
///   "thinking":{"type":"enabled","budget_tokens":1024}}"#;
/// assert_eq!(
///     to_chat(thinking).unwrap_err().to_string(),
///     "`thinking` is not supported on this route's non-Anthropic targets",
/// );
/// ```
pub fn to_chat(body: &[u8]) -> Result<ChatRequest, ProviderError> {
    let request: Value = serde_json::from_slice(body).map_err(|e| {
        ProviderError::invalid_request(format!("request body is not valid JSON: {e}"))
    })?;
    let Some(request) = request.as_object() else {
        return Err(ProviderError::invalid_request(
            "request body is not a JSON object",
        ));
    };
    refuse_features(request)?;

    let model = request
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::invalid_request("`model` must be a string"))?;
    let mut out = Map::new();
    out.insert("model".to_owned(), Value::from(model));

    let mut messages = Vec::new();
    if let Some(system) = system_message(request.get("system"))? {
        messages.push(system);
    }
    let turns = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::invalid_request("`messages` must be an array"))?;
    for (index, turn) in turns.iter().enumerate() {
        convert_turn(turn, index, &mut messages)?;
    }
    out.insert("messages".to_owned(), Value::Array(messages));

    let max_tokens = request
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            ProviderError::invalid_request("`max_tokens` is required: a non-negative integer")
        })?;
    out.insert("max_tokens".to_owned(), Value::from(max_tokens));

    for key in ["temperature", "top_p"] {
        match request.get(key) {
            None | Some(Value::Null) => {}
            Some(value) if value.is_number() => {
                out.insert(key.to_owned(), value.clone());
            }
            Some(_) => {
                return Err(ProviderError::invalid_request(format!(
                    "`{key}` must be a number"
                )));
            }
        }
    }

    match request.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(stops)) if stops.iter().all(Value::is_string) => {
            if !stops.is_empty() {
                out.insert("stop".to_owned(), Value::Array(stops.clone()));
            }
        }
        Some(_) => {
            return Err(ProviderError::invalid_request(
                "`stop_sequences` must be an array of strings",
            ));
        }
    }

    let stream = match request.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(ProviderError::invalid_request("`stream` must be a boolean")),
    };
    if stream {
        out.insert("stream".to_owned(), Value::Bool(true));
        out.insert(
            "stream_options".to_owned(),
            json!({ "include_usage": true }),
        );
    }

    match request.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(metadata)) => match metadata.get("user_id") {
            None | Some(Value::Null) => {}
            Some(Value::String(user)) => {
                out.insert("user".to_owned(), Value::from(user.as_str()));
            }
            Some(_) => {
                return Err(ProviderError::invalid_request(
                    "`metadata.user_id` must be a string",
                ));
            }
        },
        Some(_) => {
            return Err(ProviderError::invalid_request(
                "`metadata` must be an object",
            ));
        }
    }

    let tools = match request.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tools)) => tools
            .iter()
            .enumerate()
            .map(|(index, tool)| convert_tool(tool, index))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(ProviderError::invalid_request("`tools` must be an array")),
    };
    let choice = convert_tool_choice(request.get("tool_choice"))?;
    if !tools.is_empty() {
        out.insert("tools".to_owned(), Value::Array(tools));
        if let Some((choice, parallel)) = choice {
            out.insert("tool_choice".to_owned(), choice);
            if !parallel {
                out.insert("parallel_tool_calls".to_owned(), Value::Bool(false));
            }
        }
    }

    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| ProviderError::invalid_request(e.to_string()))?;
    Ok(ChatRequest {
        body: Bytes::from(body),
        stream,
        model: model.to_owned(),
    })
}

/// Refuses the top-level features the OpenAI shape cannot express.
fn refuse_features(request: &Map<String, Value>) -> Result<(), ProviderError> {
    match request.get("thinking") {
        None | Some(Value::Null) => {}
        // Adaptive: the model decides whether to think, and an answer
        // without thinking is one it may give.
        Some(thinking)
            if matches!(
                thinking.get("type").and_then(Value::as_str),
                Some("disabled" | "adaptive")
            ) => {}
        Some(_) => return Err(unsupported("`thinking`")),
    }
    for field in ["container", "context_management", "output_format"] {
        if request.get(field).is_some_and(|value| !value.is_null()) {
            return Err(unsupported(&format!("`{field}`")));
        }
    }
    if request.get("mcp_servers").is_some_and(|servers| {
        !servers.is_null() && servers.as_array().is_none_or(|s| !s.is_empty())
    }) {
        return Err(unsupported("`mcp_servers`"));
    }
    if request
        .get("output_config")
        .and_then(|config| config.get("format"))
        .is_some_and(|format| !format.is_null())
    {
        return Err(unsupported("`output_config.format`"));
    }
    Ok(())
}

/// `system`, a string or text blocks, → the first `system` message; text
/// blocks join with a blank line.
fn system_message(system: Option<&Value>) -> Result<Option<Value>, ProviderError> {
    let text = match system {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (index, block) in blocks.iter().enumerate() {
                let text = match block_type(block) {
                    Some("text") => block.get("text").and_then(Value::as_str),
                    _ => None,
                };
                texts.push(text.ok_or_else(|| {
                    ProviderError::invalid_request(format!(
                        "`system[{index}]` must be a text block"
                    ))
                })?);
            }
            if texts.is_empty() {
                return Ok(None);
            }
            texts.join("\n\n")
        }
        Some(_) => {
            return Err(ProviderError::invalid_request(
                "`system` must be a string or an array of text blocks",
            ));
        }
    };
    Ok(Some(json!({ "role": "system", "content": text })))
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

/// One turn of `messages` → its OpenAI messages, appended to `out`.
fn convert_turn(turn: &Value, index: usize, out: &mut Vec<Value>) -> Result<(), ProviderError> {
    let role = turn.get("role").and_then(Value::as_str);
    let content = turn.get("content");
    match role {
        Some("user") => convert_user(content, index, out),
        Some("assistant") => {
            out.push(convert_assistant(content, index)?);
            Ok(())
        }
        _ => Err(ProviderError::invalid_request(format!(
            "`messages[{index}].role` must be `user` or `assistant`"
        ))),
    }
}

fn content_error(index: usize) -> ProviderError {
    ProviderError::invalid_request(format!(
        "`messages[{index}].content` must be a string or an array of content blocks"
    ))
}

/// A user turn: its `tool_result` blocks become `tool` messages, first;
/// the rest one `user` message (images of tool results, then the other
/// blocks in order).
fn convert_user(
    content: Option<&Value>,
    index: usize,
    out: &mut Vec<Value>,
) -> Result<(), ProviderError> {
    let blocks = match content {
        Some(Value::String(text)) => {
            out.push(json!({ "role": "user", "content": text }));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => return Err(content_error(index)),
    };
    let mut tool_images = Vec::new();
    let mut parts = Vec::new();
    for (position, block) in blocks.iter().enumerate() {
        let at = Location { index, position };
        match block_type(block) {
            Some("text") => parts.push(text_part(block, at)?),
            Some("image") => parts.push(image_part(block, at)?),
            Some("document") => parts.push(document_part(block, at)?),
            Some("tool_result") => out.push(tool_message(block, at, &mut tool_images)?),
            Some(other) => {
                return Err(unsupported(&format!(
                    "`{at}` of type `{other}` in a user turn"
                )));
            }
            None => {
                return Err(ProviderError::invalid_request(format!(
                    "`{at}.type` must be a string"
                )));
            }
        }
    }
    tool_images.append(&mut parts);
    let parts = tool_images;
    match parts.as_slice() {
        [] => {}
        [only] if block_type(only) == Some("text") => {
            out.push(json!({ "role": "user", "content": only.get("text") }));
        }
        _ => out.push(json!({ "role": "user", "content": parts })),
    }
    Ok(())
}

/// Where a block is, for errors: `messages[2].content[1]`.
#[derive(Clone, Copy)]
struct Location {
    index: usize,
    position: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "messages[{}].content[{}]", self.index, self.position)
    }
}

fn text_of(block: &Value, at: impl std::fmt::Display) -> Result<&str, ProviderError> {
    block
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::invalid_request(format!("`{at}.text` must be a string")))
}

fn text_part(block: &Value, at: Location) -> Result<Value, ProviderError> {
    Ok(json!({ "type": "text", "text": text_of(block, at)? }))
}

fn source_of(block: &Value, at: Location) -> Result<(&Map<String, Value>, &str), ProviderError> {
    let source = block
        .get("source")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ProviderError::invalid_request(format!("`{at}.source` must be an object"))
        })?;
    let kind = source.get("type").and_then(Value::as_str).ok_or_else(|| {
        ProviderError::invalid_request(format!("`{at}.source.type` must be a string"))
    })?;
    Ok((source, kind))
}

fn source_field<'a>(
    source: &'a Map<String, Value>,
    field: &str,
    at: Location,
) -> Result<&'a str, ProviderError> {
    source.get(field).and_then(Value::as_str).ok_or_else(|| {
        ProviderError::invalid_request(format!("`{at}.source.{field}` must be a string"))
    })
}

/// An `image` block → an `image_url` part: a `data:` URL from a base64
/// source, the URL itself from a `url` source.
fn image_part(block: &Value, at: Location) -> Result<Value, ProviderError> {
    let (source, kind) = source_of(block, at)?;
    let url = match kind {
        "base64" => format!(
            "data:{};base64,{}",
            source_field(source, "media_type", at)?,
            source_field(source, "data", at)?
        ),
        "url" => source_field(source, "url", at)?.to_owned(),
        other => return Err(unsupported(&format!("`{at}.source` of type `{other}`"))),
    };
    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
}

/// A `document` block → a `file` part with a `data:` URL (base64 source)
/// or a `text` part (plain-text source).
fn document_part(block: &Value, at: Location) -> Result<Value, ProviderError> {
    if block
        .get("citations")
        .and_then(|citations| citations.get("enabled"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Err(unsupported(&format!("`{at}.citations`")));
    }
    let (source, kind) = source_of(block, at)?;
    match kind {
        "base64" => {
            let media_type = source_field(source, "media_type", at)?;
            let data = source_field(source, "data", at)?;
            let filename = block
                .get("title")
                .and_then(Value::as_str)
                .filter(|title| !title.is_empty())
                .unwrap_or("document.pdf");
            Ok(json!({
                "type": "file",
                "file": {
                    "filename": filename,
                    "file_data": format!("data:{media_type};base64,{data}"),
                },
            }))
        }
        "text" => Ok(json!({ "type": "text", "text": source_field(source, "data", at)? })),
        other => Err(unsupported(&format!("`{at}.source` of type `{other}`"))),
    }
}

/// A `tool_result` block → a `tool` message. Its text blocks join with a
/// newline; its images go to `images`, sent in the user message that
/// follows (a `tool` message holds text only). `is_error: true` prefixes
/// the text with `Error: `.
fn tool_message(
    block: &Value,
    at: Location,
    images: &mut Vec<Value>,
) -> Result<Value, ProviderError> {
    let id = block
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ProviderError::invalid_request(format!("`{at}.tool_use_id` must be a string"))
        })?;
    let mut text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(inner)) => {
            let mut texts = Vec::with_capacity(inner.len());
            for (position, part) in inner.iter().enumerate() {
                let here = format!("{at}.content[{position}]");
                match block_type(part) {
                    Some("text") => texts.push(text_of(part, &here)?),
                    Some("image") => images.push(image_part(part, at).map_err(|_| {
                        ProviderError::invalid_request(format!(
                            "`{here}` must be an image with a base64 or url source"
                        ))
                    })?),
                    Some(other) => {
                        return Err(unsupported(&format!("`{here}` of type `{other}`")));
                    }
                    None => {
                        return Err(ProviderError::invalid_request(format!(
                            "`{here}.type` must be a string"
                        )));
                    }
                }
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(ProviderError::invalid_request(format!(
                "`{at}.content` must be a string or an array of content blocks"
            )));
        }
    };
    if block.get("is_error").and_then(Value::as_bool) == Some(true) {
        text = if text.is_empty() {
            "Error".to_owned()
        } else {
            format!("Error: {text}")
        };
    }
    Ok(json!({ "role": "tool", "tool_call_id": id, "content": text }))
}

/// An assistant turn → one `assistant` message: its text blocks joined,
/// its `tool_use` blocks as `tool_calls`; thinking blocks are dropped.
fn convert_assistant(content: Option<&Value>, index: usize) -> Result<Value, ProviderError> {
    let blocks = match content {
        Some(Value::String(text)) => return Ok(json!({ "role": "assistant", "content": text })),
        Some(Value::Array(blocks)) => blocks,
        _ => return Err(content_error(index)),
    };
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    for (position, block) in blocks.iter().enumerate() {
        let at = Location { index, position };
        match block_type(block) {
            Some("text") => text
                .get_or_insert_with(String::new)
                .push_str(text_of(block, at)?),
            Some("tool_use") => calls.push(tool_call(block, at)?),
            Some("thinking" | "redacted_thinking") => {}
            Some(other) => {
                return Err(unsupported(&format!(
                    "`{at}` of type `{other}` in an assistant turn"
                )));
            }
            None => {
                return Err(ProviderError::invalid_request(format!(
                    "`{at}.type` must be a string"
                )));
            }
        }
    }
    let mut message = Map::new();
    message.insert("role".to_owned(), Value::from("assistant"));
    if calls.is_empty() {
        message.insert("content".to_owned(), Value::from(text.unwrap_or_default()));
    } else {
        message.insert("content".to_owned(), text.map_or(Value::Null, Value::from));
        message.insert("tool_calls".to_owned(), Value::Array(calls));
    }
    Ok(Value::Object(message))
}

/// A `tool_use` block → a tool call, its `input` serialised as `arguments`.
fn tool_call(block: &Value, at: Location) -> Result<Value, ProviderError> {
    let field = |name: &str| {
        block.get(name).and_then(Value::as_str).ok_or_else(|| {
            ProviderError::invalid_request(format!("`{at}.{name}` must be a string"))
        })
    };
    let id = field("id")?;
    let name = field("name")?;
    let arguments = match block.get("input") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(input) => input.to_string(),
    };
    Ok(json!({
        "id": id,
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    }))
}

/// A tool of `tools` → a function tool. Server tools (any `type` other
/// than `custom`) are refused.
fn convert_tool(tool: &Value, index: usize) -> Result<Value, ProviderError> {
    match tool.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(kind)) if kind == "custom" => {}
        Some(Value::String(kind)) => {
            return Err(unsupported(&format!("`tools[{index}]` of type `{kind}`")));
        }
        Some(_) => {
            return Err(ProviderError::invalid_request(format!(
                "`tools[{index}].type` must be a string"
            )));
        }
    }
    let name = tool.get("name").and_then(Value::as_str).ok_or_else(|| {
        ProviderError::invalid_request(format!("`tools[{index}].name` must be a string"))
    })?;
    let schema = tool
        .get("input_schema")
        .filter(|schema| schema.is_object())
        .ok_or_else(|| {
            ProviderError::invalid_request(format!(
                "`tools[{index}].input_schema` must be an object"
            ))
        })?;
    let mut function = Map::new();
    function.insert("name".to_owned(), Value::from(name));
    match tool.get("description") {
        None | Some(Value::Null) => {}
        Some(Value::String(description)) => {
            function.insert("description".to_owned(), Value::from(description.as_str()));
        }
        Some(_) => {
            return Err(ProviderError::invalid_request(format!(
                "`tools[{index}].description` must be a string"
            )));
        }
    }
    function.insert("parameters".to_owned(), schema.clone());
    if let Some(strict) = tool.get("strict").and_then(Value::as_bool) {
        function.insert("strict".to_owned(), Value::Bool(strict));
    }
    Ok(json!({ "type": "function", "function": function }))
}

/// `tool_choice` → (OpenAI `tool_choice`, parallel tool calls allowed);
/// `None` when the caller set none.
fn convert_tool_choice(choice: Option<&Value>) -> Result<Option<(Value, bool)>, ProviderError> {
    let choice = match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(choice)) => choice,
        Some(_) => {
            return Err(ProviderError::invalid_request(
                "`tool_choice` must be an object",
            ));
        }
    };
    let converted = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Value::from("auto"),
        Some("any") => Value::from("required"),
        Some("none") => Value::from("none"),
        Some("tool") => {
            let name = choice.get("name").and_then(Value::as_str).ok_or_else(|| {
                ProviderError::invalid_request("`tool_choice.name` must be a string")
            })?;
            json!({ "type": "function", "function": { "name": name } })
        }
        _ => {
            return Err(ProviderError::invalid_request(
                "`tool_choice.type` must be `auto`, `any`, `tool` or `none`",
            ));
        }
    };
    let parallel = match choice.get("disable_parallel_tool_use") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(disable)) => !disable,
        Some(_) => {
            return Err(ProviderError::invalid_request(
                "`tool_choice.disable_parallel_tool_use` must be a boolean",
            ));
        }
    };
    Ok(Some((converted, parallel)))
}
