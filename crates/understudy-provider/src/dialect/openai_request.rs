//! Reading the caller's OpenAI chat-completions request, for the dialects
//! that translate it: the fields every translation reads alike, with the
//! same errors. What a field becomes is each dialect's own.

use serde_json::{Map, Value};

use crate::dialect::unsupported::unsupported;
use crate::error::ProviderError;

/// The request body as a JSON object.
pub(crate) fn read_object(body: &[u8]) -> Result<Map<String, Value>, ProviderError> {
    let request: Value = serde_json::from_slice(body).map_err(|e| {
        ProviderError::invalid_request(format!("request body is not valid JSON: {e}"))
    })?;
    match request {
        Value::Object(request) => Ok(request),
        _ => Err(ProviderError::invalid_request(
            "request body is not a JSON object",
        )),
    }
}

/// `messages`, an array.
pub(crate) fn messages(request: &Map<String, Value>) -> Result<&[Value], ProviderError> {
    request
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| ProviderError::invalid_request("`messages` must be an array"))
}

/// The `role` of `messages[index]`.
pub(crate) fn role(message: &Value, index: usize) -> Result<&str, ProviderError> {
    message.get("role").and_then(Value::as_str).ok_or_else(|| {
        ProviderError::invalid_request(format!("`messages[{index}].role` must be a string"))
    })
}

/// The error for `messages[index]` whose role a translation does not take
/// (`system`, `developer`, `user`, `assistant` and `tool` are read by each
/// dialect): the legacy `function` role named as such for `dialect`, any
/// other role as unknown.
pub(crate) fn unexpected_role(role: &str, index: usize, dialect: &str) -> ProviderError {
    if role == "function" {
        unsupported(
            &format!("`messages[{index}].role` `function` (the legacy form of `tool`)"),
            dialect,
        )
    } else {
        ProviderError::invalid_request(format!(
            "`messages[{index}].role` `{role}` is not supported"
        ))
    }
}

/// The `content` of a message, `null` read as none.
pub(crate) fn content(message: &Value) -> Option<&Value> {
    message.get("content").filter(|c| !c.is_null())
}

/// `messages[index].content` is neither a string nor an array of parts.
pub(crate) fn content_error(index: usize) -> ProviderError {
    ProviderError::invalid_request(format!(
        "`messages[{index}].content` must be a string or an array of parts"
    ))
}

/// The URL of an `image_url` part: `image_url.url`, or `image_url` given
/// as a plain string.
pub(crate) fn image_url(part: &Value) -> Option<&str> {
    let image = part.get("image_url");
    image
        .and_then(|i| i.get("url"))
        .or(image)
        .and_then(Value::as_str)
}

/// `data:<media type>;base64,<data>` → (media type, data).
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

/// An assistant's `tool_calls`, an array when present.
pub(crate) fn tool_calls(message: &Value, index: usize) -> Result<&[Value], ProviderError> {
    match message.get("tool_calls") {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(calls)) => Ok(calls.as_slice()),
        Some(_) => Err(ProviderError::invalid_request(format!(
            "`messages[{index}].tool_calls` must be an array"
        ))),
    }
}

/// One tool call of an assistant message, read.
pub(crate) struct ToolCall<'a> {
    /// The call's `id`.
    pub(crate) id: &'a str,
    /// `function.name`.
    pub(crate) name: &'a str,
    /// `function.arguments` parsed as JSON; none when absent or not JSON.
    pub(crate) arguments: Option<Value>,
}

impl<'a> ToolCall<'a> {
    /// Reads `messages[index].tool_calls[call_index]`: it needs an id and
    /// a function name.
    pub(crate) fn read(
        call: &'a Value,
        index: usize,
        call_index: usize,
    ) -> Result<Self, ProviderError> {
        let function = call.get("function");
        let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
        let (Some(id), Some(name)) = (call.get("id").and_then(Value::as_str), name) else {
            return Err(ProviderError::invalid_request(format!(
                "`messages[{index}].tool_calls[{call_index}]` needs an id and a function name"
            )));
        };
        let arguments = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .and_then(|args| serde_json::from_str::<Value>(args).ok());
        Ok(Self {
            id,
            name,
            arguments,
        })
    }
}

/// The `tool_call_id` of the `tool` message `messages[index]`.
pub(crate) fn tool_call_id(message: &Value, index: usize) -> Result<&str, ProviderError> {
    message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ProviderError::invalid_request(format!(
                "`messages[{index}].tool_call_id` must be a string"
            ))
        })
}

/// `tools`, each translated by `translate(tool, index)`; none when absent.
pub(crate) fn tools<T>(
    request: &Map<String, Value>,
    translate: impl FnMut((usize, &Value)) -> Result<T, ProviderError>,
) -> Result<Vec<T>, ProviderError> {
    match request.get("tools") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(tools)) => tools.iter().enumerate().map(translate).collect(),
        Some(_) => Err(ProviderError::invalid_request("`tools` must be an array")),
    }
}

/// What a `tool_choice` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ToolChoice<'a> {
    /// `auto`: the model decides.
    Auto,
    /// `none`: no tool call.
    None,
    /// `required`: some tool call.
    Required,
    /// `{"type":"function","function":{"name":…}}`: a call of this one.
    Function(&'a str),
}

impl<'a> ToolChoice<'a> {
    /// Reads `tool_choice`; none when absent.
    pub(crate) fn read(choice: Option<&'a Value>) -> Result<Option<Self>, ProviderError> {
        Ok(Some(match choice {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(mode)) => match mode.as_str() {
                "auto" => Self::Auto,
                "none" => Self::None,
                "required" => Self::Required,
                other => {
                    return Err(ProviderError::invalid_request(format!(
                        "`tool_choice` `{other}` is not supported"
                    )));
                }
            },
            Some(named) => Self::Function(
                named
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ProviderError::invalid_request(
                            "`tool_choice.function.name` must be a string",
                        )
                    })?,
            ),
        }))
    }
}

/// `stop` as an array of stop sequences: a string is one; none when
/// absent or empty; anything but a string or strings is refused.
pub(crate) fn stop_sequences(request: &Map<String, Value>) -> Result<Option<Value>, ProviderError> {
    match request.get("stop") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(stop)) => Ok(Some(Value::Array(vec![Value::from(stop.as_str())]))),
        Some(Value::Array(stops)) if stops.iter().all(Value::is_string) => {
            Ok((!stops.is_empty()).then(|| Value::Array(stops.clone())))
        }
        Some(_) => Err(ProviderError::invalid_request(
            "`stop` must be a string or an array of strings",
        )),
    }
}

/// The token limit: `max_completion_tokens`, else `max_tokens`; none when
/// neither is set.
pub(crate) fn max_tokens(request: &Map<String, Value>) -> Result<Option<u64>, ProviderError> {
    request
        .get("max_completion_tokens")
        .filter(|v| !v.is_null())
        .or_else(|| request.get("max_tokens").filter(|v| !v.is_null()))
        .map(|value| {
            value.as_u64().ok_or_else(|| {
                ProviderError::invalid_request("`max_tokens` must be a non-negative integer")
            })
        })
        .transpose()
}

/// `stream`, a boolean; false when absent.
pub(crate) fn stream(request: &Map<String, Value>) -> Result<bool, ProviderError> {
    match request.get("stream") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(stream)) => Ok(*stream),
        Some(_) => Err(ProviderError::invalid_request("`stream` must be a boolean")),
    }
}

/// `stream_options.include_usage`, a boolean; false when absent.
pub(crate) fn include_usage(request: &Map<String, Value>) -> Result<bool, ProviderError> {
    match request.get("stream_options") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Object(options)) => match options.get("include_usage") {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(include)) => Ok(*include),
            Some(_) => Err(ProviderError::invalid_request(
                "`stream_options.include_usage` must be a boolean",
            )),
        },
        Some(_) => Err(ProviderError::invalid_request(
            "`stream_options` must be an object",
        )),
    }
}
