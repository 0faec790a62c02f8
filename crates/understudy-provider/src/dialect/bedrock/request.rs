//! OpenAI chat-completions request → Bedrock Converse request.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::dialect::openai_request::{
    ToolCall, ToolChoice, content, content_error, image_url, include_usage, max_tokens, messages,
    parse_data_url, read_object, role, stop_sequences, stream, tool_call_id, tool_calls, tools,
    unexpected_role,
};
use crate::dialect::structured::{FORCED_TOOL_NAME, ResponseFormat};
use crate::dialect::unsupported::{OPENAI_ONLY, refuse_fields, unsupported};
use crate::error::ProviderError;

/// The dialect's name, in what it refuses.
const NAME: &str = "bedrock";

/// A caller's request, translated for the Converse API.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TranslatedRequest {
    /// The Converse request body (the model id travels in the path).
    pub body: Bytes,
    /// The caller asked for a stream (`"stream": true`): the request goes
    /// to `/converse-stream`.
    pub stream: bool,
    /// The caller asked for usage in the stream
    /// (`"stream_options": {"include_usage": true}`).
    pub include_usage: bool,
}

/// Translates an OpenAI chat-completions request body into a Bedrock
/// Converse request body.
///
/// See the [module documentation](crate::dialect::bedrock) for what maps
/// to what, what is refused and what is dropped. A refused field is an
/// [`InvalidRequest`](ProviderError::InvalidRequest) error naming it.
///
/// # Example
///
/// ```
/// use understudy_provider::bedrock::translate_request;
///
/// let body = br#"{"model":"chat","messages":[
///     {"role":"system","content":"Be brief."},
///     {"role":"user","content":"Hello"}],
///   "stop":"END","temperature":0.2,"max_tokens":100}"#;
/// let out = translate_request(body).unwrap();
/// let json: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
/// assert_eq!(json["system"], serde_json::json!([{"text": "Be brief."}]));
/// assert_eq!(json["messages"][0], serde_json::json!({"role": "user", "content": [{"text": "Hello"}]}));
/// assert_eq!(json["inferenceConfig"], serde_json::json!({"maxTokens": 100, "temperature": 0.2, "stopSequences": ["END"]}));
/// assert!(!out.stream);
/// ```
pub fn translate_request(body: &[u8]) -> Result<TranslatedRequest, ProviderError> {
    let request = read_object(body)?;
    let request = &request;
    refuse_fields(request, NAME, OPENAI_ONLY)?;

    let mut out = Map::new();
    let (system, turns, has_tool_blocks) = translate_messages(messages(request)?)?;
    if !system.is_empty() {
        out.insert("system".to_owned(), Value::Array(system));
    }
    out.insert("messages".to_owned(), Value::Array(turns));

    let inference = inference_config(request)?;
    if !inference.is_empty() {
        out.insert("inferenceConfig".to_owned(), Value::Object(inference));
    }

    if let Some(tool_config) = tool_config(request, has_tool_blocks)? {
        out.insert("toolConfig".to_owned(), tool_config);
    }

    let stream = stream(request)?;
    let include_usage = include_usage(request)? && stream;

    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| ProviderError::invalid_request(e.to_string()))?;
    Ok(TranslatedRequest {
        body: Bytes::from(body),
        stream,
        include_usage,
    })
}

/// `max_tokens`, `temperature`, `top_p` and `stop` → `inferenceConfig`.
fn inference_config(request: &Map<String, Value>) -> Result<Map<String, Value>, ProviderError> {
    let mut config = Map::new();
    if let Some(tokens) = max_tokens(request)? {
        config.insert("maxTokens".to_owned(), Value::from(tokens));
    }
    if let Some(value) = request.get("temperature").filter(|v| !v.is_null()) {
        let temperature = value
            .as_f64()
            .ok_or_else(|| ProviderError::invalid_request("`temperature` must be a number"))?;
        // OpenAI accepts 0..=2, Bedrock's models 0..=1.
        config.insert(
            "temperature".to_owned(),
            Value::from(temperature.clamp(0.0, 1.0)),
        );
    }
    if let Some(value) = request.get("top_p").filter(|v| !v.is_null()) {
        if !value.is_number() {
            return Err(ProviderError::invalid_request("`top_p` must be a number"));
        }
        config.insert("topP".to_owned(), value.clone());
    }
    if let Some(stops) = stop_sequences(request)? {
        config.insert("stopSequences".to_owned(), stops);
    }
    Ok(config)
}

/// `tools`, `tool_choice` and `response_format` → `toolConfig`, or none.
/// `has_tool_blocks` says whether the conversation holds tool calls or
/// results, which Bedrock reads only with a `toolConfig`.
fn tool_config(
    request: &Map<String, Value>,
    has_tool_blocks: bool,
) -> Result<Option<Value>, ProviderError> {
    let format = ResponseFormat::of(request)?;
    if format.is_some() {
        ResponseFormat::check_forced_tool(request, NAME)?;
    }
    let mut tools = tools(request, |(index, tool)| translate_tool(tool, index))?;
    let mut choice = if tools.is_empty() {
        None
    } else {
        ToolChoice::read(request.get("tool_choice"))?
    };
    if choice == Some(ToolChoice::None) {
        if has_tool_blocks {
            return Err(unsupported(
                "`tool_choice` `none` in a conversation with tool calls (Bedrock reads them only with the tools declared)",
                NAME,
            ));
        }
        tools.clear();
        choice = None;
    }
    if let Some(format) = &format {
        tools.push(json!({"toolSpec": {
            "name": FORCED_TOOL_NAME,
            "description": format.tool_description(),
            "inputSchema": {"json": format.schema()},
        }}));
        choice = Some(ToolChoice::Function(FORCED_TOOL_NAME));
    }
    if tools.is_empty() {
        return Ok(None);
    }
    let mut config = json!({ "tools": tools });
    // `auto` / `required` / `none` / a named function.
    match choice {
        Some(ToolChoice::Auto) => config["toolChoice"] = json!({"auto": {}}),
        Some(ToolChoice::Required) => config["toolChoice"] = json!({"any": {}}),
        Some(ToolChoice::Function(name)) => config["toolChoice"] = json!({"tool": {"name": name}}),
        Some(ToolChoice::None) | None => {}
    }
    Ok(Some(config))
}

/// A function tool → `{toolSpec: {name, description, inputSchema: {json}}}`.
fn translate_tool(tool: &Value, index: usize) -> Result<Value, ProviderError> {
    if tool.get("type").and_then(Value::as_str) != Some("function") {
        return Err(unsupported(
            &format!("`tools[{index}]` of a type other than `function`"),
            NAME,
        ));
    }
    let function = tool.get("function");
    let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str) else {
        return Err(ProviderError::invalid_request(format!(
            "`tools[{index}].function.name` must be a string"
        )));
    };
    if name == FORCED_TOOL_NAME {
        return Err(ProviderError::invalid_request(format!(
            "`tools[{index}]`: the name `{FORCED_TOOL_NAME}` is reserved for `response_format` on `{NAME}` targets"
        )));
    }
    let schema = function
        .and_then(|f| f.get("parameters"))
        .filter(|p| p.is_object())
        .cloned()
        .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
    let mut spec = json!({ "name": name, "inputSchema": { "json": schema } });
    if let Some(description) = function
        .and_then(|f| f.get("description"))
        .filter(|d| d.as_str().is_some_and(|d| !d.is_empty()))
    {
        spec["description"] = description.clone();
    }
    Ok(json!({ "toolSpec": spec }))
}

/// The system blocks, the turns (consecutive turns of one role merged),
/// and whether any turn holds a tool call or result.
fn translate_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>, bool), ProviderError> {
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut has_tool_blocks = false;
    for (index, message) in messages.iter().enumerate() {
        let content = content(message);
        let (role, blocks) = match role(message, index)? {
            "system" | "developer" => {
                if let Some(content) = content {
                    system.extend(text_blocks(content, index)?);
                }
                continue;
            }
            "user" => ("user", user_blocks(content, index)?),
            "assistant" => {
                let blocks = assistant_blocks(message, content, index)?;
                has_tool_blocks |= blocks.iter().any(|b| b.get("toolUse").is_some());
                ("assistant", blocks)
            }
            "tool" => {
                has_tool_blocks = true;
                ("user", vec![tool_result(message, content, index)?])
            }
            other => return Err(unexpected_role(other, index, NAME)),
        };
        match turns.last_mut() {
            Some((last_role, last)) if *last_role == role => last.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    Ok((system, turns, has_tool_blocks))
}

/// Text content (a string or `text` parts) as `{text}` blocks; any other
/// part is refused.
fn text_blocks(content: &Value, index: usize) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::String(text) => Ok(vec![json!({ "text": text })]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .filter_map(|(part_index, part)| match part_type(part) {
                Some("text") => Some(Ok(json!({ "text": part_text(part) }))),
                Some("refusal") => None,
                _ => Some(Err(unsupported_part(part, index, part_index))),
            })
            .collect(),
        _ => Err(content_error(index)),
    }
}

fn part_type(part: &Value) -> Option<&str> {
    part.get("type").and_then(Value::as_str)
}

fn part_text(part: &Value) -> &str {
    part.get("text").and_then(Value::as_str).unwrap_or("")
}

fn unsupported_part(part: &Value, index: usize, part_index: usize) -> ProviderError {
    let kind = part_type(part).unwrap_or("untyped");
    unsupported(
        &format!("`messages[{index}].content[{part_index}]` part of type `{kind}`"),
        NAME,
    )
}

fn user_blocks(content: Option<&Value>, index: usize) -> Result<Vec<Value>, ProviderError> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![json!({ "text": text })]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(part_index, part)| match part_type(part) {
                Some("text") => Ok(json!({ "text": part_text(part) })),
                Some("image_url") => image_block(part, index, part_index),
                _ => Err(unsupported_part(part, index, part_index)),
            })
            .collect(),
        Some(_) => Err(content_error(index)),
    }
}

/// `{"type":"image_url","image_url":{"url":"data:image/png;base64,…"}}` →
/// `{image: {format: "png", source: {bytes: "…"}}}`.
fn image_block(part: &Value, index: usize, part_index: usize) -> Result<Value, ProviderError> {
    let field = format!("messages[{index}].content[{part_index}].image_url");
    let url = image_url(part)
        .ok_or_else(|| ProviderError::invalid_request(format!("`{field}.url` must be a string")))?;
    let Some((media_type, data)) = parse_data_url(url) else {
        return Err(unsupported(
            &format!("`{field}.url` other than a base64 `data:` URL (Bedrock fetches no image)"),
            NAME,
        ));
    };
    let format = match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(unsupported(
                &format!("`{field}.url` of type `{other}` (Bedrock takes PNG, JPEG, GIF and WebP)"),
                NAME,
            ));
        }
    };
    Ok(json!({ "image": { "format": format, "source": { "bytes": data } } }))
}

/// An assistant turn: its text (empty text dropped: Bedrock refuses blank
/// text blocks), then its tool calls as `toolUse` blocks.
fn assistant_blocks(
    message: &Value,
    content: Option<&Value>,
    index: usize,
) -> Result<Vec<Value>, ProviderError> {
    let mut blocks = match content {
        Some(content) => text_blocks(content, index)?,
        None => Vec::new(),
    };
    blocks.retain(|block| block.get("text").and_then(Value::as_str) != Some(""));
    for (call_index, call) in tool_calls(message, index)?.iter().enumerate() {
        let ToolCall {
            id,
            name,
            arguments,
        } = ToolCall::read(call, index, call_index)?;
        let input = arguments.unwrap_or_else(|| json!({}));
        blocks.push(json!({ "toolUse": { "toolUseId": id, "name": name, "input": input } }));
    }
    Ok(blocks)
}

/// A `tool` message → a `toolResult` block with its text.
fn tool_result(
    message: &Value,
    content: Option<&Value>,
    index: usize,
) -> Result<Value, ProviderError> {
    let id = tool_call_id(message, index)?;
    let content = match content {
        None => vec![json!({ "text": "" })],
        Some(content) => text_blocks(content, index)?,
    };
    Ok(json!({ "toolResult": { "toolUseId": id, "content": content } }))
}
