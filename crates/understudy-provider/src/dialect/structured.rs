//! Structured output across dialects: the caller's `response_format`,
//! read once, for the dialects that express it their own way.
//!
//! OpenAI's `response_format` asks for JSON (`json_object`) or JSON that
//! matches a schema (`json_schema`). OpenAI-compatible servers take it as
//! it is. Dialects whose API has no such field express it otherwise:
//! Anthropic and Bedrock through a *forced tool* whose input schema is the
//! requested one and whose input becomes the message content
//! ([`FORCED_TOOL_NAME`]), Gemini through `responseMimeType` and
//! `responseSchema`. No dialect drops it silently.

use serde_json::{Map, Value, json};

use crate::error::ProviderError;

/// The name of the tool a forced-tool dialect adds for structured output;
/// its input is the answer. A caller's own tool of this name is refused.
pub const FORCED_TOOL_NAME: &str = "json_response";

/// What the caller's `response_format` asks for.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ResponseFormat {
    /// `{"type": "json_object"}`: any JSON object.
    JsonObject,
    /// `{"type": "json_schema", "json_schema": {...}}`: JSON matching a
    /// schema.
    JsonSchema {
        /// `json_schema.name`.
        name: String,
        /// `json_schema.description`, if any.
        description: Option<String>,
        /// `json_schema.schema` (an empty object schema when absent).
        schema: Value,
        /// `json_schema.strict`.
        strict: bool,
    },
}

impl ResponseFormat {
    /// Reads the request's `response_format`: `None` when it is absent,
    /// `null` or `{"type": "text"}`; an error naming the field when it is
    /// malformed or of a type no dialect knows.
    ///
    /// ```
    /// use serde_json::json;
    /// use understudy_provider::dialect::structured::ResponseFormat;
    ///
    /// let request = json!({"response_format": {"type": "json_schema", "json_schema": {
    ///     "name": "weather", "schema": {"type": "object", "properties": {"c": {"type": "number"}}}
    /// }}});
    /// let format = ResponseFormat::of(request.as_object().unwrap()).unwrap().unwrap();
    /// assert_eq!(format.schema()["properties"]["c"]["type"], "number");
    /// assert_eq!(ResponseFormat::of(json!({}).as_object().unwrap()).unwrap(), None);
    /// assert!(ResponseFormat::of(json!({"response_format": {"type": "yaml"}}).as_object().unwrap()).is_err());
    /// ```
    pub fn of(request: &Map<String, Value>) -> Result<Option<Self>, ProviderError> {
        let Some(format) = request.get("response_format") else {
            return Ok(None);
        };
        let invalid =
            |problem: &str| ProviderError::invalid_request(format!("`response_format` {problem}"));
        if format.is_null() {
            return Ok(None);
        }
        let Some(format) = format.as_object() else {
            return Err(invalid("must be an object"));
        };
        match format.get("type").and_then(Value::as_str) {
            Some("text") => Ok(None),
            Some("json_object") => Ok(Some(Self::JsonObject)),
            Some("json_schema") => {
                let Some(spec) = format.get("json_schema").and_then(Value::as_object) else {
                    return Err(invalid(
                        "of type `json_schema` needs a `json_schema` object",
                    ));
                };
                let name = match spec.get("name") {
                    Some(Value::String(name)) if !name.is_empty() => name.clone(),
                    _ => return Err(invalid("needs `json_schema.name`, a non-empty string")),
                };
                let schema = match spec.get("schema") {
                    None | Some(Value::Null) => json!({"type": "object"}),
                    Some(schema @ Value::Object(_)) => schema.clone(),
                    Some(_) => return Err(invalid("`json_schema.schema` must be an object")),
                };
                Ok(Some(Self::JsonSchema {
                    name,
                    description: spec
                        .get("description")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    schema,
                    strict: spec.get("strict").and_then(Value::as_bool).unwrap_or(false),
                }))
            }
            Some(other) => Err(invalid(&format!(
                "has type `{other}`; expected `text`, `json_object` or `json_schema`"
            ))),
            None => Err(invalid("needs a `type`")),
        }
    }

    /// The JSON schema the answer must match: the caller's, or any object
    /// for `json_object`.
    pub fn schema(&self) -> Value {
        match self {
            Self::JsonObject => json!({"type": "object"}),
            Self::JsonSchema { schema, .. } => schema.clone(),
        }
    }

    /// What the forced tool is described as: the schema's description, or
    /// a sentence asking for the answer as the tool's input.
    pub fn tool_description(&self) -> String {
        match self {
            Self::JsonSchema {
                description: Some(description),
                ..
            } => description.clone(),
            Self::JsonSchema { name, .. } => {
                format!(
                    "Respond with the `{name}` JSON object: pass the whole answer as this tool's input."
                )
            }
            Self::JsonObject => {
                "Respond with a JSON object: pass the whole answer as this tool's input.".to_owned()
            }
        }
    }

    /// For forced-tool dialects that tell a structured answer by its tool's
    /// name: refuses a request with a tool of its own named
    /// [`FORCED_TOOL_NAME`], whether or not it sets `response_format`, so
    /// that a tool use of that name is always the structured answer.
    ///
    /// ```
    /// use serde_json::json;
    /// use understudy_provider::dialect::structured::ResponseFormat;
    ///
    /// let mine = json!({"tools": [{"type": "function", "function": {"name": "json_response"}}]});
    /// let error = ResponseFormat::check_reserved_name(mine.as_object().unwrap(), "anthropic").unwrap_err();
    /// assert!(error.to_string().contains("`json_response` is reserved"));
    /// ```
    pub fn check_reserved_name(
        request: &Map<String, Value>,
        dialect: &str,
    ) -> Result<(), ProviderError> {
        let tools = request.get("tools").and_then(Value::as_array);
        let clash = tools.into_iter().flatten().any(|tool| {
            tool.pointer("/function/name").and_then(Value::as_str) == Some(FORCED_TOOL_NAME)
        });
        if clash {
            return Err(ProviderError::invalid_request(format!(
                "`tools`: the name `{FORCED_TOOL_NAME}` is reserved for `response_format` on `{dialect}` targets"
            )));
        }
        Ok(())
    }

    /// For forced-tool dialects: refuses a request the forced tool cannot
    /// serve, naming the field: one that names its own tool
    /// [`FORCED_TOOL_NAME`], or that also asks for a tool call of its own
    /// (`tool_choice` `required` or a named function), which forcing the
    /// answer's tool would silently override.
    pub fn check_forced_tool(
        request: &Map<String, Value>,
        dialect: &str,
    ) -> Result<(), ProviderError> {
        Self::check_reserved_name(request, dialect)?;
        let tools = request.get("tools").and_then(Value::as_array);
        let forced = match request.get("tool_choice") {
            Some(Value::String(choice)) => choice == "required",
            Some(Value::Object(_)) => true,
            _ => false,
        };
        if forced && tools.is_some_and(|tools| !tools.is_empty()) {
            return Err(ProviderError::invalid_request(format!(
                "`response_format` cannot be combined with a required `tool_choice` on `{dialect}` targets"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(value: Value) -> Result<Option<ResponseFormat>, ProviderError> {
        let Value::Object(map) = value else {
            return ResponseFormat::of(&Map::new());
        };
        ResponseFormat::of(&map)
    }

    #[test]
    fn formats_read_and_errors_name_the_field() {
        assert_eq!(
            of(json!({"response_format": {"type": "text"}})).ok(),
            Some(None)
        );
        assert_eq!(
            of(json!({"response_format": {"type": "json_object"}})).ok(),
            Some(Some(ResponseFormat::JsonObject))
        );
        let strict = of(
            json!({"response_format": {"type": "json_schema", "json_schema": {
            "name": "n", "strict": true, "description": "d"}}}),
        );
        assert_eq!(
            strict.ok(),
            Some(Some(ResponseFormat::JsonSchema {
                name: "n".to_owned(),
                description: Some("d".to_owned()),
                schema: json!({"type": "object"}),
                strict: true,
            }))
        );
        for bad in [
            json!({"response_format": 3}),
            json!({"response_format": {}}),
            json!({"response_format": {"type": "json_schema"}}),
            json!({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}),
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": []}}}),
        ] {
            let error = of(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.starts_with("`response_format`"), "{error}");
        }
    }

    #[test]
    fn the_forced_tool_refuses_what_it_would_override() {
        let check = |value: Value| {
            ResponseFormat::check_forced_tool(value.as_object().unwrap_or(&Map::new()), "anthropic")
        };
        let tool = json!({"type": "function", "function": {"name": "lookup"}});
        assert!(check(json!({"tools": [tool], "tool_choice": "auto"})).is_ok());
        assert!(check(json!({"tools": [tool], "tool_choice": "required"})).is_err());
        assert!(
            check(json!({"tools": [{"type": "function", "function": {"name": FORCED_TOOL_NAME}}]}))
                .is_err()
        );
    }
}
