//! Refusing what a dialect cannot express, in one wording for every
//! dialect: "`logprobs` is not supported by `anthropic` targets".
//!
//! A translating dialect either expresses a field of the caller's request,
//! drops it because its absence changes nothing the caller gets in shape
//! (a sampling or optimisation hint, documented per dialect), or refuses
//! it with a 400 through [`unsupported`]. The [`FieldRule`]s here are the
//! top-level OpenAI fields that only OpenAI expresses; a dialect checks the
//! ones it cannot express with [`refuse_fields`].

use serde_json::{Map, Value};

use crate::error::ProviderError;

/// The 400 for something `dialect` cannot express: `what` names it,
/// in backticks, with what about it is refused when only some values are
/// ("`n` other than 1", "`messages[2].content` part of type `input_audio`").
pub(crate) fn unsupported(what: &str, dialect: &str) -> ProviderError {
    ProviderError::invalid_request(format!("{what} is not supported by `{dialect}` targets"))
}

/// A top-level request field a dialect cannot express, and the values of
/// it that ask for nothing (so may be sent to any target). `null` always
/// asks for nothing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FieldRule {
    /// The field's name.
    pub(crate) field: &'static str,
    /// What about the field is refused, after its name in the message
    /// ("other than 1"); empty when every value that is not harmless is
    /// refused alike.
    pub(crate) refused: &'static str,
    /// The values that ask for nothing.
    pub(crate) harmless: fn(&Value) -> bool,
}

impl FieldRule {
    /// Checks the field in `request`, refusing it as [`unsupported`] by
    /// `dialect` unless it is absent, `null` or harmless.
    pub(crate) fn check(
        &self,
        request: &Map<String, Value>,
        dialect: &str,
    ) -> Result<(), ProviderError> {
        match request.get(self.field) {
            None | Some(Value::Null) => Ok(()),
            Some(value) if (self.harmless)(value) => Ok(()),
            Some(_) if self.refused.is_empty() => {
                Err(unsupported(&format!("`{}`", self.field), dialect))
            }
            Some(_) => Err(unsupported(
                &format!("`{}` {}", self.field, self.refused),
                dialect,
            )),
        }
    }
}

/// Checks every rule in turn; the first refused field is the error.
pub(crate) fn refuse_fields(
    request: &Map<String, Value>,
    dialect: &str,
    rules: &[FieldRule],
) -> Result<(), ProviderError> {
    rules
        .iter()
        .try_for_each(|rule| rule.check(request, dialect))
}

/// `n`: several choices; 1 is the one every dialect returns.
pub(crate) const N: FieldRule = FieldRule {
    field: "n",
    refused: "other than 1",
    harmless: is_one,
};

/// `logprobs: true`: token log probabilities in the answer.
pub(crate) const LOGPROBS: FieldRule = FieldRule {
    field: "logprobs",
    refused: "",
    harmless: is_false,
};

/// `top_logprobs`: alternatives for each token; 0 asks for none.
pub(crate) const TOP_LOGPROBS: FieldRule = FieldRule {
    field: "top_logprobs",
    refused: "",
    harmless: is_zero,
};

/// `logit_bias`: token-level biases; an empty map biases nothing.
pub(crate) const LOGIT_BIAS: FieldRule = FieldRule {
    field: "logit_bias",
    refused: "",
    harmless: is_empty,
};

/// `audio`: a spoken answer.
pub(crate) const AUDIO: FieldRule = FieldRule {
    field: "audio",
    refused: "",
    harmless: never,
};

/// `modalities`: what the answer is made of; text only is what every
/// dialect answers.
pub(crate) const MODALITIES: FieldRule = FieldRule {
    field: "modalities",
    refused: "other than `[\"text\"]`",
    harmless: is_text_only,
};

/// `web_search_options`: OpenAI's built-in web search.
pub(crate) const WEB_SEARCH_OPTIONS: FieldRule = FieldRule {
    field: "web_search_options",
    refused: "",
    harmless: never,
};

/// `functions`: the legacy form of `tools`, answered in the legacy
/// `function_call` shape; an empty list declares nothing.
pub(crate) const FUNCTIONS: FieldRule = FieldRule {
    field: "functions",
    refused: "(the legacy form of `tools`)",
    harmless: is_empty,
};

/// `function_call`: the legacy form of `tool_choice`.
pub(crate) const FUNCTION_CALL: FieldRule = FieldRule {
    field: "function_call",
    refused: "(the legacy form of `tool_choice`)",
    harmless: never,
};

/// Every rule above: the top-level fields only OpenAI expresses.
pub(crate) const OPENAI_ONLY: &[FieldRule] = &[
    N,
    LOGPROBS,
    TOP_LOGPROBS,
    LOGIT_BIAS,
    AUDIO,
    MODALITIES,
    WEB_SEARCH_OPTIONS,
    FUNCTIONS,
    FUNCTION_CALL,
];

fn never(_: &Value) -> bool {
    false
}

fn is_one(value: &Value) -> bool {
    value.as_u64() == Some(1)
}

fn is_zero(value: &Value) -> bool {
    value.as_u64() == Some(0)
}

fn is_false(value: &Value) -> bool {
    *value == Value::Bool(false)
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

fn is_text_only(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|items| items.iter().all(|item| item.as_str() == Some("text")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(request: &Value) -> Result<(), String> {
        let empty = Map::new();
        refuse_fields(request.as_object().unwrap_or(&empty), "d", OPENAI_ONLY)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn harmless_values_pass_and_the_rest_are_named() {
        assert_eq!(
            check(&json!({
                "n": 1, "logprobs": false, "top_logprobs": 0, "logit_bias": {},
                "audio": null, "modalities": ["text"], "functions": [], "other": 1,
            })),
            Ok(())
        );
        let cases = [
            (
                json!({"n": 2}),
                "`n` other than 1 is not supported by `d` targets",
            ),
            (
                json!({"logprobs": true}),
                "`logprobs` is not supported by `d` targets",
            ),
            (
                json!({"top_logprobs": 2}),
                "`top_logprobs` is not supported by `d` targets",
            ),
            (
                json!({"logit_bias": {"50256": -100}}),
                "`logit_bias` is not supported by `d` targets",
            ),
            (
                json!({"audio": {"voice": "alloy"}}),
                "`audio` is not supported by `d` targets",
            ),
            (
                json!({"modalities": ["text", "audio"]}),
                "`modalities` other than `[\"text\"]` is not supported by `d` targets",
            ),
            (
                json!({"web_search_options": {}}),
                "`web_search_options` is not supported by `d` targets",
            ),
            (
                json!({"functions": [{"name": "f"}]}),
                "`functions` (the legacy form of `tools`) is not supported by `d` targets",
            ),
            (
                json!({"function_call": "auto"}),
                "`function_call` (the legacy form of `tool_choice`) is not supported by `d` targets",
            ),
        ];
        for (request, message) in cases {
            assert_eq!(check(&request), Err(message.to_owned()), "{request}");
        }
    }
}
