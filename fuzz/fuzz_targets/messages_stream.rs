//! Arbitrary bytes in arbitrary pieces through the OpenAI chat stream →
//! Anthropic Messages stream translator, then `finish`: no panic; the
//! output is Anthropic SSE (`event: <name>` and `data: <json>` blocks, of
//! the documented event names), `message_start` first and `message_stop`
//! last (after `message_delta`) when the stream finished without an error,
//! blocks indexed in order and closed before the message ends; the same
//! output and outcome whatever the split; and output linear in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use understudy_provider::messages::MessagesStreamTranslator;

/// A caller's model name, long enough that repeating it per event would
/// show in the output bound.
const MODEL: &str = "claude-sonnet-4-5-route-name-of-some-length";

const EVENTS: [&str; 6] = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
];

/// What a translation produced: the output bytes, then the outcome of the
/// error that ended it, if any.
fn translate<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> (Vec<u8>, Option<String>) {
    let mut translator = MessagesStreamTranslator::new(MODEL).max_event_bytes(4096);
    let mut out = Vec::new();
    for piece in pieces {
        match translator.push(piece) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(error) => {
                assert!(translator.is_finished());
                return (out, Some(format!("{:?}", error.outcome())));
            }
        }
    }
    match translator.finish() {
        Ok(bytes) => out.extend_from_slice(&bytes),
        Err(error) => return (out, Some(format!("{:?}", error.outcome()))),
    }
    assert!(translator.is_finished());
    (out, None)
}

/// The events of an output, checked to be Anthropic SSE: `event: <name>`
/// of the documented set and one `data: <json>` line whose `type` is the
/// name, each event ended by a blank line.
fn events(out: &[u8]) -> Vec<(&str, serde_json::Value)> {
    let text = std::str::from_utf8(out).expect("UTF-8 output");
    if text.is_empty() {
        return Vec::new();
    }
    let body = text.strip_suffix("\n\n").expect("ends with a blank line");
    body.split("\n\n")
        .map(|block| {
            let (event, data) = block.split_once('\n').expect("two lines");
            let name = event.strip_prefix("event: ").expect("an event line");
            let data = data.strip_prefix("data: ").expect("a data line");
            assert!(!data.contains('\n'), "one data line");
            assert!(EVENTS.contains(&name), "event {name}");
            let json: serde_json::Value = serde_json::from_str(data).expect("JSON data");
            assert_eq!(json["type"], name);
            (name, json)
        })
        .collect()
}

/// The events with `message_start`'s id blanked: without an upstream id,
/// it is made of the time.
fn comparable(out: &[u8]) -> Vec<(&str, serde_json::Value)> {
    let mut events = events(out);
    for (name, json) in &mut events {
        if *name == "message_start" {
            let id = json["message"]["id"].as_str().expect("a message id");
            assert!(id.starts_with("msg_"), "id {id}");
            json["message"]["id"] = serde_json::Value::Null;
        }
    }
    events
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, stream)) = input.split_first() else {
        return;
    };
    let whole = translate(std::iter::once(stream));
    let (out, error) = &whole;

    let events = comparable(out);
    let names: Vec<&str> = events.iter().map(|(name, _)| *name).collect();
    if let Some(first) = names.first() {
        assert_eq!(*first, "message_start");
        assert_eq!(names.iter().filter(|&&n| n == "message_start").count(), 1);
        assert_eq!(events[0].1["message"]["model"], MODEL);
    }
    // Blocks are indexed from 0 in order, one open at a time, and closed
    // before the message ends.
    let mut open = None;
    let mut next = 0;
    for (name, json) in &events {
        let index = json["index"].as_u64();
        match *name {
            "content_block_start" => {
                assert_eq!(open, None, "a block started inside another");
                assert_eq!(index, Some(next));
                open = index;
                next += 1;
            }
            "content_block_delta" => assert!(index.is_some() && index == open, "delta"),
            "content_block_stop" => {
                assert!(index.is_some() && index == open, "stop");
                open = None;
            }
            "message_delta" | "message_stop" => assert_eq!(open, None, "{name} in a block"),
            _ => {}
        }
    }
    if error.is_none() {
        assert_eq!(names.last(), Some(&"message_stop"));
        assert_eq!(names.iter().rev().nth(1), Some(&"message_delta"));
    } else {
        assert!(!names.contains(&"message_stop"));
    }
    // Linear in the input: a translation that repeated something of the
    // input per event would break this.
    assert!(
        out.len() <= 8 * stream.len() + 1024,
        "{} bytes out of {}",
        out.len(),
        stream.len()
    );

    // The same output and outcome whatever the split.
    let size = usize::from(seed % 32) + 1;
    let split = translate(stream.chunks(size));
    assert_eq!(split.1, whole.1, "outcome, pieces of {size}");
    assert_eq!(comparable(&split.0), events, "output, pieces of {size}");
});
