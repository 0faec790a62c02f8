//! [`UsageStrip`]: a stream's usage taken out of the caller's copy, when
//! the provider was asked for it on the caller's behalf
//! ([`UnaskedUsage`](understudy_core::UnaskedUsage)).
//!
//! With `stream_options.include_usage`, an OpenAI stream ends with a usage
//! chunk (`"choices": []` and a `usage` object) and every other chunk
//! carries `"usage": null`. The caller who did not ask gets neither: the
//! usage chunk's event is dropped, and a `usage` member is cut out of any
//! other chunk, so the rest of each chunk is the provider's bytes.
//!
//! No chunk is parsed: lines are found with `memchr`, and only a line that
//! holds the text `"usage"` is looked at further, by fixed-prefix checks.
//! A frame made of whole lines without `"usage"` passes on as it came; the
//! others are copied into the caller's buffer without the usage, and the
//! end of a line that a frame cut in two waits for the next frame.

use bytes::{Bytes, BytesMut};

use super::usage::{KEY, find_key, has_usage_object};

/// The longest line held back while waiting for its end; the rest of a
/// longer one passes unchanged (a usage chunk is a few hundred bytes).
const MAX_LINE: usize = 64 * 1024;

/// Takes the usage out of a stream's bytes as they pass.
#[derive(Debug, Default)]
pub(super) struct UsageStrip {
    /// The current line's bytes so far, when it started in an earlier
    /// frame.
    line: Vec<u8>,
    /// The current line grew past [`MAX_LINE`]: the rest of it passes.
    passing: bool,
    /// A usage chunk's `data:` line was dropped: the blank line that ends
    /// its event goes too.
    drop_blank: bool,
}

impl UsageStrip {
    /// Whether `data` passes on unchanged: it is whole lines, none with
    /// `"usage"`, and nothing is held from an earlier frame.
    pub(super) fn passes(&self, data: &[u8]) -> bool {
        self.line.is_empty()
            && !self.passing
            && !self.drop_blank
            && data.last() == Some(&b'\n')
            && find_key(data).is_none()
    }

    /// Writes what the caller gets of `data` to `out`; the end of a line
    /// that `data` does not finish is held for the next frame.
    pub(super) fn write(&mut self, data: &[u8], out: &mut BytesMut) {
        let mut rest = data;
        while !rest.is_empty() {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.hold(rest, out);
                return;
            };
            let (head, tail) = rest.split_at(end.saturating_add(1));
            if self.line.is_empty() {
                self.end_line(head, out);
            } else {
                self.line.extend_from_slice(head);
                let line = std::mem::take(&mut self.line);
                self.end_line(&line, out);
                self.line = line;
                self.line.clear();
            }
            rest = tail;
        }
    }

    /// Writes a line still held (a stream that ends without a line break)
    /// as it is.
    pub(super) fn finish(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.line);
        self.line.clear();
        self.passing = false;
    }

    /// Whether a line is held, for [`finish`](Self::finish) to write.
    pub(super) fn holds(&self) -> bool {
        !self.line.is_empty()
    }

    /// The start of a line whose end is in a later frame.
    fn hold(&mut self, bytes: &[u8], out: &mut BytesMut) {
        if self.passing {
            out.extend_from_slice(bytes);
        } else if self.line.len().saturating_add(bytes.len()) > MAX_LINE {
            out.extend_from_slice(&self.line);
            out.extend_from_slice(bytes);
            self.line.clear();
            self.passing = true;
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    /// One whole line, its line break included.
    fn end_line(&mut self, line: &[u8], out: &mut BytesMut) {
        if std::mem::take(&mut self.passing) {
            out.extend_from_slice(line);
            return;
        }
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            if !std::mem::take(&mut self.drop_blank) {
                out.extend_from_slice(line);
            }
            return;
        }
        self.drop_blank = false;
        if let Some(data) = content.strip_prefix(b"data:")
            && find_key(data).is_some()
        {
            if is_usage_chunk(data) {
                self.drop_blank = true;
                return;
            }
            if let Some((from, to)) = usage_member(line) {
                out.extend_from_slice(line.get(..from).unwrap_or_default());
                out.extend_from_slice(line.get(to..).unwrap_or_default());
                return;
            }
        }
        out.extend_from_slice(line);
    }
}

/// Passes `data` on through `strip` into what is held: as it came when it
/// passes unchanged, else what is left of it, copied after what was held.
pub(super) fn gather_stripped(
    strip: &mut UsageStrip,
    single: &mut Option<Bytes>,
    joined: &mut BytesMut,
    data: Bytes,
) {
    if strip.passes(&data) {
        super::body::gather(single, joined, data);
        return;
    }
    if let Some(first) = single.take() {
        joined.extend_from_slice(&first);
    }
    strip.write(&data, joined);
}

/// Whether a chunk's data is a usage chunk: `"choices": []` and a `usage`
/// object.
fn is_usage_chunk(data: &[u8]) -> bool {
    const CHOICES: &[u8] = b"\"choices\"";
    let Some(at) = memchr::memmem::find(data, CHOICES) else {
        return false;
    };
    let after = data
        .get(at.saturating_add(CHOICES.len())..)
        .unwrap_or_default();
    let empty = after
        .trim_ascii_start()
        .strip_prefix(b":")
        .and_then(|value| value.trim_ascii_start().strip_prefix(b"["))
        .is_some_and(|inside| inside.trim_ascii_start().first() == Some(&b']'));
    empty && has_usage_object(data)
}

/// The byte range of `line` to cut to take out its `"usage"` member (its
/// value `null` or an object) with one of the commas around it; `None`
/// when there is no such member, or its neighbours are not what a JSON
/// object has there.
fn usage_member(line: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0_usize;
    loop {
        let at = from.saturating_add(find_key(line.get(from..)?)?);
        let after_key = at.saturating_add(KEY.len());
        if let Some(end) = member_value_end(line, after_key) {
            let before = line.get(..at)?;
            let opened = before.trim_ascii_end();
            return match opened.last() {
                Some(b',') => Some((opened.len().saturating_sub(1), end)),
                Some(b'{') => {
                    let rest = line.get(end..)?;
                    let gap = rest.len().saturating_sub(rest.trim_ascii_start().len());
                    match rest.get(gap) {
                        Some(b',') => Some((at, end.saturating_add(gap).saturating_add(1))),
                        Some(b'}') => Some((at, end)),
                        _ => None,
                    }
                }
                _ => None,
            };
        }
        from = after_key;
    }
}

/// Where the value of a member ends, given the index just past its key:
/// `: null` or `: {…}` (strings in it skipped with their escapes).
fn member_value_end(line: &[u8], after_key: usize) -> Option<usize> {
    let rest = line.get(after_key..)?;
    let colon = rest.trim_ascii_start().strip_prefix(b":")?;
    let value = colon.trim_ascii_start();
    let start = line.len().saturating_sub(value.len());
    if value.starts_with(b"null") {
        return Some(start.saturating_add(4));
    }
    if value.first() != Some(&b'{') {
        return None;
    }
    let mut depth = 0_usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, byte) in value.iter().enumerate() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' => depth = depth.saturating_add(1),
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(start.saturating_add(i).saturating_add(1));
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_all(frames: &[&[u8]]) -> String {
        let mut strip = UsageStrip::default();
        let mut single = None;
        let mut joined = BytesMut::new();
        let mut out = Vec::new();
        for frame in frames {
            gather_stripped(
                &mut strip,
                &mut single,
                &mut joined,
                Bytes::copy_from_slice(frame),
            );
            if let Some(first) = single.take() {
                out.extend_from_slice(&first);
            }
            out.extend_from_slice(&joined.split());
        }
        strip.finish(&mut joined);
        out.extend_from_slice(&joined);
        String::from_utf8(out).unwrap()
    }

    const ASKED: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"usage\"}}],\"usage\":null}\n\n\
        data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
        data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5,\"total_tokens\":17}}\n\n\
        data: [DONE]\n\n";
    const PLAIN: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"usage\"}}]}\n\n\
        data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
        data: [DONE]\n\n";

    #[test]
    fn the_usage_chunk_and_nulls_go_however_the_frames_fall() {
        let stream = ASKED.as_bytes();
        assert_eq!(strip_all(&[stream]), PLAIN);
        for split in 0..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(strip_all(&[a, b]), PLAIN, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(strip_all(&bytes), PLAIN);
    }

    #[test]
    fn frames_without_usage_pass_as_they_came() {
        let strip = UsageStrip::default();
        assert!(!strip.passes(PLAIN.as_bytes()), "it says \"usage\"");
        assert!(strip.passes(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"));
        assert!(!strip.passes(b"data: {\"choices\":[]"));
        assert_eq!(strip_all(&[PLAIN.as_bytes()]), PLAIN);
        // CRLF events, and a comment, keep their bytes.
        let crlf =
            ": keep-alive\r\n\r\ndata: {\"choices\":[{\"delta\":{}}],\"usage\":null}\r\n\r\n";
        assert_eq!(
            strip_all(&[crlf.as_bytes()]),
            ": keep-alive\r\n\r\ndata: {\"choices\":[{\"delta\":{}}]}\r\n\r\n"
        );
    }

    #[test]
    fn usage_members_are_cut_wherever_they_stand() {
        let cut = |line: &str| {
            let (from, to) = usage_member(line.as_bytes()).unwrap();
            format!("{}{}", &line[..from], &line[to..])
        };
        assert_eq!(cut(r#"{"usage":null,"id":"c"}"#), r#"{"id":"c"}"#);
        assert_eq!(cut(r#"{"id":"c", "usage" : null }"#), r#"{"id":"c" }"#);
        assert_eq!(cut(r#"{"usage":null}"#), "{}");
        assert_eq!(
            cut(r#"{"choices":[{"delta":{}}],"usage":{"a":"}\"{","b":{"c":1}},"x":1}"#),
            r#"{"choices":[{"delta":{}}],"x":1}"#
        );
        // Text that only looks like the key is skipped.
        assert_eq!(
            cut(r#"{"content":"usage","usage":null}"#),
            r#"{"content":"usage"}"#
        );
        assert_eq!(usage_member(br#"{"content":"usage"}"#), None);
        assert_eq!(usage_member(br#"{"usage":{"a":1"#), None);
        assert_eq!(usage_member(br#"{"usage":7}"#), None);
    }

    #[test]
    fn a_chunk_with_choices_keeps_them_and_loses_its_usage() {
        let last = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1}}\n\n";
        assert_eq!(
            strip_all(&[last.as_bytes()]),
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
        );
    }

    #[test]
    fn long_lines_pass_unchanged() {
        let mut long = b"data: {\"usage\":null,\"pad\":\"".to_vec();
        long.resize(MAX_LINE + 10, b'x');
        let frames: Vec<&[u8]> = long.chunks(1000).chain([&b"\"}\n\n"[..]]).collect();
        let out = strip_all(&frames);
        assert_eq!(out.len(), long.len() + 4);
        assert!(out.starts_with("data: {\"usage\":null"));
    }
}
