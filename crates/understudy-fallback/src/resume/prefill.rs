//! How a target is asked to continue an answer: the continuation request.

use bytes::Bytes;
use serde_json::{Map, Value, json};

/// The user turn that asks a target without a prefill form to continue.
pub const CONTINUE_INSTRUCTION: &str = "Continue your previous answer exactly where it stopped. \
     Do not repeat any of it and add no preamble.";

/// How a target continues an assistant turn that the request ends with.
///
/// Every form appends an assistant turn holding exactly the content the
/// caller already received; they differ in how the target is told to
/// continue it rather than answer it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Prefill {
    /// The API continues a trailing assistant turn by itself (Anthropic,
    /// Bedrock): nothing more is added. Trailing whitespace is trimmed from
    /// the turn, which these APIs refuse.
    Native,
    /// vLLM's form: `"continue_final_message": true` and
    /// `"add_generation_prompt": false` at the top level.
    ContinueFinalMessage,
    /// `DeepSeek`'s form: `"prefix": true` on the assistant turn.
    Prefix,
    /// No prefill form: a user turn ([`CONTINUE_INSTRUCTION`]) after the
    /// assistant turn asks for the rest. The default for OpenAI-compatible
    /// servers.
    #[default]
    Instruction,
}

impl Prefill {
    /// The configuration name: `native`, `continue_final_message`,
    /// `prefix`, `instruction`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::ContinueFinalMessage => "continue_final_message",
            Self::Prefix => "prefix",
            Self::Instruction => "instruction",
        }
    }

    /// The form named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Native,
            Self::ContinueFinalMessage,
            Self::Prefix,
            Self::Instruction,
        ]
        .into_iter()
        .find(|form| form.as_str() == name)
    }
}

/// The continuation of the request `original` (a chat completion or a
/// Messages request, as JSON) after the caller received `prefix`: the same
/// request with an assistant turn holding `prefix`, in the `prefill` form.
/// `None` when `original` is not a JSON object with a `messages` array.
///
/// # Example
///
/// ```
/// use understudy_fallback::resume::{Prefill, continuation_body};
///
/// let original = br#"{"model":"chat","messages":[{"role":"user","content":"Hi"}],"stream":true}"#;
/// let body = continuation_body(original, "Hello fr", Prefill::Prefix).unwrap();
/// let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(body["messages"][1], serde_json::json!({"role":"assistant","content":"Hello fr","prefix":true}));
/// ```
pub fn continuation_body(original: &[u8], prefix: &str, prefill: Prefill) -> Option<Bytes> {
    let mut request: Map<String, Value> = serde_json::from_slice(original).ok()?;
    let messages = request.get_mut("messages")?.as_array_mut()?;
    let content = match prefill {
        Prefill::Native => prefix.trim_end(),
        _ => prefix,
    };
    let mut turn = json!({ "role": "assistant", "content": content });
    if prefill == Prefill::Prefix {
        turn["prefix"] = Value::Bool(true);
    }
    messages.push(turn);
    match prefill {
        Prefill::Instruction => {
            messages.push(json!({ "role": "user", "content": CONTINUE_INSTRUCTION }));
        }
        Prefill::ContinueFinalMessage => {
            request.insert("continue_final_message".to_owned(), Value::Bool(true));
            request.insert("add_generation_prompt".to_owned(), Value::Bool(false));
        }
        Prefill::Native | Prefill::Prefix => {}
    }
    serde_json::to_vec(&request).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(prefill: Prefill) -> Value {
        let original = br#"{"model":"m","messages":[{"role":"user","content":"Hi"}]}"#;
        serde_json::from_slice(&continuation_body(original, "Hello fr ", prefill).unwrap()).unwrap()
    }

    #[test]
    fn each_form_ends_with_the_prefix_as_an_assistant_turn() {
        let native = body(Prefill::Native);
        assert_eq!(native["messages"][1]["content"], "Hello fr");
        assert_eq!(native["messages"].as_array().unwrap().len(), 2);
        let vllm = body(Prefill::ContinueFinalMessage);
        assert_eq!(vllm["messages"][1]["content"], "Hello fr ");
        assert_eq!(vllm["continue_final_message"], true);
        assert_eq!(vllm["add_generation_prompt"], false);
        assert_eq!(body(Prefill::Prefix)["messages"][1]["prefix"], true);
        let instruction = body(Prefill::Instruction);
        assert_eq!(instruction["messages"][1]["role"], "assistant");
        assert_eq!(instruction["messages"][2]["content"], CONTINUE_INSTRUCTION);
        assert!(continuation_body(b"[1]", "x", Prefill::Native).is_none());
        assert!(continuation_body(br#"{"messages":{}}"#, "x", Prefill::Native).is_none());
    }

    #[test]
    fn names_round_trip() {
        for name in ["native", "continue_final_message", "prefix", "instruction"] {
            assert_eq!(Prefill::from_name(name).unwrap().as_str(), name);
        }
        assert_eq!(Prefill::from_name("other"), None);
    }
}
