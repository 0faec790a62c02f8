//! Does an SSE event carry content? The commit rule of the first-chunk guard.

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde::de::IgnoredAny;
use understudy_core::sse::SseEvent;
use understudy_core::{Classify, FailureKind, Outcome};

/// What one event means for the commit point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Text, a tool call, a refusal or a finish reason: commit.
    Content,
    /// A role-only delta, a usage-only chunk, `message_start`, `ping`, an
    /// empty event: keep waiting.
    Preamble,
    /// An error event, `[DONE]` before any content, or data that is not
    /// JSON: the stream failed before it started.
    Failed(Outcome),
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    error: Option<IgnoredAny>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<&'a str>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
    #[serde(default, borrow)]
    refusal: Option<std::borrow::Cow<'a, str>>,
}

/// Judges one event of a stream whose response head had `headers`; error
/// events are read by `classifier`.
pub(crate) fn judge(event: &SseEvent, headers: &HeaderMap, classifier: &dyn Classify) -> Verdict {
    let data = event.data.trim();
    if event.event.as_deref() == Some("error") {
        return Verdict::Failed(error_outcome(data, headers, classifier));
    }
    if data.is_empty() {
        return Verdict::Preamble;
    }
    if event.is_done() {
        return Verdict::Failed(Outcome::Failure(FailureKind::StreamBroken));
    }
    let Ok(chunk) = serde_json::from_str::<Chunk<'_>>(data) else {
        return Verdict::Failed(Outcome::Failure(FailureKind::StreamBroken));
    };
    if chunk.error.is_some() || chunk.kind == Some("error") {
        return Verdict::Failed(error_outcome(data, headers, classifier));
    }
    if let Some(choices) = chunk.choices {
        let content = choices.iter().any(|choice| {
            choice.finish_reason.is_some()
                || choice.delta.as_ref().is_some_and(|delta| {
                    delta
                        .content
                        .as_deref()
                        .is_some_and(|text| !text.is_empty())
                        || delta
                            .refusal
                            .as_deref()
                            .is_some_and(|text| !text.is_empty())
                        || delta.tool_calls.is_some()
                        || delta.function_call.is_some()
                })
        });
        return if content {
            Verdict::Content
        } else {
            Verdict::Preamble
        };
    }
    match chunk.kind {
        // Anthropic's events before any content.
        Some("message_start" | "ping") => Verdict::Preamble,
        // Anything else that is JSON: content of a format this guard does
        // not know in detail.
        _ => Verdict::Content,
    }
}

/// The outcome of an error event: what the classifier makes of its body,
/// and a broken stream when it recognises nothing.
fn error_outcome(data: &str, headers: &HeaderMap, classifier: &dyn Classify) -> Outcome {
    match classifier.classify_parts(StatusCode::OK, headers, Some(data.as_bytes())) {
        Outcome::Success => Outcome::Failure(FailureKind::StreamBroken),
        outcome => outcome,
    }
}

#[cfg(test)]
mod tests {
    use understudy_core::LlmClassifier;

    use super::*;

    fn event(name: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: name.map(str::to_owned),
            data: data.to_owned(),
            id: None,
        }
    }

    fn judge_data(data: &str) -> Verdict {
        judge(&event(None, data), &HeaderMap::new(), &LlmClassifier::new())
    }

    const BROKEN: Verdict = Verdict::Failed(Outcome::Failure(FailureKind::StreamBroken));

    #[test]
    fn role_only_and_usage_only_chunks_do_not_commit() {
        assert_eq!(
            judge_data(
                r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#
            ),
            Verdict::Preamble
        );
        assert_eq!(
            judge_data(r#"{"choices":[],"usage":{"total_tokens":3}}"#),
            Verdict::Preamble
        );
        assert_eq!(
            judge_data(r#"{"type":"message_start","message":{}}"#),
            Verdict::Preamble
        );
        assert_eq!(
            judge(
                &event(Some("ping"), r#"{"type":"ping"}"#),
                &HeaderMap::new(),
                &LlmClassifier::new()
            ),
            Verdict::Preamble
        );
        assert_eq!(judge_data(""), Verdict::Preamble);
    }

    #[test]
    fn text_tool_calls_refusals_and_finish_reasons_commit() {
        assert_eq!(
            judge_data(r#"{"choices":[{"delta":{"content":"Hi"}}]}"#),
            Verdict::Content
        );
        assert_eq!(
            judge_data(
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":""}}]}}]}"#
            ),
            Verdict::Content
        );
        assert_eq!(
            judge_data(r#"{"choices":[{"delta":{"refusal":"No."}}]}"#),
            Verdict::Content
        );
        assert_eq!(
            judge_data(r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#),
            Verdict::Content
        );
        assert_eq!(
            judge_data(r#"{"type":"content_block_delta","delta":{"text":"Hi"}}"#),
            Verdict::Content
        );
    }

    #[test]
    fn errors_done_and_garbage_before_content_fail() {
        assert_eq!(judge_data("[DONE]"), BROKEN);
        assert_eq!(judge_data("<html>502 Bad Gateway</html>"), BROKEN);
        assert_eq!(
            judge_data(r#"{"error":{"message":"boom","type":"server_error"}}"#),
            BROKEN
        );
        assert_eq!(
            judge(
                &event(
                    Some("error"),
                    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                ),
                &HeaderMap::new(),
                &LlmClassifier::new()
            ),
            Verdict::Failed(Outcome::Failure(FailureKind::Overloaded))
        );
    }
}
