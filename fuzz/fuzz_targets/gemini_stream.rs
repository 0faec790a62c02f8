//! Arbitrary bytes in arbitrary pieces through the Gemini stream
//! translator, then `finish`: no panic; the output is SSE `data:` events,
//! each a JSON chunk of one stream (one `id`, one `model`, the role
//! first, nothing but usage after the finish reason) or a last `[DONE]`; the same output and outcome whatever the split; and no
//! larger than the input allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use understudy_provider::gemini::GeminiStreamTranslator;

/// The bound on a line or an event, small enough for the fuzzer to cross.
const MAX_EVENT_BYTES: usize = 4096;

/// What a translation produced: the output bytes, then the outcome of the
/// error that ended it, if any.
fn translate<'a>(
    pieces: impl Iterator<Item = &'a [u8]>,
    include_usage: bool,
) -> (Vec<u8>, Option<String>) {
    let mut translator = GeminiStreamTranslator::with_created("gemini-fuzz", include_usage, 0)
        .max_event_bytes(MAX_EVENT_BYTES);
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
    // Finished: more input and another finish add nothing.
    assert_eq!(
        translator.push(b"data: {}\n\n").map(|b| b.len()).ok(),
        Some(0)
    );
    assert_eq!(translator.finish().map(|b| b.len()).ok(), Some(0));
    (out, None)
}

/// The chunks of an output, checked: `data:` lines, each JSON of one
/// stream, `[DONE]` last and only after a whole stream. Returns them with
/// the `id` (process-unique when Gemini gives none) blanked, to compare.
fn chunks(output: &(Vec<u8>, Option<String>)) -> Vec<Value> {
    let (bytes, outcome) = output;
    let text = std::str::from_utf8(bytes).expect("UTF-8 output");
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "a whole event last"
    );
    let mut chunks = Vec::new();
    let mut stream: Option<(Value, Value)> = None;
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
        let mut chunk: Value = serde_json::from_str(data).expect("a JSON chunk");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["created"], 0);
        let this = (chunk["id"].clone(), chunk["model"].clone());
        assert!(
            this.0
                .as_str()
                .is_some_and(|id| id.starts_with("chatcmpl-"))
        );
        assert!(this.1.is_string());
        match &stream {
            None => {
                assert_eq!(
                    chunk["choices"][0]["delta"]["role"], "assistant",
                    "the role first"
                );
                stream = Some(this);
            }
            Some(first) => assert_eq!(&this, first, "one id and model per stream"),
        }
        let choices = chunk["choices"].as_array().expect("choices");
        if choices.is_empty() {
            assert!(chunk["usage"].is_object(), "a usage chunk");
        } else {
            assert!(!finished, "a choice after the finish reason");
            finished = !choices[0]["finish_reason"].is_null();
        }
        chunk["id"] = Value::Null;
        chunks.push(chunk);
    }
    assert!(!done || finished, "[DONE] without a finish reason");
    // `[DONE]` ends exactly the streams that end without an error.
    assert_eq!(done, outcome.is_none());
    chunks
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, stream)) = input.split_first() else {
        return;
    };
    let include_usage = seed & 0x80 != 0;
    let whole = translate(std::iter::once(stream), include_usage);
    let whole_chunks = chunks(&whole);

    // Each chunk comes of an SSE event of at least a few bytes, and holds
    // no more of the input than that event, besides the stream's `id` and
    // `model` (each under the event bound) that every chunk repeats.
    let count = whole_chunks.len();
    assert!(
        count <= stream.len() / 8 + 4,
        "{count} chunks of {} bytes",
        stream.len()
    );
    let per_chunk = 1024 + 2 * MAX_EVENT_BYTES;
    assert!(whole.0.len() <= count * per_chunk + 2 * stream.len() + 64);

    // The output and the outcome are the same whatever the split: the
    // event bound is checked on each line and event, not on what a piece
    // brought, so no bound here depends on the split.
    let size = usize::from(seed % 64) + 1;
    let split = translate(stream.chunks(size), include_usage);
    assert_eq!(split.1, whole.1, "outcome, pieces of {size}");
    assert_eq!(chunks(&split), whole_chunks, "chunks, pieces of {size}");
});
