//! Arbitrary bytes in arbitrary pieces through the Bedrock event-stream
//! translator, then `finish`: no panic; the output is SSE `data:` events,
//! each a JSON chunk (the role first, nothing but usage after the finish
//! reason) or a last `[DONE]`; the same output and outcome whatever the
//! split; no larger than the input allows; and a frame whose declared
//! length is over the bound stops the stream as soon as its length is
//! read, before its bytes are buffered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use understudy_provider::bedrock::BedrockStreamTranslator;

/// The frame bounds tried: small ones the fuzzer can cross, and the
/// default.
const BOUNDS: [Option<usize>; 4] = [Some(64), Some(1024), Some(16 * 1024), None];

/// The smallest frame: a 12-byte prelude and a 4-byte message CRC.
const MIN_FRAME_BYTES: usize = 16;

fn translator(include_usage: bool, bound: Option<usize>) -> BedrockStreamTranslator {
    let translator = BedrockStreamTranslator::new(
        "chatcmpl-fuzz".to_owned(),
        "bedrock-fuzz".to_owned(),
        0,
        include_usage,
    );
    match bound {
        Some(bytes) => translator.max_event_bytes(bytes),
        None => translator,
    }
}

/// What a translation produced: the output bytes, then the outcome of the
/// error that ended it, if any.
fn translate<'a>(
    pieces: impl Iterator<Item = &'a [u8]>,
    include_usage: bool,
    bound: Option<usize>,
) -> (Vec<u8>, Option<String>) {
    let mut translator = translator(include_usage, bound);
    let mut out = Vec::new();
    for piece in pieces {
        match translator.push(piece) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(error) => return (out, Some(format!("{:?}", error.outcome()))),
        }
    }
    match translator.finish() {
        Ok(bytes) => out.extend_from_slice(&bytes),
        Err(error) => return (out, Some(format!("{:?}", error.outcome()))),
    }
    assert!(translator.is_finished());
    assert_eq!(
        translator.push(b"\0\0\0\x10").map(|b| b.len()).ok(),
        Some(0)
    );
    assert_eq!(translator.finish().map(|b| b.len()).ok(), Some(0));
    (out, None)
}

/// How many bytes had been pushed when the translation stopped (an
/// error, held back or not, or the stream's end), if it stopped before
/// `finish`.
fn stopped_after<'a>(
    pieces: impl Iterator<Item = &'a [u8]>,
    include_usage: bool,
    bound: Option<usize>,
) -> Option<usize> {
    let mut translator = translator(include_usage, bound);
    let mut pushed = 0usize;
    for piece in pieces {
        pushed += piece.len();
        if translator.push(piece).is_err()
            || translator.take_error().is_some()
            || translator.is_finished()
        {
            return Some(pushed);
        }
    }
    None
}

/// The output, checked: `data:` lines, each a JSON chunk of this stream,
/// the role first, nothing but usage after the finish reason, `[DONE]`
/// last and exactly when the stream ended without an error.
fn check(output: &(Vec<u8>, Option<String>)) {
    let (bytes, outcome) = output;
    let text = std::str::from_utf8(bytes).expect("UTF-8 output");
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "a whole event last"
    );
    let mut first = true;
    let mut done = false;
    let mut finished = false;
    for event in text.split("\n\n").filter(|event| !event.is_empty()) {
        assert!(!done, "an event after [DONE]");
        let data = event.strip_prefix("data: ").expect("a data line");
        assert!(!data.contains('\n'), "one line per event");
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(data).expect("a JSON chunk");
        assert_eq!(chunk["id"], "chatcmpl-fuzz");
        assert_eq!(chunk["model"], "bedrock-fuzz");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        let choices = chunk["choices"].as_array().expect("choices");
        if choices.is_empty() {
            assert!(chunk["usage"].is_object(), "a usage chunk");
            continue;
        }
        if first {
            assert_eq!(choices[0]["delta"]["role"], "assistant", "the role first");
            first = false;
        }
        assert!(!finished, "a choice after the finish reason: {data}");
        finished = !choices[0]["finish_reason"].is_null();
    }
    assert!(!done || finished, "[DONE] without a finish reason");
    assert_eq!(done, outcome.is_none());
}

/// Where the first frame whose declared length cannot be read as a frame
/// (over `bound` or under the smallest frame) starts, walking the
/// declared lengths from the start.
fn first_bad_frame(stream: &[u8], bound: usize) -> Option<usize> {
    let mut at = 0usize;
    while let Some(prelude) = stream.get(at..).and_then(|rest| rest.first_chunk::<4>()) {
        let total = usize::try_from(u32::from_be_bytes(*prelude)).ok()?;
        if total > bound || total < MIN_FRAME_BYTES {
            return Some(at);
        }
        at = at.checked_add(total)?;
    }
    None
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, stream)) = input.split_first() else {
        return;
    };
    let include_usage = seed & 0x80 != 0;
    let bound = BOUNDS[usize::from(seed >> 5) & 3];
    let whole = translate(std::iter::once(stream), include_usage, bound);
    check(&whole);

    // Each chunk comes of a frame of at least the frame's overhead, and
    // holds no more of the input than that frame.
    assert!(
        whole.0.len() <= 4 * stream.len() + 1024,
        "{} bytes out of {}",
        whole.0.len(),
        stream.len()
    );

    // The output and the outcome are the same whatever the split.
    let size = usize::from(seed % 32) + 1;
    let split = translate(stream.chunks(size), include_usage, bound);
    assert_eq!(split, whole, "pieces of {size}");

    // A frame that cannot be read stops the stream once its length is in.
    let limit = bound.unwrap_or(understudy_core::sse::DEFAULT_MAX_EVENT_BYTES);
    if let Some(at) = first_bad_frame(stream, limit) {
        let length_in = (at + 4).div_ceil(size) * size;
        let stopped = stopped_after(stream.chunks(size), include_usage, bound);
        assert!(
            stopped.is_some_and(|pushed| pushed <= length_in),
            "a bad frame at {at}, stopped after {stopped:?} bytes, pieces of {size}"
        );
    }
});
