//! The OpenAI-compatible dialect: only `model` changes.
//!
//! [`OpenAiDialect`] speaks OpenAI's chat-completions API, which most
//! servers copy (vLLM, Ollama, Groq, Together, Mistral, `DeepSeek`,
//! `OpenRouter`, …): requests go to `{base_url}/chat/completions` with
//! `Authorization: Bearer <key>`, and answers, streams and errors already
//! have the shape the caller expects. It uses every default of
//! [`Dialect`].
//!
//! A request for an OpenAI-compatible server is the caller's own bytes with
//! the top-level `model` value replaced. [`rewrite_model`] finds that value
//! with a validating scan of the JSON text and splices the new value in,
//! so every other byte (unknown fields, key order, whitespace, number
//! formatting) reaches the provider as the caller wrote it. A `model` key
//! nested inside messages, tools or strings is not touched. When the body
//! has no top-level `model`, one is inserted as the object's first member.

use bytes::Bytes;
use serde_json::Value;

use super::Dialect;
use crate::error::ProviderError;

/// The dialect of OpenAI's chat-completions API and the servers compatible
/// with it: the defaults of [`Dialect`], named `openai`.
///
/// ```
/// use understudy_provider::dialect::openai::OpenAiDialect;
/// use understudy_provider::dialect::{Dialect, Operation, Reply};
///
/// let dialect = OpenAiDialect::new();
/// assert_eq!(dialect.endpoint(Operation::ChatCompletions, "gpt-4o", false).as_deref(), Some("chat/completions"));
/// let upstream = dialect
///     .translate_request(Operation::ChatCompletions, br#"{"model":"chat","messages":[]}"#, "gpt-4o")
///     .unwrap();
/// assert_eq!(upstream.body, r#"{"model":"gpt-4o","messages":[]}"#);
/// assert_eq!(upstream.reply, Reply::PassThrough);
/// ```
#[derive(Clone, Debug, Default)]
pub struct OpenAiDialect {
    _private: (),
}

impl OpenAiDialect {
    /// The dialect.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl Dialect for OpenAiDialect {
    fn name(&self) -> &'static str {
        "openai"
    }
}

/// Nesting deeper than this is left to `serde_json` (whose own limit is the
/// same), which refuses it.
const MAX_DEPTH: usize = 128;

/// Returns `body` with its top-level `model` set to `model`.
///
/// Only the bytes of the old value change; a body without `model` gets
/// `"model":…` inserted after its opening brace. A body that is not a JSON
/// object is refused.
///
/// # Example
///
/// ```
/// use understudy_provider::openai::rewrite_model;
///
/// let body = br#"{ "model" : "chat", "messages":[{"role":"user","content":"{\"model\":1}"}], "x_future": 1.50 }"#;
/// let out = rewrite_model(body, "gpt-4o-mini").unwrap();
/// assert_eq!(
///     out,
///     r#"{ "model" : "gpt-4o-mini", "messages":[{"role":"user","content":"{\"model\":1}"}], "x_future": 1.50 }"#,
/// );
/// assert_eq!(rewrite_model(b"{}", "m").unwrap(), r#"{"model":"m"}"#);
/// assert!(rewrite_model(b"[1,2]", "m").is_err());
/// ```
pub fn rewrite_model(body: &[u8], model: &str) -> Result<Bytes, ProviderError> {
    let model_json = JsonString::new(model);
    match scan_top_level(body) {
        Some(scan) => Ok(splice(body, &scan, &model_json)),
        None => rewrite_by_value(body, &model_json.to_vec()),
    }
}

/// A JSON string literal for a text, written where it is needed: a text
/// with nothing to escape (every model name in practice) is not encoded
/// on its own first.
enum JsonString<'a> {
    /// No quote, backslash or control character: the text between quotes.
    Plain(&'a str),
    /// The literal as `serde_json` writes it.
    Encoded(Vec<u8>),
}

impl<'a> JsonString<'a> {
    fn new(text: &'a str) -> Self {
        if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            Self::Plain(text)
        } else {
            // Serialising a str cannot fail.
            Self::Encoded(serde_json::to_vec(text).unwrap_or_else(|_| b"\"\"".to_vec()))
        }
    }

    /// The literal's length in bytes, quotes included.
    fn len(&self) -> usize {
        match self {
            Self::Plain(text) => text.len().saturating_add(2),
            Self::Encoded(literal) => literal.len(),
        }
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Self::Plain(text) => {
                out.push(b'"');
                out.extend_from_slice(text.as_bytes());
                out.push(b'"');
            }
            Self::Encoded(literal) => out.extend_from_slice(literal),
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut literal = Vec::with_capacity(self.len());
        self.write_to(&mut literal);
        literal
    }
}

/// The body with its `model` values replaced (or one inserted), in a
/// buffer of exactly its length: it becomes the `Bytes` without a copy or
/// a second allocation.
fn splice(body: &[u8], scan: &TopLevel, model_json: &JsonString<'_>) -> Bytes {
    if scan.model_values().next().is_none() {
        // `{` + `"model":` + the value + `,` (unless the object is empty) + the rest.
        let len = body
            .len()
            .saturating_add(8)
            .saturating_add(model_json.len())
            .saturating_add(usize::from(!scan.empty));
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&body[..scan.after_open]);
        out.extend_from_slice(b"\"model\":");
        model_json.write_to(&mut out);
        if !scan.empty {
            out.push(b',');
        }
        out.extend_from_slice(&body[scan.after_open..]);
        return Bytes::from(out);
    }
    let len = scan.model_values().fold(body.len(), |len, (start, end)| {
        len.saturating_sub(end.saturating_sub(start))
            .saturating_add(model_json.len())
    });
    let mut out = Vec::with_capacity(len);
    let mut copied = 0;
    for (start, end) in scan.model_values() {
        out.extend_from_slice(&body[copied..start]);
        model_json.write_to(&mut out);
        copied = end;
    }
    out.extend_from_slice(&body[copied..]);
    Bytes::from(out)
}

/// The slow path, for bodies the scan does not accept: `serde_json` decides
/// whether the body is valid, and the document is re-serialised.
fn rewrite_by_value(body: &[u8], model_json: &[u8]) -> Result<Bytes, ProviderError> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| {
        ProviderError::invalid_request(format!("request body is not valid JSON: {e}"))
    })?;
    let model: Value = serde_json::from_slice(model_json)
        .map_err(|e| ProviderError::invalid_request(e.to_string()))?;
    let Some(object) = value.as_object_mut() else {
        return Err(ProviderError::invalid_request(
            "request body is not a JSON object",
        ));
    };
    object.insert("model".to_owned(), model);
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| ProviderError::invalid_request(e.to_string()))
}

/// What the scan of a top-level object found.
#[derive(Debug)]
struct TopLevel {
    /// Index just past the opening brace.
    after_open: usize,
    /// The object has no members.
    empty: bool,
    /// The byte range of the first top-level `model` value.
    first_model: Option<(usize, usize)>,
    /// Those of any further `model` values (a body may repeat a key).
    more_models: Vec<(usize, usize)>,
}

impl TopLevel {
    /// The byte ranges of every top-level `model` value, in order.
    fn model_values(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.first_model
            .into_iter()
            .chain(self.more_models.iter().copied())
    }
}

/// Scans `body` as one JSON object, validating its grammar, and records
/// where its top-level `model` values are. `None` when the body is not a
/// valid JSON object (or nests deeper than [`MAX_DEPTH`]).
fn scan_top_level(body: &[u8]) -> Option<TopLevel> {
    let mut first_model = None;
    let mut more_models = Vec::new();
    let (after_open, empty) = scan_object(body, |member| {
        if is_key(member.key, member.escaped, "model") {
            if first_model.is_none() {
                first_model = Some(member.value);
            } else {
                more_models.push(member.value);
            }
        }
    })?;
    Some(TopLevel {
        after_open,
        empty,
        first_model,
        more_models,
    })
}

/// One top-level member of an object, as [`scan_object`] finds it.
struct Member<'a> {
    /// The key's JSON text, quotes included.
    key: &'a [u8],
    /// The key holds an escape.
    escaped: bool,
    /// The byte range of the value.
    value: (usize, usize),
}

/// Scans `body` as one JSON object, validating its grammar, and shows each
/// top-level member to `member`. Returns the index just past the opening
/// brace and whether the object is empty; `None` when the body is not a
/// valid JSON object (or nests deeper than [`MAX_DEPTH`]).
fn scan_object<'a>(body: &'a [u8], mut member: impl FnMut(Member<'a>)) -> Option<(usize, bool)> {
    std::str::from_utf8(body).ok()?;
    let mut scanner = Scanner {
        bytes: body,
        pos: 0,
    };
    scanner.whitespace();
    scanner.expect(b'{')?;
    let after_open = scanner.pos;
    let mut empty = false;
    scanner.whitespace();
    if scanner.peek() == Some(b'}') {
        scanner.pos += 1;
        empty = true;
    } else {
        loop {
            scanner.whitespace();
            let key_start = scanner.pos;
            let escaped = scanner.string()?;
            let key = &body[key_start..scanner.pos];
            scanner.whitespace();
            scanner.expect(b':')?;
            scanner.whitespace();
            let value_start = scanner.pos;
            scanner.value(1)?;
            member(Member {
                key,
                escaped,
                value: (value_start, scanner.pos),
            });
            scanner.whitespace();
            match scanner.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    scanner.whitespace();
    (scanner.pos == body.len()).then_some((after_open, empty))
}

/// Asks a streamed chat request for its usage: `body` with
/// `"stream_options": {"include_usage": true}` when it has `"stream": true`
/// and does not ask already; `None` when it is not a stream, already asks,
/// or is not a JSON object this scan reads (it is then sent as it is).
///
/// Only `stream_options` changes: added as the object's first member, or,
/// when the caller sent other options, rewritten with `include_usage` set.
/// A body without the text `"stream"` costs one search.
pub(crate) fn ask_stream_usage(body: &[u8]) -> Option<Bytes> {
    static STREAM: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"stream\""));
    STREAM.find(body)?;
    let mut stream = None;
    let mut options = None;
    let mut escaped_key = false;
    let (after_open, _) = scan_object(body, |member| {
        escaped_key |= member.escaped;
        if member.key == b"\"stream\"" {
            stream = Some(member.value);
        } else if member.key == b"\"stream_options\"" {
            options = Some(member.value);
        }
    })?;
    // A key spelled with escapes could repeat either: leave such a body be.
    if escaped_key || body.get(stream?.0..stream?.1)? != b"true" {
        return None;
    }
    let mut out = Vec::with_capacity(body.len().saturating_add(40));
    match options {
        None => {
            out.extend_from_slice(body.get(..after_open)?);
            out.extend_from_slice(b"\"stream_options\":{\"include_usage\":true},");
            out.extend_from_slice(body.get(after_open..)?);
        }
        Some((start, end)) => {
            let value: Value = serde_json::from_slice(body.get(start..end)?).ok()?;
            let mut options = match value {
                Value::Object(options) => options,
                Value::Null => serde_json::Map::new(),
                _ => return None,
            };
            if options.get("include_usage") == Some(&Value::Bool(true)) {
                return None;
            }
            options.insert("include_usage".to_owned(), Value::Bool(true));
            out.extend_from_slice(body.get(..start)?);
            serde_json::to_writer(&mut out, &options).ok()?;
            out.extend_from_slice(body.get(end..)?);
        }
    }
    Some(Bytes::from(out))
}

/// Whether the JSON text `key` (quotes included) is the string `name`.
fn is_key(key: &[u8], escaped: bool, name: &str) -> bool {
    if escaped {
        serde_json::from_slice::<String>(key).is_ok_and(|key| key == name)
    } else {
        key.strip_prefix(b"\"")
            .and_then(|key| key.strip_suffix(b"\""))
            .is_some_and(|key| key == name.as_bytes())
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// A string; says whether it held an escape.
    fn string(&mut self) -> Option<bool> {
        self.expect(b'"')?;
        let mut escaped = false;
        loop {
            let rest = &self.bytes[self.pos..];
            let stop = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            self.pos += stop;
            match self.next()? {
                b'"' => return Some(escaped),
                b'\\' => {
                    escaped = true;
                    match self.next()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            for _ in 0..4 {
                                if !self.next()?.is_ascii_hexdigit() {
                                    return None;
                                }
                            }
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => {
                self.pos += 1;
                self.whitespace();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.whitespace();
                    self.string()?;
                    self.whitespace();
                    self.expect(b':')?;
                    self.whitespace();
                    self.value(depth + 1)?;
                    self.whitespace();
                    match self.next()? {
                        b',' => {}
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                self.whitespace();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.whitespace();
                    self.value(depth + 1)?;
                    self.whitespace();
                    match self.next()? {
                        b',' => {}
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(word.len())?;
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn rewrite(body: &str) -> String {
        String::from_utf8(
            rewrite_model(body.as_bytes(), "up/model \"x\"")
                .unwrap()
                .to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn replaces_only_the_top_level_value() {
        let body = r#"{"messages":[{"role":"user","content":"hi","model":"inner"}],"model":"chat","tools":[{"function":{"parameters":{"model":{"type":"string"}}}}]}"#;
        assert_eq!(
            rewrite(body),
            r#"{"messages":[{"role":"user","content":"hi","model":"inner"}],"model":"up/model \"x\"","tools":[{"function":{"parameters":{"model":{"type":"string"}}}}]}"#
        );
    }

    #[test]
    fn keeps_whitespace_numbers_and_escapes() {
        let body = "{\n  \"temperature\" : 1.50e0,\n  \"model\"\t:\t\"a\\\"b\\u00e9\" ,\n  \"s\": \"\\\\\\\"model\\\": 1\"\n}\n";
        assert_eq!(
            rewrite(body),
            "{\n  \"temperature\" : 1.50e0,\n  \"model\"\t:\t\"up/model \\\"x\\\"\" ,\n  \"s\": \"\\\\\\\"model\\\": 1\"\n}\n"
        );
    }

    #[test]
    fn escaped_key_is_still_model() {
        assert_eq!(
            rewrite(r#"{"mod\u0065l":"chat"}"#),
            r#"{"mod\u0065l":"up/model \"x\""}"#
        );
    }

    #[test]
    fn non_string_model_values_are_replaced_whole() {
        assert_eq!(
            rewrite(r#"{"model":{"a":[1,{"b":null}]},"n":1}"#),
            r#"{"model":"up/model \"x\"","n":1}"#
        );
        assert_eq!(
            rewrite(r#"{"model":null}"#),
            r#"{"model":"up/model \"x\""}"#
        );
    }

    #[test]
    fn inserts_a_missing_model() {
        assert_eq!(
            rewrite(r#" { "n" : 1 }"#),
            r#" {"model":"up/model \"x\"", "n" : 1 }"#
        );
        assert_eq!(rewrite("{ }"), r#"{"model":"up/model \"x\"" }"#);
    }

    #[test]
    fn model_names_are_written_as_serde_json_writes_them() {
        for name in [
            "gpt-4o-mini",
            "models/gemini-2.0-flash",
            "café 模型",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{1}",
            "",
        ] {
            let literal = serde_json::to_string(name).unwrap();
            assert_eq!(
                rewrite_model(br#"{"model":"chat","n":1}"#, name).unwrap(),
                format!(r#"{{"model":{literal},"n":1}}"#),
                "{name:?}"
            );
            assert_eq!(
                rewrite_model(br#"{"n":1}"#, name).unwrap(),
                format!(r#"{{"model":{literal},"n":1}}"#),
                "{name:?}"
            );
            assert!(rewrite_model(b"[1,2]", name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn every_duplicate_is_replaced() {
        assert_eq!(
            rewrite(r#"{"model":"a","model":"b"}"#),
            r#"{"model":"up/model \"x\"","model":"up/model \"x\""}"#
        );
    }

    #[test]
    fn invalid_json_is_refused() {
        for body in [
            "",
            "[]",
            "\"model\"",
            r#"{"model":"a""#,
            r#"{"model":"a",}"#,
            r#"{"model":01}"#,
            r#"{"model":"a"} x"#,
            "{\"model\":\"a\u{1}\"}",
            r#"{"a":tru}"#,
        ] {
            assert!(rewrite_model(body.as_bytes(), "m").is_err(), "{body:?}");
        }
    }

    #[test]
    fn scan_agrees_with_serde_json() {
        let bodies = [
            r#"{"a":[1,-2.5e+3,true,false,null,{"b":"c\n"}],"model":"x"}"#,
            r#"{"a":"\ud83d\ude00","model":"x"}"#,
            r#"{"a":{},"b":[],"model":[]}"#,
        ];
        for body in bodies {
            let out = rewrite_model(body.as_bytes(), "m").unwrap();
            let value: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(value["model"], "m");
            let mut original: Value = serde_json::from_str(body).unwrap();
            original["model"] = "m".into();
            assert_eq!(value, original);
        }
    }

    #[test]
    fn deep_nesting_falls_back_to_serde_json() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(scan_top_level(deep.as_bytes()).is_none());
        assert!(rewrite_model(deep.as_bytes(), "m").is_err());
    }

    fn ask(body: &str) -> Option<String> {
        ask_stream_usage(body.as_bytes()).map(|out| String::from_utf8(out.to_vec()).unwrap())
    }

    #[test]
    fn a_stream_is_asked_for_its_usage() {
        assert_eq!(
            ask(r#"{"model":"m","stream":true,"messages":[]}"#).as_deref(),
            Some(
                r#"{"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[]}"#
            )
        );
        // Other options are kept; a caller's `false` becomes `true`.
        let out = ask(r#"{"stream" : true, "stream_options": {"include_usage": false, "x": 1}}"#)
            .unwrap();
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["stream_options"]["include_usage"], true);
        assert_eq!(value["stream_options"]["x"], 1);
        let out = ask(r#"{"stream":true,"stream_options":null}"#).unwrap();
        assert_eq!(
            out,
            r#"{"stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn only_streams_that_do_not_ask_are_changed() {
        for body in [
            r#"{"model":"m","messages":[]}"#,
            r#"{"model":"m","stream":false}"#,
            r#"{"stream":true,"stream_options":{"include_usage":true}}"#,
            r#"{"messages":[{"content":"\"stream\": true"}]}"#,
            r#"{"stream":true,"stream_options":[1]}"#,
            r#"{"stream":true,"str\u0065am":false}"#,
            r#"{"stream":true,"#,
            r#"[{"stream":true}]"#,
        ] {
            assert_eq!(ask(body), None, "{body}");
        }
    }
}
