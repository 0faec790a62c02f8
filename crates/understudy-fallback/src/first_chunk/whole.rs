//! A non-streaming answer, read whole and judged by its shape before it is
//! released.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde::de::IgnoredAny;
use understudy_core::{BoxError, Classify, FailureKind, Outcome, ResponseBody};

use super::Config;
use super::error::body_failure;

/// The top level of a non-streaming body: only the fields that tell an
/// answer from anything else are looked at; their contents are skipped
/// without being built.
#[derive(Deserialize)]
struct TopLevel {
    #[serde(default)]
    error: Option<IgnoredAny>,
    /// Chat completions (and legacy completions).
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
    /// Embeddings.
    #[serde(default)]
    data: Option<Vec<IgnoredAny>>,
    /// Anthropic's Messages API (a `message` answers with `content`).
    #[serde(default)]
    content: Option<Vec<IgnoredAny>>,
}

/// What a whole non-streaming body is.
#[derive(Debug, PartialEq, Eq)]
enum Whole {
    /// A JSON object without a top-level `error`, with a `choices`, a
    /// `data` or a `content` array.
    Answer,
    /// A JSON object with a top-level `error`.
    ErrorEnvelope,
    /// Anything else: not UTF-8, not JSON, not an object, or an object
    /// without the shape of an answer (`{}`, `{"ok":true}`).
    NotJson,
}

/// Judges a body in one UTF-8 check and one parse that builds nothing but
/// the three top-level fields; a value that does not start as an object is
/// refused before either.
fn judge_whole(bytes: &[u8]) -> Whole {
    // serde would also read a struct from an array (`[{…}]`), by position.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Whole::NotJson;
    }
    // serde_json does not check the UTF-8 of what it skips (the answer's
    // text, here), so the whole body is checked first.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Whole::NotJson;
    };
    match serde_json::from_str::<TopLevel>(text) {
        Ok(TopLevel { error: Some(_), .. }) => Whole::ErrorEnvelope,
        Ok(
            TopLevel {
                choices: Some(_), ..
            }
            | TopLevel { data: Some(_), .. }
            | TopLevel {
                content: Some(_), ..
            },
        ) => Whole::Answer,
        Ok(_) | Err(_) => Whole::NotJson,
    }
}

/// Reads a non-streaming body whole and checks it is a JSON answer.
pub(super) async fn read_whole<B>(
    response: Response<B>,
    config: &Config,
) -> Result<Response<ResponseBody>, BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = response.into_parts();
    let bytes: Bytes = match Limited::new(body, config.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return Err(body_failure(error)),
    };
    let outcome = match judge_whole(&bytes) {
        Whole::Answer => None,
        Whole::ErrorEnvelope => Some(
            match config
                .classifier
                .classify_parts(parts.status, &parts.headers, Some(&bytes))
            {
                Outcome::Success => Outcome::Failure(FailureKind::StreamBroken),
                outcome => outcome,
            },
        ),
        Whole::NotJson => Some(Outcome::Failure(FailureKind::StreamBroken)),
    };
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, bytes.len().into());
    if let Some(outcome) = outcome {
        parts.extensions.insert(outcome);
        if outcome.is_provider_failure() {
            // Whatever the upstream said, this was no success.
            parts.status = StatusCode::BAD_GATEWAY;
        }
    }
    Ok(Response::from_parts(parts, ResponseBody::full(bytes)))
}

#[cfg(test)]
mod tests {
    use super::{Whole, judge_whole};

    #[test]
    fn whole_bodies_are_judged_by_shape() {
        assert_eq!(judge_whole(br#" {"choices":[]} "#), Whole::Answer);
        assert_eq!(
            judge_whole(br#"{"choices":[{"message":{"content":"the \"error\" was mine"}}]}"#),
            Whole::Answer
        );
        assert_eq!(
            judge_whole(br#"{"type":"message","content":[{"type":"text","text":"Hi"}]}"#),
            Whole::Answer
        );
        assert_eq!(
            judge_whole(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#
            ),
            Whole::ErrorEnvelope
        );
        assert_eq!(
            judge_whole(br#"{"object":"list","data":[{"embedding":[0.1]}]}"#),
            Whole::Answer
        );
        assert_eq!(
            judge_whole(br#"{"error":{"message":"boom"}}"#),
            Whole::ErrorEnvelope
        );
        assert_eq!(
            judge_whole(br#"{"choices":[],"error":{"message":"boom"}}"#),
            Whole::ErrorEnvelope
        );
        assert_eq!(judge_whole(b"<html>502</html>"), Whole::NotJson);
        assert_eq!(judge_whole(b""), Whole::NotJson);
        assert_eq!(judge_whole(br#"{"error": oops}"#), Whole::NotJson);
    }

    #[test]
    fn braces_are_not_enough_to_be_an_answer() {
        assert_eq!(judge_whole(b"{this is not json}"), Whole::NotJson);
        assert_eq!(judge_whole(b"{}"), Whole::NotJson);
        assert_eq!(judge_whole(br#"{"ok":true}"#), Whole::NotJson);
        assert_eq!(judge_whole(br#"{"choices":"none"}"#), Whole::NotJson);
        assert_eq!(judge_whole(br#"{"data":{}}"#), Whole::NotJson);
        assert_eq!(judge_whole(br#"[{"choices":[]}]"#), Whole::NotJson);
        assert_eq!(judge_whole(br#"{"choices":[]} trailing"#), Whole::NotJson);
        // Not UTF-8, inside a string of an otherwise good answer.
        assert_eq!(
            judge_whole(b"{\"choices\":[{\"message\":{\"content\":\"\xff\xfe\"}}]}"),
            Whole::NotJson
        );
    }
}
