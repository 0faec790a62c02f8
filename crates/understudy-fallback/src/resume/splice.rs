//! The rules that make one stream of an answer and its continuations.
//!
//! The caller sees one stream: every chunk of a continuation gets the
//! first attempt's `id` and `created` and its choice index; its role chunk
//! is dropped (the caller already had one); a continuation that starts by
//! sending the content already sent again (or the whitespace trimmed from
//! a native prefill) has that part stripped; its `finish_reason` is the
//! stream's; and when the request asked for usage, the usage of earlier
//! attempts (when any came) is added to the continuation's.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value};
use understudy_core::sse::SseEvent;

use super::BreakReason;

/// The state of one resumable stream, across its attempts.
#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // Independent facts about the stream.
pub(crate) struct Splice {
    include_usage: bool,
    /// The first attempt's `id`, `created`, and choice index.
    id: Option<Value>,
    created: Option<Value>,
    index: Option<Value>,
    /// The content the caller received, while it is within `max_bytes`.
    text: String,
    /// The most content kept (and resumed after).
    max_bytes: usize,
    /// More than `max_bytes` of content was sent: no resume, nothing kept.
    too_long: bool,
    /// A tool call's arguments are partly sent.
    in_tool_call: bool,
    /// A `finish_reason` was sent.
    finished: bool,
    /// `[DONE]` was sent.
    done: bool,
    /// The request asked for more than one choice.
    several_choices: bool,
    /// The usage reported by attempts before the current one, summed.
    earlier_usage: Option<Value>,
    /// The last usage the current attempt reported.
    usage: Option<Value>,
    /// The current attempt continues an earlier one.
    continuing: bool,
    /// What a continuation may send again first, to be stripped.
    strip: Vec<String>,
    /// Content of a continuation held while it may be a repeat.
    held: String,
}

impl Splice {
    /// A stream that is resumed while at most `max_bytes` of content
    /// were sent.
    pub(crate) fn new(include_usage: bool, max_bytes: usize) -> Self {
        Self {
            include_usage,
            max_bytes,
            ..Self::default()
        }
    }

    /// The content the caller received.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Can the stream still be continued?
    pub(crate) const fn resumable(&self) -> bool {
        !self.in_tool_call
            && !self.finished
            && !self.done
            && !self.several_choices
            && !self.too_long
    }

    /// Has the answer ended (a `finish_reason` or `[DONE]`)?
    pub(crate) const fn ended(&self) -> bool {
        self.finished || self.done
    }

    /// The next attempt continues the answer; its leading `strip`s (the
    /// content sent, or what a prefill trimmed) are removed.
    pub(crate) fn continue_with(&mut self, strip: Vec<String>) {
        self.continuing = true;
        self.strip = strip.into_iter().filter(|s| !s.is_empty()).collect();
        self.held.clear();
        if let Some(usage) = self.usage.take() {
            self.earlier_usage = Some(match self.earlier_usage.take() {
                Some(earlier) => sum_usage(&earlier, &usage),
                None => usage,
            });
        }
    }

    /// What the caller gets for `event`, if anything; the break the event
    /// is, if it is one.
    pub(crate) fn on_event(&mut self, event: &SseEvent) -> Result<Option<Bytes>, BreakReason> {
        let data = event.data.trim();
        if event.event.as_deref() == Some("error") {
            return Err(BreakReason::ErrorEvent);
        }
        if data.is_empty() {
            return Ok(None);
        }
        if event.is_done() {
            self.done = true;
            self.held.clear();
            return Ok(Some(Bytes::from_static(b"data: [DONE]\n\n")));
        }
        let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(data) else {
            return Err(BreakReason::Malformed);
        };
        if chunk.contains_key("error") || chunk.get("type").and_then(Value::as_str) == Some("error")
        {
            return Err(BreakReason::ErrorEvent);
        }
        if self.continuing && !self.rewrite(&mut chunk) {
            return Ok(None);
        }
        self.observe(&chunk);
        let mut out = BytesMut::with_capacity(data.len() + 16);
        if let Some(name) = &event.event {
            out.put_slice(b"event: ");
            out.put_slice(name.as_bytes());
            out.put_slice(b"\n");
        }
        out.put_slice(b"data: ");
        if self.continuing {
            out.put_slice(Value::Object(chunk).to_string().as_bytes());
        } else {
            out.put_slice(data.as_bytes());
        }
        out.put_slice(b"\n\n");
        Ok(Some(out.freeze()))
    }

    /// Notes what a chunk the caller gets sends.
    fn observe(&mut self, chunk: &Map<String, Value>) {
        if self.id.is_none() {
            self.id = chunk.get("id").cloned();
            self.created = chunk.get("created").cloned();
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(usage.clone());
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return;
        };
        for choice in choices {
            let index = choice.get("index").cloned().unwrap_or(Value::from(0));
            match &self.index {
                None => self.index = Some(index),
                Some(first) if *first != index => self.several_choices = true,
                Some(_) => {}
            }
            if let Some(delta) = choice.get("delta") {
                if let Some(text) = delta.get("content").and_then(Value::as_str) {
                    if self.text.len().saturating_add(text.len()) > self.max_bytes {
                        self.too_long = true;
                        self.text = String::new();
                    }
                    if !self.too_long {
                        self.text.push_str(text);
                    }
                }
                if delta.get("tool_calls").is_some_and(|t| !t.is_null())
                    || delta.get("function_call").is_some_and(|t| !t.is_null())
                {
                    self.in_tool_call = true;
                }
            }
            if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
                self.finished = true;
                self.in_tool_call = false;
            }
        }
    }

    /// Rewrites a continuation's chunk into the first attempt's stream;
    /// `false` when nothing of it is left to send.
    fn rewrite(&mut self, chunk: &mut Map<String, Value>) -> bool {
        if let Some(id) = &self.id {
            chunk.insert("id".to_owned(), id.clone());
        }
        if let Some(created) = &self.created {
            chunk.insert("created".to_owned(), created.clone());
        }
        let mut keep = false;
        if let Some(Value::Array(choices)) = chunk.get_mut("choices") {
            for choice in choices.iter_mut() {
                let Some(choice) = choice.as_object_mut() else {
                    continue;
                };
                if let Some(index) = &self.index {
                    choice.insert("index".to_owned(), index.clone());
                }
                if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
                    keep = true;
                }
                let Some(Value::Object(delta)) = choice.get_mut("delta") else {
                    continue;
                };
                delta.remove("role");
                if let Some(Value::String(text)) = delta.get_mut("content") {
                    *text = strip_repeat(&mut self.strip, &mut self.held, text);
                    if text.is_empty() {
                        delta.remove("content");
                    }
                }
                if delta.values().any(|v| !v.is_null()) {
                    keep = true;
                }
            }
        }
        if let Some(usage) = chunk.get_mut("usage").filter(|u| !u.is_null()) {
            keep = true;
            if self.include_usage
                && let Some(earlier) = &self.earlier_usage
            {
                *usage = sum_usage(earlier, usage);
            }
        }
        keep
    }
}

/// A continuation's content with a leading repeat of one of `strip`
/// removed. Content that may still turn out a repeat is held in `held`;
/// once it is one it is dropped, once it cannot be it is released.
fn strip_repeat(strip: &mut Vec<String>, held: &mut String, text: &str) -> String {
    if strip.is_empty() {
        return text.to_owned();
    }
    held.push_str(text);
    for candidate in strip.iter() {
        if let Some(rest) = held.strip_prefix(candidate.as_str()) {
            let rest = rest.to_owned();
            held.clear();
            strip.clear();
            return rest;
        }
    }
    if strip.iter().any(|c| c.starts_with(held.as_str())) {
        return String::new();
    }
    strip.clear();
    std::mem::take(held)
}

/// Two usage objects added up, field by field (integers only; nested
/// objects of integers too).
fn sum_usage(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut out = b.clone();
            for (key, value) in a {
                let summed = match out.get(key) {
                    Some(other) => sum_usage(value, other),
                    None => value.clone(),
                };
                out.insert(key.clone(), summed);
            }
            Value::Object(out)
        }
        (Value::Number(x), Value::Number(y)) => match (x.as_u64(), y.as_u64()) {
            (Some(x), Some(y)) => Value::from(x.saturating_add(y)),
            _ => b.clone(),
        },
        _ => b.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(data: &Value) -> SseEvent {
        SseEvent {
            event: None,
            data: data.to_string(),
            id: None,
        }
    }

    fn chunk(id: &str, created: u64, delta: &Value, finish: &Value) -> Value {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn sent(splice: &mut Splice, data: &Value) -> Option<Value> {
        let bytes = splice.on_event(&event(data)).unwrap()?;
        let text = std::str::from_utf8(&bytes).unwrap();
        Some(serde_json::from_str(text.strip_prefix("data: ").unwrap().trim()).unwrap())
    }

    /// A primary that sent "Hello fr" in two chunks after its role chunk.
    fn primary(include_usage: bool) -> Splice {
        let mut splice = Splice::new(include_usage, 1024);
        let role = chunk(
            "a",
            1,
            &json!({"role": "assistant", "content": ""}),
            &Value::Null,
        );
        assert!(sent(&mut splice, &role).is_some());
        for piece in ["Hello", " fr"] {
            let c = chunk("a", 1, &json!({"content": piece}), &Value::Null);
            assert_eq!(sent(&mut splice, &c).unwrap(), c);
        }
        assert_eq!(splice.text(), "Hello fr");
        assert!(splice.resumable());
        splice
    }

    #[test]
    fn continuation_chunks_take_the_first_id_created_and_index_and_drop_the_role() {
        let mut splice = primary(false);
        splice.continue_with(vec!["Hello fr".to_owned()]);
        let role = json!({"id": "b", "created": 9, "choices": [{"index": 3, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]});
        assert_eq!(sent(&mut splice, &role), None);
        let c = json!({"id": "b", "created": 9, "choices": [{"index": 3, "delta": {"content": "om b"}, "finish_reason": null}]});
        let out = sent(&mut splice, &c).unwrap();
        assert_eq!(out["id"], "a");
        assert_eq!(out["created"], 1);
        assert_eq!(out["choices"][0]["index"], 0);
        assert_eq!(out["choices"][0]["delta"], json!({"content": "om b"}));
        let end = chunk("b", 9, &json!({}), &json!("length"));
        assert_eq!(
            sent(&mut splice, &end).unwrap()["choices"][0]["finish_reason"],
            "length"
        );
        assert_eq!(splice.text(), "Hello from b");
        assert!(splice.ended());
        assert!(!splice.resumable());
        let done = splice.on_event(&SseEvent {
            data: "[DONE]".into(),
            ..SseEvent::default()
        });
        assert_eq!(done.unwrap().unwrap(), "data: [DONE]\n\n");
    }

    #[test]
    fn a_continuation_that_repeats_the_prefix_has_it_stripped() {
        let mut splice = primary(false);
        splice.continue_with(vec!["Hello fr".to_owned()]);
        // The repeat comes split, and ends inside a chunk.
        assert_eq!(
            sent(
                &mut splice,
                &chunk("b", 9, &json!({"content": "Hel"}), &Value::Null)
            ),
            None
        );
        let out = sent(
            &mut splice,
            &chunk("b", 9, &json!({"content": "lo from"}), &Value::Null),
        )
        .unwrap();
        assert_eq!(out["choices"][0]["delta"]["content"], "om");
        assert_eq!(splice.text(), "Hello from");
        // Later text like the prefix is left alone.
        let out = sent(
            &mut splice,
            &chunk("b", 9, &json!({"content": "Hello fr"}), &Value::Null),
        )
        .unwrap();
        assert_eq!(out["choices"][0]["delta"]["content"], "Hello fr");
    }

    #[test]
    fn a_continuation_that_only_starts_like_the_prefix_is_released_whole() {
        let mut splice = primary(false);
        splice.continue_with(vec!["Hello fr".to_owned(), " ".to_owned()]);
        assert_eq!(
            sent(
                &mut splice,
                &chunk("b", 9, &json!({"content": "He"}), &Value::Null)
            ),
            None
        );
        let out = sent(
            &mut splice,
            &chunk("b", 9, &json!({"content": "y"}), &Value::Null),
        )
        .unwrap();
        assert_eq!(out["choices"][0]["delta"]["content"], "Hey");
        // The whitespace a native prefill trimmed is stripped too.
        let mut splice = primary(false);
        splice.continue_with(vec!["Hello fr".to_owned(), " ".to_owned()]);
        let out = sent(
            &mut splice,
            &chunk("b", 9, &json!({"content": " om"}), &Value::Null),
        )
        .unwrap();
        assert_eq!(out["choices"][0]["delta"]["content"], "om");
    }

    #[test]
    fn usage_is_summed_over_the_attempts_when_asked_for() {
        let mut splice = primary(true);
        // A primary that reports usage as it goes.
        let running = json!({"id": "a", "created": 1, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}});
        assert!(sent(&mut splice, &running).is_some());
        splice.continue_with(vec!["Hello fr".to_owned()]);
        let usage = json!({"id": "b", "created": 9, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}});
        let out = sent(&mut splice, &usage).unwrap();
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 22, "completion_tokens": 5, "total_tokens": 27})
        );
        assert_eq!(out["id"], "a");
    }

    #[test]
    fn breaks_and_what_cannot_be_resumed() {
        let mut splice = primary(false);
        assert_eq!(
            splice.on_event(&event(&json!({"error": {"message": "overloaded"}}))),
            Err(BreakReason::ErrorEvent)
        );
        let named = SseEvent {
            event: Some("error".into()),
            data: "{}".into(),
            id: None,
        };
        assert_eq!(splice.on_event(&named), Err(BreakReason::ErrorEvent));
        let garbage = SseEvent {
            data: "<html>".into(),
            ..SseEvent::default()
        };
        assert_eq!(splice.on_event(&garbage), Err(BreakReason::Malformed));
        // Past the bound: nothing kept, no resume.
        let mut small = Splice::new(false, 7);
        let c = chunk("a", 1, &json!({"content": "Hello fr"}), &Value::Null);
        assert!(sent(&mut small, &c).is_some());
        assert!(!small.resumable());
        assert_eq!(small.text(), "");
        // A choice that is no object is left alone.
        let mut splice = primary(false);
        splice.continue_with(vec!["Hello fr".to_owned()]);
        let odd = json!({"id": "b", "choices": [7, {"index": 0, "delta": {"content": "om"}}]});
        assert_eq!(sent(&mut splice, &odd).unwrap()["choices"][0], 7);
        // Inside a tool call.
        let mut splice = primary(false);
        let tool = chunk(
            "a",
            1,
            &json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}),
            &Value::Null,
        );
        assert!(sent(&mut splice, &tool).is_some());
        assert!(!splice.resumable());
        // Several choices.
        let mut splice = primary(false);
        let other = json!({"id": "a", "created": 1, "choices": [{"index": 1, "delta": {"content": "x"}, "finish_reason": null}]});
        assert!(sent(&mut splice, &other).is_some());
        assert!(!splice.resumable());
    }
}
