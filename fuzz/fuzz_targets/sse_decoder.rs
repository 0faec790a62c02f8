//! Arbitrary bytes in arbitrary pieces through `SseDecoder`: no panic, the
//! same events (and the same error) whatever the split, nothing held past
//! the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use understudy_core::sse::{SseDecoder, SseError, SseEvent};

/// A small limit, so inputs of a few KiB reach it.
const LIMIT: usize = 512;

fn decode<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> (Vec<SseEvent>, Option<SseError>) {
    let mut decoder = SseDecoder::with_max_event_bytes(LIMIT);
    let mut events = Vec::new();
    for piece in pieces {
        decoder.push(piece);
        loop {
            match decoder.next_event() {
                Ok(Some(event)) => {
                    assert!(event.data.len() <= LIMIT);
                    events.push(event);
                }
                Ok(None) => break,
                Err(error) => {
                    // The error stays, and nothing more is taken.
                    decoder.push(b"data: x\n\n");
                    assert_eq!(decoder.next_event(), Err(error.clone()));
                    return (events, Some(error));
                }
            }
        }
    }
    (events, None)
}

fuzz_target!(|input: &[u8]| {
    // The first byte chooses the piece sizes; the rest is the stream.
    let Some((&seed, stream)) = input.split_first() else {
        return;
    };
    let whole = decode(std::iter::once(stream));
    let size = usize::from(seed % 64) + 1;
    assert_eq!(decode(stream.chunks(size)), whole, "pieces of {size}");
    // Uneven pieces: sizes taken from the stream itself.
    let mut rest = stream;
    let mut pieces = Vec::new();
    let mut step = usize::from(seed);
    while !rest.is_empty() {
        let take = (step % 17 + 1).min(rest.len());
        let (head, tail) = rest.split_at(take);
        pieces.push(head);
        step = step.wrapping_mul(31).wrapping_add(usize::from(head[0]));
        rest = tail;
    }
    assert_eq!(decode(pieces.into_iter()), whole, "uneven pieces");
});
