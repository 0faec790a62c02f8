//! Arbitrary bytes in arbitrary pieces through the Anthropic stream
//! translator, then `finish`: no panic, output is SSE `data:` events, and
//! the same whatever the split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use understudy_provider::anthropic::AnthropicStreamTranslator;

/// What a translation produced: the output bytes, then the outcome of the
/// error that ended it, if any.
fn translate<'a>(
    pieces: impl Iterator<Item = &'a [u8]>,
    before_content: usize,
) -> (Vec<u8>, Option<String>) {
    let mut translator = AnthropicStreamTranslator::with_created(true, 0)
        .max_event_bytes(4096)
        .max_bytes_before_content(before_content);
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
    (out, None)
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, stream)) = input.split_first() else {
        return;
    };
    let whole = translate(std::iter::once(stream), usize::MAX);
    for event in whole
        .0
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
    {
        let data = event.strip_prefix(b"data: ").expect("a data line");
        if data != b"[DONE]" {
            serde_json::from_slice::<serde_json::Value>(data).expect("a JSON chunk");
        }
    }
    // Without the bound before content (whose check comes before a piece
    // is read, so it depends on the split), the output and the outcome are
    // the same whatever the split.
    let size = usize::from(seed % 32) + 1;
    let split = translate(stream.chunks(size), usize::MAX);
    assert_eq!(split, whole, "pieces of {size}");
    // With it, a small one: anything but a panic.
    let _ = translate(stream.chunks(size), 4096);
});
