//! OpenAI chat-completions request → Anthropic Messages request.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::NAME;
use crate::dialect::openai_request::{
    ToolCall, ToolChoice, content, content_error, image_url, include_usage, max_tokens, messages,
    parse_data_url, read_object, role, stream, tool_call_id, tools, unexpected_role,
};
use crate::dialect::structured::{FORCED_TOOL_NAME, ResponseFormat};
use crate::dialect::unsupported::{OPENAI_ONLY, refuse_fields, unsupported};
use crate::error::ProviderError;

/// A caller's request, translated for the Messages API.
#[derive(Clone, Debug)]
pub struct TranslatedRequest {
    /// The Messages API request body.
    pub body: Bytes,
    /// The caller asked for a stream (`"stream": true`).
    pub stream: bool,
    /// The caller asked for usage in the stream
    /// (`"stream_options": {"include_usage": true}`).
    pub include_usage: bool,
}

/// Translates an OpenAI chat-completions request body into an Anthropic
/// Messages API request for `model`.
///
/// `max_tokens_default` is sent when the caller set neither
/// `max_completion_tokens` nor `max_tokens`: Anthropic requires it. See the
/// [module documentation](crate::dialect::anthropic) for what maps to what,
/// what is refused (an error naming the field) and what is dropped.
///
/// # Example
///
/// ```
/// use understudy_provider::anthropic::translate_request;
///
/// let body = br#"{"model":"chat","messages":[
///     {"role":"system","content":"Be brief."},
///     {"role":"user","content":"Hello"}],
///   "stop":"END","temperature":0.2}"#;
/// let out = translate_request(body, "claude-sonnet-4-5", 1024).unwrap();
/// let json: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
/// assert_eq!(json["model"], "claude-sonnet-4-5");
/// assert_eq!(json["system"], "Be brief.");
/// assert_eq!(json["messages"][0], serde_json::json!({"role":"user","content":"Hello"}));
/// assert_eq!(json["stop_sequences"], serde_json::json!(["END"]));
/// assert_eq!(json["max_tokens"], 1024);
/// assert!(!out.stream);
/// ```
pub fn translate_request(
    body: &[u8],
    model: &str,
    max_tokens_default: u32,
) -> Result<TranslatedRequest, ProviderError> {
    let request = read_object(body)?;
    let request = &request;

    refuse_fields(request, NAME, OPENAI_ONLY)?;
    let format = ResponseFormat::of(request)?;
    if format.is_some() {
        ResponseFormat::check_forced_tool(request, NAME)?;
    } else {
        // The answer's tool use of this name is read as structured output.
        ResponseFormat::check_reserved_name(request, NAME)?;
    }

    let mut out = Map::new();
    out.insert("model".to_owned(), Value::from(model));

    let (system, messages) = translate_messages(messages(request)?)?;
    if let Some(system) = system {
        out.insert("system".to_owned(), system);
    }
    out.insert("messages".to_owned(), Value::Array(messages));

    let max_tokens = max_tokens(request)?.unwrap_or(u64::from(max_tokens_default));
    out.insert("max_tokens".to_owned(), Value::from(max_tokens));

    match request.get("stop") {
        Some(Value::String(stop)) => {
            out.insert("stop_sequences".to_owned(), json!([stop]));
        }
        Some(Value::Array(stops)) if !stops.is_empty() => {
            if !stops.iter().all(Value::is_string) {
                return Err(ProviderError::invalid_request(
                    "`stop` must be a string or an array of strings",
                ));
            }
            out.insert("stop_sequences".to_owned(), Value::Array(stops.clone()));
        }
        _ => {}
    }

    if let Some(temperature) = request.get("temperature").and_then(Value::as_f64) {
        // OpenAI accepts 0..=2, Anthropic 0..=1.
        out.insert(
            "temperature".to_owned(),
            Value::from(temperature.clamp(0.0, 1.0)),
        );
    }
    for key in ["top_p", "top_k"] {
        if let Some(value) = request.get(key).filter(|v| v.is_number()) {
            out.insert(key.to_owned(), value.clone());
        }
    }

    let stream = stream(request)?;
    if stream {
        out.insert("stream".to_owned(), Value::Bool(true));
    }
    let include_usage = include_usage(request)? && stream;

    let mut tools = tools(request, |(index, tool)| translate_tool(tool, index))?;
    let has_tools = !tools.is_empty();
    if let Some(format) = &format {
        // The answer is the forced tool's input; the caller's tools stay
        // declared (their earlier calls and results are in the turns).
        // One call only: two inputs would not be one JSON value.
        tools.push(json!({
            "name": FORCED_TOOL_NAME,
            "description": format.tool_description(),
            "input_schema": format.schema(),
        }));
        out.insert("tools".to_owned(), Value::Array(tools));
        out.insert(
            "tool_choice".to_owned(),
            json!({ "type": "tool", "name": FORCED_TOOL_NAME, "disable_parallel_tool_use": true }),
        );
        if has_tools {
            // Replaced, but read: a malformed choice is refused as it is
            // without a format.
            translate_tool_choice(request.get("tool_choice"), true)?;
        }
    } else if has_tools {
        out.insert("tools".to_owned(), Value::Array(tools));
        let parallel = request
            .get("parallel_tool_calls")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if let Some(choice) = translate_tool_choice(request.get("tool_choice"), parallel)? {
            out.insert("tool_choice".to_owned(), choice);
        }
    }

    if let Some(user) = request.get("user").and_then(Value::as_str) {
        out.insert("metadata".to_owned(), json!({ "user_id": user }));
    }

    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| ProviderError::invalid_request(e.to_string()))?;
    Ok(TranslatedRequest {
        body: Bytes::from(body),
        stream,
        include_usage,
    })
}

/// Splits out the system prompt and translates the turns, merging
/// consecutive turns of the same role (tool results join one user turn).
fn translate_messages(messages: &[Value]) -> Result<(Option<Value>, Vec<Value>), ProviderError> {
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Value)> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let content = content(message);
        let (role, content) = match role(message, index)? {
            "system" | "developer" => {
                if let Some(content) = content {
                    system.extend(text_blocks(content, index)?);
                }
                continue;
            }
            "user" => ("user", translate_user_content(content, index)?),
            "assistant" => {
                for legacy in ["function_call", "audio"] {
                    if message.get(legacy).is_some_and(|v| !v.is_null()) {
                        return Err(unsupported(&format!("`messages[{index}].{legacy}`"), NAME));
                    }
                }
                ("assistant", translate_assistant(message, content, index)?)
            }
            "tool" => (
                "user",
                Value::Array(vec![translate_tool_result(message, content, index)?]),
            ),
            other => return Err(unexpected_role(other, index, NAME)),
        };
        match turns.last_mut() {
            Some((last_role, last)) if *last_role == role => merge_content(last, content),
            _ => turns.push((role, content)),
        }
    }
    let system = match system.len() {
        0 => None,
        1 if system[0].get("cache_control").is_none() => system[0].get("text").cloned(),
        _ => Some(Value::Array(system)),
    };
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    Ok((system, turns))
}

/// Appends `next` to `last`, both becoming arrays of blocks.
fn merge_content(last: &mut Value, next: Value) {
    let mut blocks = into_blocks(std::mem::take(last));
    blocks.extend(into_blocks(next));
    *last = Value::Array(blocks);
}

fn into_blocks(content: Value) -> Vec<Value> {
    match content {
        Value::Array(blocks) => blocks,
        Value::String(text) => vec![json!({ "type": "text", "text": text })],
        _ => Vec::new(),
    }
}

/// Text parts (and an assistant's `refusal` parts, which are what it said)
/// as Anthropic text blocks; any other part is refused.
fn text_blocks(content: &Value, index: usize) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::String(text) => Ok(vec![json!({ "type": "text", "text": text })]),
        Value::Array(parts) => parts
            .iter()
            .map(|part| match part_type(part, index)? {
                "text" => Ok(text_part(part)),
                "refusal" => Ok(json!({
                    "type": "text",
                    "text": part.get("refusal").cloned().unwrap_or_else(|| Value::from("")),
                })),
                other => Err(unsupported_part(other, index)),
            })
            .collect(),
        _ => Err(content_error(index)),
    }
}

/// A content part's `type`.
fn part_type(part: &Value, index: usize) -> Result<&str, ProviderError> {
    part.get("type").and_then(Value::as_str).ok_or_else(|| {
        ProviderError::invalid_request(format!(
            "`messages[{index}].content` has a part without a `type`"
        ))
    })
}

fn unsupported_part(kind: &str, index: usize) -> ProviderError {
    unsupported(
        &format!("`messages[{index}].content` part of type `{kind}`"),
        NAME,
    )
}

fn text_part(part: &Value) -> Value {
    let mut block = json!({
        "type": "text",
        "text": part.get("text").cloned().unwrap_or_else(|| Value::from("")),
    });
    if let Some(cache) = part.get("cache_control") {
        block["cache_control"] = cache.clone();
    }
    block
}

fn translate_user_content(content: Option<&Value>, index: usize) -> Result<Value, ProviderError> {
    match content {
        None => Ok(Value::from("")),
        Some(Value::String(text)) => Ok(Value::from(text.as_str())),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                blocks.push(match part_type(part, index)? {
                    "text" => text_part(part),
                    "image_url" => translate_image(part, index)?,
                    "file" => translate_file(part, index)?,
                    // input_audio and anything newer: no Anthropic equivalent.
                    other => return Err(unsupported_part(other, index)),
                });
            }
            Ok(Value::Array(blocks))
        }
        Some(_) => Err(content_error(index)),
    }
}

/// `{"type":"image_url","image_url":{"url":…}}` → an image block, from a
/// base64 data URL or a plain URL.
fn translate_image(part: &Value, index: usize) -> Result<Value, ProviderError> {
    let url = image_url(part).ok_or_else(|| {
        ProviderError::invalid_request(format!(
            "`messages[{index}].content` has an image_url part without a url"
        ))
    })?;
    let source = match parse_data_url(url) {
        Some((media_type, data)) => {
            json!({ "type": "base64", "media_type": media_type, "data": data })
        }
        None if url.starts_with("data:") => {
            return Err(ProviderError::invalid_request(format!(
                "`messages[{index}].content` has an image data URL that is not base64"
            )));
        }
        None => json!({ "type": "url", "url": url }),
    };
    Ok(json!({ "type": "image", "source": source }))
}

/// `{"type":"file","file":{"file_data":"data:application/pdf;base64,…"}}`
/// → a document block. Files given by id (uploaded to OpenAI) have no
/// equivalent.
fn translate_file(part: &Value, index: usize) -> Result<Value, ProviderError> {
    let file = part.get("file");
    let data_url = file
        .and_then(|f| f.get("file_data"))
        .and_then(Value::as_str);
    let Some((media_type, data)) = data_url.and_then(parse_data_url) else {
        if file
            .and_then(|f| f.get("file_id"))
            .is_some_and(|id| !id.is_null())
        {
            return Err(unsupported(
                &format!("`messages[{index}].content` file given by `file_id`"),
                NAME,
            ));
        }
        return Err(ProviderError::invalid_request(format!(
            "`messages[{index}].content` has a file part without a base64 `file_data` data URL"
        )));
    };
    Ok(json!({
        "type": "document",
        "source": { "type": "base64", "media_type": media_type, "data": data },
    }))
}

fn translate_assistant(
    message: &Value,
    content: Option<&Value>,
    index: usize,
) -> Result<Value, ProviderError> {
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .filter(|calls| !calls.is_empty());
    // A refusal the caller passes back is what the assistant said.
    let refusal = message.get("refusal").filter(|r| r.is_string());
    let content = content.or(refusal);
    if let (Some(Value::String(text)), None) = (content, tool_calls) {
        return Ok(Value::from(text.as_str()));
    }
    let mut blocks = match content {
        Some(content) => text_blocks(content, index)?,
        None => Vec::new(),
    };
    // Anthropic refuses empty text blocks.
    blocks.retain(|block| block.get("text").and_then(Value::as_str) != Some(""));
    for (call_index, call) in tool_calls.into_iter().flatten().enumerate() {
        let ToolCall {
            id,
            name,
            arguments,
        } = ToolCall::read(call, index, call_index)?;
        let input = arguments
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        blocks.push(json!({ "type": "tool_use", "id": id, "name": name, "input": input }));
    }
    Ok(Value::Array(blocks))
}

fn translate_tool_result(
    message: &Value,
    content: Option<&Value>,
    index: usize,
) -> Result<Value, ProviderError> {
    let id = tool_call_id(message, index)?;
    let content = match content {
        None => Value::from(""),
        Some(Value::String(text)) => Value::from(text.as_str()),
        Some(other) => Value::Array(text_blocks(other, index)?),
    };
    Ok(json!({ "type": "tool_result", "tool_use_id": id, "content": content }))
}

/// A function tool → `{name, description, input_schema}`; other tool types
/// (OpenAI's built-in and custom tools) have no equivalent and are refused.
fn translate_tool(tool: &Value, index: usize) -> Result<Value, ProviderError> {
    match tool.get("type").and_then(Value::as_str) {
        Some("function") => {}
        Some(other) => {
            return Err(unsupported(
                &format!("`tools[{index}]` of type `{other}`"),
                NAME,
            ));
        }
        None => {
            return Err(ProviderError::invalid_request(format!(
                "`tools[{index}].type` must be a string"
            )));
        }
    }
    let function = tool.get("function");
    let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str) else {
        return Err(ProviderError::invalid_request(
            "every function tool needs a `name`",
        ));
    };
    let mut out = json!({
        "name": name,
        "input_schema": function
            .and_then(|f| f.get("parameters"))
            .filter(|p| p.is_object())
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
    });
    if let Some(description) = function
        .and_then(|f| f.get("description"))
        .filter(|d| d.is_string())
    {
        out["description"] = description.clone();
    }
    if let Some(cache) = tool.get("cache_control") {
        out["cache_control"] = cache.clone();
    }
    Ok(out)
}

/// `auto` / `none` / `required` / a named function → Anthropic's
/// `auto` / `none` / `any` / `tool`, with `parallel_tool_calls: false` as
/// `disable_parallel_tool_use`.
fn translate_tool_choice(
    choice: Option<&Value>,
    parallel: bool,
) -> Result<Option<Value>, ProviderError> {
    let mut out = match ToolChoice::read(choice)? {
        None => {
            if parallel {
                return Ok(None);
            }
            json!({ "type": "auto" })
        }
        Some(ToolChoice::Auto) => json!({ "type": "auto" }),
        Some(ToolChoice::None) => return Ok(Some(json!({ "type": "none" }))),
        Some(ToolChoice::Required) => json!({ "type": "any" }),
        Some(ToolChoice::Function(name)) => json!({ "type": "tool", "name": name }),
    };
    if !parallel {
        out["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Ok(Some(out))
}
