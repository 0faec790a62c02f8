//! JSON Schema → Gemini's `Schema`, the `OpenAPI` 3.0 subset that
//! `functionDeclarations[].parameters` and `generationConfig.responseSchema`
//! take.
//!
//! | JSON Schema                                        | Gemini `Schema`                                   |
//! |----------------------------------------------------|---------------------------------------------------|
//! | `type: "string"` (any case)                        | `type: "STRING"`                                  |
//! | `type: ["string", "null"]`                         | `type: "STRING"`, `nullable: true`                |
//! | `type: ["string", "integer"]`                      | `anyOf: [{type: STRING}, {type: INTEGER}]`        |
//! | `anyOf` / `oneOf` (a `{type: null}` member)        | `anyOf` (`nullable: true`)                        |
//! | `allOf` of one schema                              | that schema                                       |
//! | `$ref` to `#/$defs/…` or `#/definitions/…`         | the definition, inlined                           |
//! | `properties`, `items`, `required`, `description`, `title`, `nullable`, `minItems`, `maxItems`, `minProperties`, `maxProperties`, `minLength`, `maxLength`, `pattern`, `minimum`, `maximum`, `default`, `example`, `propertyOrdering` | kept |
//! | `enum`                                             | `enum`, every value as a string                   |
//! | `const`                                            | `enum` of that one value                          |
//! | `format` `date-time`, `enum`, `int32`, `int64`, `float`, `double` | kept; other formats dropped        |
//! | `additionalProperties`, `$schema`, `$id`, `$defs`, `definitions`, `strict`, `examples`, `$comment`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`, `uniqueItems`, `patternProperties`, `not`, `if`/`then`/`else` and any other keyword | dropped |
//!
//! Refused, naming the field: a `$ref` that points elsewhere or to a
//! missing definition, a recursive `$ref` (nesting deeper than 32 levels,
//! or more than 10 000 schemas once inlined), tuple `items` (an array),
//! an `allOf` of several schemas, and a schema that is not an object.

use std::cell::Cell;

use serde_json::{Map, Value};

use crate::error::ProviderError;

/// How deep a schema (with its `$ref`s inlined) may nest.
const MAX_DEPTH: usize = 32;

/// How many schema nodes a converted schema (with its `$ref`s inlined)
/// may hold: definitions that refer to each other many times over would
/// otherwise grow without bound.
const MAX_NODES: usize = 10_000;

/// Converts the JSON Schema `schema` into Gemini's subset; `field` names
/// it in errors (`` `tools[0].function.parameters` ``).
pub(crate) fn to_gemini(schema: &Value, field: &str) -> Result<Value, ProviderError> {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object);
    Converter {
        defs,
        field,
        nodes: Cell::new(0),
    }
    .convert(schema, 0)
}

struct Converter<'a> {
    defs: Option<&'a Map<String, Value>>,
    field: &'a str,
    /// Nodes converted so far.
    nodes: Cell<usize>,
}

impl Converter<'_> {
    fn refuse(&self, problem: &str) -> ProviderError {
        ProviderError::invalid_request(format!(
            "`{}` {problem}, which `gemini` targets cannot express",
            self.field
        ))
    }

    fn convert(&self, schema: &Value, depth: usize) -> Result<Value, ProviderError> {
        if depth > MAX_DEPTH {
            return Err(self.refuse(&format!(
                "nests deeper than {MAX_DEPTH} levels (or has a recursive `$ref`)"
            )));
        }
        self.nodes.set(self.nodes.get().saturating_add(1));
        if self.nodes.get() > MAX_NODES {
            return Err(self.refuse(&format!(
                "holds more than {MAX_NODES} schemas once its `$ref`s are inlined"
            )));
        }
        let node = match schema {
            Value::Object(node) => node,
            Value::Bool(true) => return Ok(Value::Object(Map::new())),
            _ => return Err(self.refuse("has a schema that is not an object")),
        };
        if let Some(reference) = node.get("$ref") {
            let mut resolved = self.resolve(reference, depth)?;
            // Siblings of `$ref` (a description, say) refine it.
            if let Value::Object(out) = &mut resolved {
                for key in ["description", "title"] {
                    if let Some(value) = node.get(key).filter(|v| v.is_string()) {
                        out.insert(key.to_owned(), value.clone());
                    }
                }
            }
            return Ok(resolved);
        }
        let mut out = Map::new();
        let mut nullable = false;
        for (key, value) in node {
            match key.as_str() {
                "type" => match value {
                    Value::String(kind) if kind == "null" => nullable = true,
                    Value::String(kind) => {
                        out.insert("type".to_owned(), Value::from(kind.to_ascii_uppercase()));
                    }
                    Value::Array(kinds) => {
                        let mut named: Vec<String> = Vec::new();
                        for kind in kinds {
                            match kind.as_str() {
                                Some("null") => nullable = true,
                                Some(kind) => named.push(kind.to_ascii_uppercase()),
                                None => return Err(self.refuse("has a non-string `type`")),
                            }
                        }
                        match named.as_slice() {
                            [] => {}
                            [one] => {
                                out.insert("type".to_owned(), Value::from(one.as_str()));
                            }
                            many => {
                                let any: Vec<Value> = many
                                    .iter()
                                    .map(|kind| {
                                        let mut member = Map::new();
                                        member
                                            .insert("type".to_owned(), Value::from(kind.as_str()));
                                        Value::Object(member)
                                    })
                                    .collect();
                                out.insert("anyOf".to_owned(), Value::Array(any));
                            }
                        }
                    }
                    _ => return Err(self.refuse("has a `type` that is not a string")),
                },
                "properties" => {
                    let Some(properties) = value.as_object() else {
                        return Err(self.refuse("has `properties` that is not an object"));
                    };
                    let mut converted = Map::new();
                    for (name, property) in properties {
                        converted.insert(name.clone(), self.convert(property, depth + 1)?);
                    }
                    out.insert("properties".to_owned(), Value::Object(converted));
                }
                "items" => match value {
                    Value::Array(_) => return Err(self.refuse("has tuple `items`")),
                    items => {
                        out.insert("items".to_owned(), self.convert(items, depth + 1)?);
                    }
                },
                "anyOf" | "oneOf" => {
                    let Some(members) = value.as_array() else {
                        return Err(self.refuse(&format!("has `{key}` that is not an array")));
                    };
                    let mut any = Vec::with_capacity(members.len());
                    for member in members {
                        if member.get("type").and_then(Value::as_str) == Some("null") {
                            nullable = true;
                            continue;
                        }
                        any.push(self.convert(member, depth + 1)?);
                    }
                    if let [single] = any.as_slice() {
                        // `anyOf: [X, null]`: X, nullable.
                        if let Value::Object(single) = single {
                            for (k, v) in single {
                                out.entry(k.clone()).or_insert_with(|| v.clone());
                            }
                        }
                    } else if !any.is_empty() {
                        out.insert("anyOf".to_owned(), Value::Array(any));
                    }
                }
                "allOf" => match value.as_array().map(Vec::as_slice) {
                    Some([single]) => {
                        if let Value::Object(single) = self.convert(single, depth + 1)? {
                            for (k, v) in single {
                                out.entry(k).or_insert(v);
                            }
                        }
                    }
                    _ => return Err(self.refuse("has an `allOf` of several schemas")),
                },
                "enum" => {
                    let Some(values) = value.as_array() else {
                        return Err(self.refuse("has an `enum` that is not an array"));
                    };
                    let strings: Vec<Value> = values
                        .iter()
                        .filter(|v| !v.is_null())
                        .map(|v| Value::from(enum_string(v)))
                        .collect();
                    if values.iter().any(Value::is_null) {
                        nullable = true;
                    }
                    out.insert("enum".to_owned(), Value::Array(strings));
                }
                "const" => {
                    out.insert(
                        "enum".to_owned(),
                        Value::Array(vec![Value::from(enum_string(value))]),
                    );
                }
                "format" => {
                    if matches!(
                        value.as_str(),
                        Some("date-time" | "enum" | "int32" | "int64" | "float" | "double")
                    ) {
                        out.insert(key.clone(), value.clone());
                    }
                }
                "nullable" if value.as_bool() == Some(true) => nullable = true,
                "description" | "title" | "required" | "minItems" | "maxItems"
                | "minProperties" | "maxProperties" | "minLength" | "maxLength" | "pattern"
                | "minimum" | "maximum" | "default" | "example" | "propertyOrdering" => {
                    out.insert(key.clone(), value.clone());
                }
                // additionalProperties, $schema, $defs, strict, examples, …
                _ => {}
            }
        }
        if out.contains_key("enum") && !out.contains_key("type") {
            out.insert("type".to_owned(), Value::from("STRING"));
        }
        if nullable {
            out.insert("nullable".to_owned(), Value::Bool(true));
        }
        Ok(Value::Object(out))
    }

    fn resolve(&self, reference: &Value, depth: usize) -> Result<Value, ProviderError> {
        let name = reference.as_str().and_then(|r| {
            r.strip_prefix("#/$defs/")
                .or_else(|| r.strip_prefix("#/definitions/"))
        });
        let target = name.and_then(|name| self.defs.and_then(|defs| defs.get(name)));
        match target {
            Some(target) => self.convert(target, depth + 1),
            None => Err(self.refuse("has a `$ref` that does not name one of its `$defs`")),
        }
    }
}

/// An enum value as Gemini takes it: a string.
fn enum_string(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
