//! A non-streaming answer, read whole and judged by its shape before it is
//! released.

use std::pin::pin;

use bytes::{Bytes, BytesMut};
use http::{Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde::de::IgnoredAny;
use understudy_core::{BoxError, Classify, FailureKind, Outcome, ResponseBody};

use super::Config;
use super::error::body_failure;
use super::usage::{Tokens, Usage};

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
    /// The tokens the answer counts for.
    #[serde(default)]
    usage: Option<Usage>,
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

#[cfg(test)]
fn judge_whole(bytes: &[u8]) -> Whole {
    judge(bytes).0
}

/// Judges a body in one UTF-8 check and one parse that builds nothing but
/// the top-level fields that tell an answer (and its usage); a value that
/// does not start as an object is refused before either.
fn judge(bytes: &[u8]) -> (Whole, Option<Tokens>) {
    // serde would also read a struct from an array (`[{…}]`), by position.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return (Whole::NotJson, None);
    }
    // serde_json does not check the UTF-8 of what it skips (the answer's
    // text, here), so the whole body is checked first.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return (Whole::NotJson, None);
    };
    let top = serde_json::from_str::<TopLevel>(text);
    let tokens = top
        .as_ref()
        .ok()
        .and_then(|top| top.usage.as_ref())
        .map(Usage::tokens);
    let whole = match top {
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
    };
    (whole, tokens)
}

/// Reads a non-streaming body whole and checks it is a JSON answer; gives
/// back the answer's usage too, when it has one.
pub(super) async fn read_whole<B>(
    response: Response<B>,
    config: &Config,
) -> Result<(Response<ResponseBody>, Option<Tokens>), BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = response.into_parts();
    let bytes = read_limited(body, config.max_body)
        .await
        .map_err(body_failure)?;
    let (whole, tokens) = judge(&bytes);
    let outcome = match whole {
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
    let tokens = if outcome.is_none() { tokens } else { None };
    Ok((
        Response::from_parts(parts, ResponseBody::full(bytes)),
        tokens,
    ))
}

/// Reads a body whole, up to `max` bytes. A body that comes in one frame
/// (most answers) is kept as it came: no list of buffers, no copy.
async fn read_limited<B>(body: B, max: usize) -> Result<Bytes, BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = pin!(Limited::new(body, max));
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.as_mut().frame().await {
        // Trailers carry nothing an answer is judged by.
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if let Some(joined) = &mut joined {
            joined.extend_from_slice(&data);
        } else if first.is_empty() {
            first = data;
        } else {
            let mut both = BytesMut::with_capacity(first.len().saturating_add(data.len()));
            both.extend_from_slice(&first);
            both.extend_from_slice(&data);
            joined = Some(both);
        }
    }
    Ok(joined.map_or(first, BytesMut::freeze))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use http::HeaderMap;
    use http_body::Frame;
    use http_body_util::StreamBody;

    use super::{Tokens, Whole, judge, judge_whole, read_limited};

    fn body(
        frames: Vec<Frame<Bytes>>,
    ) -> impl http_body::Body<Data = Bytes, Error = std::io::Error> {
        StreamBody::new(futures_util::stream::iter(
            frames.into_iter().map(Ok).collect::<Vec<_>>(),
        ))
    }

    #[tokio::test]
    async fn a_body_in_one_frame_is_kept_as_it_came() {
        let answer = Bytes::from_static(br#"{"choices":[]}"#);
        let read = read_limited(body(vec![Frame::data(answer.clone())]), 1024)
            .await
            .unwrap();
        assert_eq!(read, answer);
        assert_eq!(read.as_ptr(), answer.as_ptr());
    }

    #[tokio::test]
    async fn frames_are_joined_in_order_and_trailers_skipped() {
        let frames = vec![
            Frame::data(Bytes::new()),
            Frame::data(Bytes::from_static(b"{\"choices\"")),
            Frame::data(Bytes::from_static(b":")),
            Frame::data(Bytes::new()),
            Frame::data(Bytes::from_static(b"[]}")),
            Frame::trailers(HeaderMap::new()),
        ];
        let read = read_limited(body(frames), 1024).await.unwrap();
        assert_eq!(read, r#"{"choices":[]}"#);
        let empty = read_limited(body(Vec::new()), 1024).await.unwrap();
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_an_error() {
        let frames = || {
            vec![
                Frame::data(Bytes::from_static(b"0123456789")),
                Frame::data(Bytes::from_static(b"0123456789")),
            ]
        };
        assert!(read_limited(body(frames()), 19).await.is_err());
        assert_eq!(read_limited(body(frames()), 20).await.unwrap().len(), 20);
    }

    #[test]
    fn an_answer_s_usage_is_read() {
        assert_eq!(
            judge(br#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#),
            (Whole::Answer, Some(Tokens { input: 7, output: 3 }))
        );
        assert_eq!(
            judge(
                br#"{"type":"message","content":[],"usage":{"input_tokens":4,"output_tokens":9}}"#
            ),
            (
                Whole::Answer,
                Some(Tokens {
                    input: 4,
                    output: 9
                })
            )
        );
        assert_eq!(judge(br#"{"choices":[]}"#), (Whole::Answer, None));
    }

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
