//! OpenAI chat-completions request → Gemini `generateContent` request.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::schema::to_gemini;
use crate::dialect::openai_request::{
    ToolCall, ToolChoice, content, content_error, image_url, include_usage, messages,
    parse_data_url, read_object, role, stop_sequences, stream, tool_call_id, tool_calls, tools,
};
use crate::dialect::structured::ResponseFormat;
use crate::error::ProviderError;

/// A caller's request, translated for the Gemini API.
#[derive(Clone, Debug)]
pub struct TranslatedRequest {
    /// The `generateContent` request body.
    pub body: Bytes,
    /// The caller asked for a stream (`"stream": true`): the body goes to
    /// `streamGenerateContent`.
    pub stream: bool,
    /// The caller asked for usage in the stream
    /// (`"stream_options": {"include_usage": true}`).
    pub include_usage: bool,
}

/// Fields no Gemini request can express: a request that sets one is
/// refused, naming it. Each is refused only when it asks for something
/// (see [`asks_for`]).
const REFUSED: &[&str] = &[
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "audio",
    "web_search_options",
    "functions",
    "function_call",
];

/// Translates an OpenAI chat-completions request body into a Gemini
/// `generateContent` request. See the
/// [module documentation](crate::dialect::gemini) for what maps to what,
/// what is refused and what is dropped.
///
/// # Example
///
/// ```
/// use understudy_provider::dialect::gemini::translate_request;
///
/// let body = br#"{"model":"chat","messages":[
///     {"role":"system","content":"Be brief."},
///     {"role":"user","content":"Hello"}],
///   "stop":"END","max_tokens":64}"#;
/// let out = translate_request(body).unwrap();
/// let json: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
/// assert_eq!(json["systemInstruction"]["parts"][0]["text"], "Be brief.");
/// assert_eq!(json["contents"][0], serde_json::json!({"role":"user","parts":[{"text":"Hello"}]}));
/// assert_eq!(json["generationConfig"]["stopSequences"], serde_json::json!(["END"]));
/// assert_eq!(json["generationConfig"]["maxOutputTokens"], 64);
/// assert!(!out.stream);
/// ```
pub fn translate_request(body: &[u8]) -> Result<TranslatedRequest, ProviderError> {
    let request = read_object(body)?;
    let request = &request;
    for field in REFUSED {
        if let Some(value) = request.get(*field)
            && asks_for(value)
        {
            return Err(unsupported(field));
        }
    }
    if let Some(n) = request.get("n").filter(|n| !n.is_null())
        && n.as_u64() != Some(1)
    {
        return Err(ProviderError::invalid_request(
            "`n` other than 1 is not supported by `gemini` targets",
        ));
    }
    if let Some(modalities) = request.get("modalities").and_then(Value::as_array)
        && modalities.iter().any(|m| m.as_str() != Some("text"))
    {
        return Err(unsupported("modalities"));
    }

    let mut out = Map::new();
    let (system, contents) = translate_messages(messages(request)?)?;
    if let Some(system) = system {
        out.insert("systemInstruction".to_owned(), system);
    }
    out.insert("contents".to_owned(), Value::Array(contents));

    let tools = tools(request, |(index, tool)| translate_tool(tool, index))?;
    if !tools.is_empty() {
        out.insert(
            "tools".to_owned(),
            json!([{ "functionDeclarations": tools }]),
        );
        if let Some(config) = ToolChoice::read(request.get("tool_choice"))?.map(tool_choice) {
            out.insert(
                "toolConfig".to_owned(),
                json!({ "functionCallingConfig": config }),
            );
        }
    }

    let config = generation_config(request)?;
    if !config.is_empty() {
        out.insert("generationConfig".to_owned(), Value::Object(config));
    }

    let stream = stream(request)?;
    // `stream_options` is read only for a stream.
    let include_usage = stream && include_usage(request)?;

    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| ProviderError::invalid_request(e.to_string()))?;
    Ok(TranslatedRequest {
        body: Bytes::from(body),
        stream,
        include_usage,
    })
}

/// `` `field` is not supported by `gemini` targets ``.
fn unsupported(field: &str) -> ProviderError {
    ProviderError::invalid_request(format!("`{field}` is not supported by `gemini` targets"))
}

/// Does this value of a refused field ask for anything? `null`, `false`,
/// `0`, `{}` and `[]` do not.
fn asks_for(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => true,
    }
}

/// `generationConfig`: token limit, sampling, stop sequences, structured
/// output.
fn generation_config(request: &Map<String, Value>) -> Result<Map<String, Value>, ProviderError> {
    let mut config = Map::new();
    for field in ["max_completion_tokens", "max_tokens"] {
        match request.get(field) {
            None | Some(Value::Null) => {}
            Some(value) => {
                let tokens = value.as_u64().ok_or_else(|| {
                    ProviderError::invalid_request(format!(
                        "`{field}` must be a non-negative integer"
                    ))
                })?;
                config.insert("maxOutputTokens".to_owned(), Value::from(tokens));
                break;
            }
        }
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        match request.get(from) {
            None | Some(Value::Null) => {}
            Some(value @ Value::Number(_)) => {
                config.insert(to.to_owned(), value.clone());
            }
            Some(_) => {
                return Err(ProviderError::invalid_request(format!(
                    "`{from}` must be a number"
                )));
            }
        }
    }
    if let Some(stops) = stop_sequences(request)? {
        config.insert("stopSequences".to_owned(), stops);
    }
    match ResponseFormat::of(request)? {
        None => {}
        Some(format) => {
            config.insert(
                "responseMimeType".to_owned(),
                Value::from("application/json"),
            );
            if let ResponseFormat::JsonSchema { schema, .. } = &format {
                config.insert(
                    "responseSchema".to_owned(),
                    to_gemini(schema, "response_format.json_schema.schema")?,
                );
            }
        }
    }
    Ok(config)
}

/// Splits out the system instruction and translates the turns, merging
/// consecutive turns of one role (tool results join one `user` turn).
fn translate_messages(messages: &[Value]) -> Result<(Option<Value>, Vec<Value>), ProviderError> {
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // tool_call_id → function name, from the assistant turns so far.
    let mut calls: HashMap<String, String> = HashMap::new();
    for (index, message) in messages.iter().enumerate() {
        let content = content(message);
        let (role, parts) = match role(message, index)? {
            "system" | "developer" => {
                if let Some(content) = content {
                    system.extend(text_parts(content, index)?);
                }
                continue;
            }
            "user" => ("user", user_parts(content, index)?),
            "assistant" => (
                "model",
                assistant_parts(message, content, index, &mut calls)?,
            ),
            "tool" => ("user", vec![tool_result(message, content, index, &calls)?]),
            other => {
                return Err(ProviderError::invalid_request(format!(
                    "`messages[{index}].role` `{other}` is not supported by `gemini` targets"
                )));
            }
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last_role, last)) if *last_role == role => last.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    let system = (!system.is_empty()).then(|| json!({ "parts": system }));
    let turns = turns
        .into_iter()
        .map(|(role, parts)| json!({ "role": role, "parts": parts }))
        .collect();
    Ok((system, turns))
}

/// The text of a string or of `text` parts, as `{text}` parts; other part
/// types are refused.
fn text_parts(content: &Value, index: usize) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![json!({ "text": text })]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .filter_map(|(part_index, part)| match part_text(part) {
                Some("") => None,
                Some(text) => Some(Ok(json!({ "text": text }))),
                None => Some(Err(ProviderError::invalid_request(format!(
                    "`messages[{index}].content[{part_index}]` must be a text part"
                )))),
            })
            .collect(),
        _ => Err(content_error(index)),
    }
}

/// A `text` part's text; `refusal` parts count as text.
fn part_text(part: &Value) -> Option<&str> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => part.get("text").and_then(Value::as_str),
        Some("refusal") => part.get("refusal").and_then(Value::as_str),
        _ => None,
    }
}

fn user_parts(content: Option<&Value>, index: usize) -> Result<Vec<Value>, ProviderError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(text @ Value::String(_)) => return text_parts(text, index),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(content_error(index)),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (part_index, part) in parts.iter().enumerate() {
        let field = format!("messages[{index}].content[{part_index}]");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(text) = part_text(part).filter(|t| !t.is_empty()) {
                    out.push(json!({ "text": text }));
                }
            }
            Some("image_url") => out.push(image_part(part, &field)?),
            Some("input_audio") => out.push(audio_part(part, &field)?),
            Some("file") => out.push(file_part(part, &field)?),
            Some(other) => {
                return Err(ProviderError::invalid_request(format!(
                    "`{field}`: `{other}` parts are not supported by `gemini` targets"
                )));
            }
            None => {
                return Err(ProviderError::invalid_request(format!(
                    "`{field}` needs a `type`"
                )));
            }
        }
    }
    Ok(out)
}

/// The prefix of Gemini Files API URIs, the only URLs Gemini reads files
/// from.
const FILES_API: &str = "https://generativelanguage.googleapis.com/";

/// `image_url`: a base64 data URL → `inlineData`; a Gemini Files API URI
/// → `fileData`; any other URL is refused (Gemini does not fetch it).
fn image_part(part: &Value, field: &str) -> Result<Value, ProviderError> {
    let url = image_url(part).ok_or_else(|| {
        ProviderError::invalid_request(format!("`{field}.image_url.url` must be a string"))
    })?;
    if let Some((mime_type, data)) = parse_data_url(url) {
        return Ok(json!({ "inlineData": { "mimeType": mime_type, "data": data } }));
    }
    if url.starts_with(FILES_API) {
        return Ok(json!({ "fileData": { "fileUri": url } }));
    }
    Err(ProviderError::invalid_request(format!(
        "`{field}.image_url.url`: `gemini` targets take images as base64 `data:` URLs (or Gemini Files API URIs), not links"
    )))
}

/// `input_audio` (`wav` or `mp3`, base64) → `inlineData`.
fn audio_part(part: &Value, field: &str) -> Result<Value, ProviderError> {
    let audio = part.get("input_audio");
    let data = audio.and_then(|a| a.get("data")).and_then(Value::as_str);
    let format = audio.and_then(|a| a.get("format")).and_then(Value::as_str);
    match (data, format) {
        (Some(data), Some(format @ ("wav" | "mp3"))) => Ok(json!({
            "inlineData": { "mimeType": format!("audio/{format}"), "data": data }
        })),
        _ => Err(ProviderError::invalid_request(format!(
            "`{field}.input_audio` needs base64 `data` and a `format` of `wav` or `mp3`"
        ))),
    }
}

/// `file` with a base64 data URL in `file_data` → `inlineData`; files by
/// `file_id` are refused.
fn file_part(part: &Value, field: &str) -> Result<Value, ProviderError> {
    let data_url = part
        .get("file")
        .and_then(|f| f.get("file_data"))
        .and_then(Value::as_str);
    match data_url.and_then(parse_data_url) {
        Some((mime_type, data)) => {
            Ok(json!({ "inlineData": { "mimeType": mime_type, "data": data } }))
        }
        None => Err(ProviderError::invalid_request(format!(
            "`{field}.file`: `gemini` targets take files as base64 `file_data` data URLs"
        ))),
    }
}

fn assistant_parts(
    message: &Value,
    content: Option<&Value>,
    index: usize,
    calls: &mut HashMap<String, String>,
) -> Result<Vec<Value>, ProviderError> {
    let mut parts = match content {
        Some(content) => text_parts(content, index)?,
        None => Vec::new(),
    };
    for (call_index, call) in tool_calls(message, index)?.iter().enumerate() {
        let ToolCall {
            id,
            name,
            arguments,
        } = ToolCall::read(call, index, call_index)?;
        let args = arguments
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        calls.insert(id.to_owned(), name.to_owned());
        parts.push(json!({ "functionCall": { "name": name, "args": args } }));
    }
    Ok(parts)
}

/// A `tool` message → `functionResponse`, named after the call it answers.
fn tool_result(
    message: &Value,
    content: Option<&Value>,
    index: usize,
    calls: &HashMap<String, String>,
) -> Result<Value, ProviderError> {
    let id = tool_call_id(message, index)?;
    let name = calls.get(id).ok_or_else(|| {
        ProviderError::invalid_request(format!(
            "`messages[{index}].tool_call_id` `{id}` answers no earlier assistant tool call"
        ))
    })?;
    let text = match content {
        None => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => text_parts(other, index)?
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
    };
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({ "content": text }),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}

/// A function tool → a function declaration; other tool types are
/// refused.
fn translate_tool(tool: &Value, index: usize) -> Result<Value, ProviderError> {
    let kind = tool.get("type").and_then(Value::as_str);
    if kind != Some("function") {
        return Err(ProviderError::invalid_request(format!(
            "`tools[{index}]`: only `function` tools are supported by `gemini` targets"
        )));
    }
    let function = tool.get("function");
    let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str) else {
        return Err(ProviderError::invalid_request(format!(
            "`tools[{index}].function.name` must be a string"
        )));
    };
    let mut out = json!({ "name": name });
    if let Some(description) = function
        .and_then(|f| f.get("description"))
        .filter(|d| d.is_string())
    {
        out["description"] = description.clone();
    }
    if let Some(parameters) = function
        .and_then(|f| f.get("parameters"))
        .filter(|p| !p.is_null())
    {
        let parameters = to_gemini(parameters, &format!("tools[{index}].function.parameters"))?;
        // Gemini refuses an OBJECT without properties: such a function
        // takes no parameters.
        let empty_object = parameters.get("type").and_then(Value::as_str) == Some("OBJECT")
            && parameters
                .get("properties")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty);
        if !empty_object {
            out["parameters"] = parameters;
        }
    }
    Ok(out)
}

/// `auto` / `none` / `required` / a named function → `AUTO` / `NONE` /
/// `ANY` / `ANY` with `allowedFunctionNames`.
fn tool_choice(choice: ToolChoice<'_>) -> Value {
    match choice {
        ToolChoice::Auto => json!({ "mode": "AUTO" }),
        ToolChoice::None => json!({ "mode": "NONE" }),
        ToolChoice::Required => json!({ "mode": "ANY" }),
        ToolChoice::Function(name) => json!({ "mode": "ANY", "allowedFunctionNames": [name] }),
    }
}
