//! Arbitrary request bodies and models through `rewrite_model`: no panic,
//! and an accepted body is valid JSON whose (last, as JSON readers take it)
//! top-level `model` is the new model, with every value a strict reader
//! read in the input still readable.
#![no_main]

use std::fmt;

use libfuzzer_sys::fuzz_target;
use serde::Deserializer;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use understudy_provider::openai::rewrite_model;

/// The top-level `model` of a JSON object, read as a JSON reader would
/// (the last of duplicates wins), other values skipped unparsed.
struct TopModel(Option<serde_json::Value>);

impl<'de> serde::Deserialize<'de> for TopModel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopModel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopModel, A::Error> {
                let mut model = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "model" {
                        model = Some(map.next_value::<serde_json::Value>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(TopModel(model))
            }
        }
        deserializer.deserialize_map(V)
    }
}

fuzz_target!(|input: &[u8]| {
    // The first byte is the length of the model name, taken from the end.
    let Some((&len, rest)) = input.split_first() else {
        return;
    };
    let len = usize::from(len % 32).min(rest.len());
    let (body, model) = rest.split_at(rest.len() - len);
    let model = String::from_utf8_lossy(model);
    let Ok(out) = rewrite_model(body, &model) else {
        return;
    };
    // Validity of the JSON text, values left unparsed.
    serde_json::from_slice::<IgnoredAny>(&out).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {:?} from {:?}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(body)
        )
    });
    // A strict reader (serde_json refuses lone surrogate escapes, which the
    // JSON grammar allows) reads the output whenever it read the input, and
    // then finds the new model.
    match serde_json::from_slice::<TopModel>(&out) {
        Ok(top) => assert_eq!(
            top.0,
            Some(serde_json::Value::String(model.into_owned())),
            "{:?} from {:?}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(body)
        ),
        Err(e) => assert!(
            serde_json::from_slice::<TopModel>(body).is_err(),
            "the rewrite made a readable body unreadable ({e}): {:?} from {:?}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(body)
        ),
    }
});
