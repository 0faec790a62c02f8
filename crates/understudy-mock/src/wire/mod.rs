//! The wire formats: which paths a format serves, what it reads from a chat
//! or embeddings request, and the bytes it answers with.
//!
//! Everything that does not depend on the request is rendered once at
//! start: a response is a template whose only hole is the `model` the
//! request named, filled in with one allocation per response. Each format
//! lives in its own module; this one holds the templates, the request and
//! answer types they share, and the dispatch on [`WireFormat`].

mod anthropic;
mod azure;
mod bedrock;
mod embed;
mod gemini;
mod openai;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use serde_json::Value;

use crate::config::WireFormat;
use crate::stats::PathKind;

pub(crate) use self::embed::{EmbedCall, EmbedRequest};

/// A placeholder for the model that JSON escapes and that no name holds.
const MODEL_HOLE: &str = "\u{1}model\u{1}";
/// Tokens counted for every prompt.
const PROMPT_TOKENS: usize = 10;
/// The model the models listing names.
pub(crate) const LISTED_MODEL: &str = "mock-model";

const SSE: HeaderValue = HeaderValue::from_static("text/event-stream");

/// The end of a chunk of a stream that reports usage (OpenAI's
/// `stream_options.include_usage`), after its other members.
const NULL_USAGE: &[u8] = b",\"usage\":null}\n\n";

/// A rendered text (JSON, an SSE event, or a binary frame) with holes for
/// the model.
#[derive(Debug)]
struct Template {
    /// The text between the holes: one more part than holes.
    parts: Vec<Bytes>,
}

impl Template {
    fn new(text: &str) -> Self {
        let hole = serde_json::to_string(MODEL_HOLE).unwrap_or_default();
        Self {
            parts: text
                .split(hole.as_str())
                .map(|part| Bytes::copy_from_slice(part.as_bytes()))
                .collect(),
        }
    }

    /// Bytes with no hole, sent as they are.
    fn fixed(bytes: Bytes) -> Self {
        Self { parts: vec![bytes] }
    }

    /// An SSE event whose lines end in `\n`.
    fn sse(event: Option<&str>, data: &Value) -> Self {
        Self::new(&sse_text(event, data, "\n"))
    }

    fn len_with(&self, model: &[u8]) -> usize {
        self.parts.iter().map(Bytes::len).sum::<usize>()
            + model.len() * (self.parts.len().saturating_sub(1))
    }

    fn write(&self, model: &[u8], out: &mut BytesMut) {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(model);
            }
            out.extend_from_slice(part);
        }
    }
}

/// An SSE event: an optional `event:` line, one `data:` line, a blank line,
/// each line ending in `eol`.
fn sse_text(event: Option<&str>, data: &Value, eol: &str) -> String {
    let mut text = String::new();
    if let Some(event) = event {
        text.push_str("event: ");
        text.push_str(event);
        text.push_str(eol);
    }
    text.push_str("data: ");
    text.push_str(&data.to_string());
    text.push_str(eol);
    text.push_str(eol);
    text
}

/// What a format renders once, at start.
#[derive(Debug)]
struct Rendered {
    /// The non-streaming answer.
    full: Template,
    /// The streamed answer's events, before the usage event.
    stream: Vec<Template>,
    /// The usage event sent when the request asks for it (OpenAI's
    /// `stream_options.include_usage`), if the format has one.
    usage: Option<Template>,
    /// The events after the usage event (OpenAI's `data: [DONE]`).
    tail: Vec<Template>,
    /// The models listing.
    models: Bytes,
}

/// What every format renders its answers from.
#[derive(Debug)]
struct Context<'a> {
    /// Seconds since the epoch at start.
    created: u64,
    /// The mock's name.
    name: &'a str,
    /// The whole answer.
    text: &'a str,
    /// The answer split into the stream's content chunks.
    pieces: &'a [String],
}

/// A chat call, as the request's path names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChatCall {
    /// The path, for counting.
    pub(crate) kind: PathKind,
    /// The model, when the path names it (Azure's deployment, Gemini's and
    /// Bedrock's model); otherwise it is read from the body.
    pub(crate) model: Option<String>,
    /// Whether a stream is asked for, when the path says (Gemini,
    /// Bedrock); otherwise it is read from the body.
    pub(crate) stream: Option<bool>,
}

impl ChatCall {
    const fn new(kind: PathKind) -> Self {
        Self {
            kind,
            model: None,
            stream: None,
        }
    }
}

/// What the mock reads from a chat request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChatRequest {
    /// The model the answer names.
    pub(crate) model: String,
    /// Is the answer streamed?
    pub(crate) stream: bool,
    /// Does a stream end with a usage event (OpenAI and Azure)?
    pub(crate) include_usage: bool,
    /// The one tool the request forces, if it forces one: the answer is a
    /// call of it.
    pub(crate) tool: Option<String>,
    /// The answer already given, when the request asks for its
    /// continuation (see [`continuation`]).
    pub(crate) continue_from: Option<String>,
}

/// The text of a message's `content`: a string, or the `text` of its text
/// blocks (OpenAI's parts, Anthropic's blocks).
fn message_text(message: &Value) -> Option<String> {
    match message.get("content")? {
        Value::String(text) => Some(text.clone()),
        Value::Array(blocks) => Some(
            blocks
                .iter()
                .filter_map(|block| block.get("text").and_then(Value::as_str))
                .collect(),
        ),
        _ => None,
    }
}

/// The answer a request asks to be continued: the text of its last message
/// when that is an assistant turn (a prefill), or of the assistant turn
/// before a last user turn that asks to continue (`Continue …`).
pub(crate) fn continuation(messages: &[Value]) -> Option<String> {
    let role = |message: &Value| {
        message
            .get("role")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (last, before) = match messages {
        [.., before, last] => (last, Some(before)),
        [last] => (last, None),
        [] => return None,
    };
    match role(last).as_deref() {
        Some("assistant") => message_text(last),
        Some("user") => {
            let asks =
                message_text(last).is_some_and(|text| text.trim_start().starts_with("Continue"));
            let before = before.filter(|b| role(b).as_deref() == Some("assistant"))?;
            if asks { message_text(before) } else { None }
        }
        _ => None,
    }
}

/// An error answer: its status, the headers the format adds, and the body.
#[derive(Debug)]
pub(crate) struct ErrorAnswer {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Bytes,
}

impl ErrorAnswer {
    fn json(status: StatusCode, body: &Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    fn header(mut self, name: &'static str, value: HeaderValue) -> Self {
        self.headers.push((HeaderName::from_static(name), value));
        self
    }
}

/// How a provider answers a prompt its content filter refuses.
#[derive(Debug)]
pub(crate) enum Filtered {
    /// An error answer.
    Refused(ErrorAnswer),
    /// A whole answer, 200, saying the prompt was blocked.
    Full(Bytes),
    /// A stream saying the prompt was blocked.
    Stream(Vec<Bytes>),
}

impl WireFormat {
    /// The chat call `uri` names in this format, or `None` when it names
    /// none (another path, or Azure's chat path without `api-version`).
    pub(crate) fn chat_call(self, uri: &Uri) -> Option<ChatCall> {
        match self {
            Self::OpenAi => {
                (uri.path() == self.chat_path()).then(|| ChatCall::new(PathKind::ChatCompletions))
            }
            Self::Anthropic => {
                (uri.path() == self.chat_path()).then(|| ChatCall::new(PathKind::Messages))
            }
            Self::Azure => azure::chat_call(uri),
            Self::Gemini => gemini::chat_call(uri),
            Self::Bedrock => bedrock::chat_call(uri),
        }
    }

    /// Does `uri` name this format's models listing, the health-probe path?
    pub(crate) fn is_models_path(self, uri: &Uri) -> bool {
        match self {
            Self::OpenAi | Self::Anthropic => uri.path() == "/v1/models",
            Self::Azure => azure::is_models_path(uri),
            Self::Gemini => gemini::is_models_path(uri),
            Self::Bedrock => bedrock::is_models_path(uri),
        }
    }

    /// Reads a chat request's body for `call`, or says why it is invalid.
    pub(crate) fn read_request(self, call: &ChatCall, body: &[u8]) -> Result<ChatRequest, String> {
        match self {
            Self::OpenAi => openai::read_request(body, None),
            Self::Anthropic => anthropic::read_request(body),
            Self::Azure => azure::read_request(call, body),
            Self::Gemini => gemini::read_request(call, body),
            Self::Bedrock => bedrock::read_request(call, body),
        }
        .map_err(|error| format!("invalid request body: {error}"))
    }

    /// Whether a request carries what the format requires to be let in
    /// (Bedrock: a `SigV4` `authorization` header and `x-amz-date`); the
    /// answer to send when it does not.
    pub(crate) fn authorize(self, headers: &HeaderMap) -> Result<(), ErrorAnswer> {
        match self {
            Self::Bedrock => bedrock::authorize(headers),
            _ => Ok(()),
        }
    }
}

/// The responses of one mock.
#[derive(Debug)]
pub(crate) struct Wire {
    format: WireFormat,
    name: String,
    name_header: HeaderValue,
    created: u64,
    /// The whole answer.
    text: String,
    stream_chunks: usize,
    /// The answer's text split into the stream's content chunks.
    pieces: Vec<String>,
    rendered: Rendered,
}

impl Wire {
    pub(crate) fn new(format: WireFormat, name: &str, stream_chunks: usize) -> Self {
        Self::with_text(format, name, stream_chunks, &format!("Hello from {name}."))
    }

    /// A mock whose answer is `text`.
    pub(crate) fn with_text(
        format: WireFormat,
        name: &str,
        stream_chunks: usize,
        text: &str,
    ) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let text = text.to_owned();
        let pieces = split_text(&text, stream_chunks);
        let name_header = HeaderValue::from_str(name)
            .unwrap_or_else(|_| HeaderValue::from_static("understudy-mock"));
        let context = Context {
            created,
            name,
            text: &text,
            pieces: &pieces,
        };
        let rendered = match format {
            WireFormat::OpenAi => openai::render(&context),
            WireFormat::Anthropic => anthropic::render(&context),
            WireFormat::Azure => azure::render(&context),
            WireFormat::Gemini => gemini::render(&context),
            WireFormat::Bedrock => bedrock::render(&context),
        };
        Self {
            format,
            name: name.to_owned(),
            name_header,
            created,
            text,
            stream_chunks,
            pieces,
            rendered,
        }
    }

    /// The answers to a request that asks to continue `prefix`: the rest of
    /// this mock's answer when the answer starts with `prefix`, else the
    /// whole answer again.
    fn continued(&self, prefix: &str) -> Option<Self> {
        let rest = self.text.strip_prefix(prefix)?;
        let name = self.name_header.to_str().unwrap_or("mock");
        let chunks = self.stream_chunks.min(rest.chars().count()).max(1);
        Some(Self::with_text(self.format, name, chunks, rest))
    }

    /// For a request that continues this answer's text: the answer that
    /// continues it, and the request as that answer sees it (no prefix).
    fn continuing(&self, request: &ChatRequest) -> Option<(Self, ChatRequest)> {
        let continued = self.continued(request.continue_from.as_deref()?)?;
        let request = ChatRequest {
            continue_from: None,
            ..request.clone()
        };
        Some((continued, request))
    }

    /// How many events of a stream come before its first content chunk.
    pub(crate) const fn content_offset(&self) -> usize {
        match self.format {
            WireFormat::OpenAi | WireFormat::Bedrock => 1,
            WireFormat::Azure | WireFormat::Anthropic => 2,
            WireFormat::Gemini => 0,
        }
    }

    pub(crate) const fn format(&self) -> WireFormat {
        self.format
    }

    pub(crate) const fn name_header(&self) -> &HeaderValue {
        &self.name_header
    }

    pub(crate) fn models(&self) -> Bytes {
        self.rendered.models.clone()
    }

    /// The headers every answer of the format carries (Bedrock's request
    /// id).
    pub(crate) fn common_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self.format {
            WireFormat::Bedrock => bedrock::COMMON_HEADERS,
            _ => &[],
        }
    }

    /// The content type of a streamed answer.
    pub(crate) fn stream_content_type(&self) -> HeaderValue {
        match self.format {
            WireFormat::Bedrock => bedrock::EVENT_STREAM,
            _ => SSE,
        }
    }

    /// The non-streaming answer to `request`.
    pub(crate) fn full(&self, request: &ChatRequest) -> Bytes {
        if let Some(tool) = &request.tool {
            return Bytes::from(self.tool_full(&request.model, tool).to_string());
        }
        if let Some((continued, request)) = self.continuing(request) {
            return continued.full(&request);
        }
        let model = model_json(&request.model);
        let full = &self.rendered.full;
        let mut out = BytesMut::with_capacity(full.len_with(&model));
        full.write(&model, &mut out);
        out.freeze()
    }

    /// The streamed answer to `request`, one event (or frame) per item.
    pub(crate) fn stream(&self, request: &ChatRequest) -> Vec<Bytes> {
        if let Some(tool) = &request.tool {
            return self.tool_stream(request, tool);
        }
        if let Some((continued, request)) = self.continuing(request) {
            return continued.stream(&request);
        }
        let model = model_json(&request.model);
        let rendered = &self.rendered;
        let usage = rendered.usage.as_ref().filter(|_| request.include_usage);
        let templates = || rendered.stream.iter().chain(usage).chain(&rendered.tail);
        let total = templates().map(|t| t.len_with(&model)).sum::<usize>()
            + usage.map_or(0, |_| NULL_USAGE.len() * rendered.stream.len());
        let mut out = BytesMut::with_capacity(total);
        let mut ends = Vec::with_capacity(rendered.stream.len() + 2);
        for (i, template) in templates().enumerate() {
            template.write(&model, &mut out);
            // With the usage chunk, every other chunk says `"usage": null`,
            // as OpenAI's do.
            if usage.is_some() && i < rendered.stream.len() && out.ends_with(b"}\n\n") {
                out.truncate(out.len() - 3);
                out.extend_from_slice(NULL_USAGE);
            }
            ends.push(out.len());
        }
        let all = out.freeze();
        let mut start = 0;
        ends.into_iter()
            .map(|end| {
                let event = all.slice(start..end);
                start = end;
                event
            })
            .collect()
    }

    /// The answer to an embeddings request.
    pub(crate) fn embeddings(&self, request: &EmbedRequest) -> Bytes {
        embed::answer(&self.name, request)
    }

    /// A whole body split into the stream's number of pieces, for a
    /// non-streaming answer sent slowly or cut short.
    pub(crate) fn split(&self, full: &Bytes) -> Vec<Bytes> {
        let count = self.pieces.len().clamp(1, full.len().max(1));
        let size = full.len().div_ceil(count);
        (0..full.len())
            .step_by(size.max(1))
            .map(|start| full.slice(start..(start + size).min(full.len())))
            .collect()
    }

    /// An error answer in the format's shape.
    pub(crate) fn error(&self, status: StatusCode, message: &str) -> ErrorAnswer {
        self.error_with_retry(status, message, None)
    }

    fn error_with_retry(
        &self,
        status: StatusCode,
        message: &str,
        retry: Option<Duration>,
    ) -> ErrorAnswer {
        match self.format {
            WireFormat::OpenAi => openai::error(status, message, retry),
            WireFormat::Anthropic => anthropic::error(status, message, retry),
            WireFormat::Azure => azure::error(status, message, retry),
            WireFormat::Gemini => gemini::error(status, message, retry),
            WireFormat::Bedrock => bedrock::error(status, message),
        }
    }

    /// The error a fault answers with for `status`; `retry` is the wait a
    /// `rate-limit` fault announces.
    pub(crate) fn fault_error(&self, status: StatusCode, retry: Option<Duration>) -> ErrorAnswer {
        let message = match status.as_u16() {
            429 if self.format == WireFormat::Bedrock => bedrock::THROTTLED.to_owned(),
            429 => format!("Rate limit reached for {} (injected).", self.name),
            503 | 529 => format!("{} is overloaded (injected).", self.name),
            code => format!("{} failed with status {code} (injected).", self.name),
        };
        self.error_with_retry(status, &message, retry)
    }

    /// The message of a 404 for a path the format does not serve.
    pub(crate) fn not_found_message(&self) -> &'static str {
        match self.format {
            WireFormat::Azure => azure::NOT_FOUND,
            _ => "no such path on this mock",
        }
    }

    /// A streamed error event before any content, in the format's shape.
    pub(crate) fn error_event(&self) -> Bytes {
        let message = format!("{} is overloaded (injected error event).", self.name);
        match self.format {
            WireFormat::OpenAi => openai::error_event(&message),
            WireFormat::Anthropic => anthropic::error_event(&message),
            WireFormat::Azure => azure::error_event(&message),
            WireFormat::Gemini => gemini::error_event(&message),
            WireFormat::Bedrock => bedrock::error_event(&message),
        }
    }

    /// A body the client cannot read: neither JSON nor SSE (no line
    /// breaks, so no event); for a Bedrock stream, a frame whose checksum
    /// is wrong.
    pub(crate) fn garbage(&self, stream: bool) -> Bytes {
        if stream && self.format == WireFormat::Bedrock {
            return bedrock::broken_frame();
        }
        Bytes::from(format!(
            "<html><head><title>502 Bad Gateway</title></head><body>{} answered \
             with garbage: neither JSON nor SSE</body></html>",
            self.name
        ))
    }

    /// The answer to `request` when the content filter refuses its prompt.
    pub(crate) fn content_filter(&self, request: &ChatRequest) -> Filtered {
        let message = "The prompt was filtered due to the content filter (injected).";
        let status = StatusCode::BAD_REQUEST;
        match self.format {
            WireFormat::OpenAi => Filtered::Refused(openai::content_filter(message)),
            WireFormat::Anthropic => Filtered::Refused(anthropic::error(status, message, None)),
            WireFormat::Azure => Filtered::Refused(azure::content_filter(message)),
            WireFormat::Gemini if request.stream => {
                Filtered::Stream(vec![gemini::blocked_event(&request.model)])
            }
            WireFormat::Gemini => Filtered::Full(gemini::blocked(&request.model)),
            WireFormat::Bedrock if request.stream => Filtered::Stream(bedrock::blocked_stream()),
            WireFormat::Bedrock => Filtered::Full(bedrock::blocked()),
        }
    }

    /// A non-streaming answer that calls `tool`.
    fn tool_full(&self, model: &str, tool: &str) -> Value {
        match self.format {
            WireFormat::OpenAi => openai::tool_full(self.created, model, tool, false),
            WireFormat::Azure => openai::tool_full(self.created, model, tool, true),
            WireFormat::Anthropic => anthropic::tool_full(model, tool),
            WireFormat::Gemini => gemini::tool_full(model, tool),
            WireFormat::Bedrock => bedrock::tool_full(tool),
        }
    }

    /// A streamed answer that calls `tool`.
    fn tool_stream(&self, request: &ChatRequest, tool: &str) -> Vec<Bytes> {
        let model = request.model.as_str();
        match self.format {
            WireFormat::OpenAi => {
                openai::tool_stream(self.created, model, tool, request.include_usage, false)
            }
            WireFormat::Azure => {
                openai::tool_stream(self.created, model, tool, request.include_usage, true)
            }
            WireFormat::Anthropic => anthropic::tool_stream(model, tool),
            WireFormat::Gemini => gemini::tool_stream(model, tool),
            WireFormat::Bedrock => bedrock::tool_stream(tool),
        }
    }
}

/// The arguments every tool call carries.
fn tool_arguments() -> Value {
    serde_json::json!({ "mock": true })
}

/// The model as a JSON string; an unescapable model cannot happen for a
/// `&str`, so the fallback never shows.
fn model_json(model: &str) -> Vec<u8> {
    serde_json::to_vec(model).unwrap_or_else(|_| b"\"\"".to_vec())
}

/// Splits `text` into `count` pieces of near-equal length in characters
/// (fewer if the text is shorter), never inside a character.
pub(crate) fn split_text(text: &str, count: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let count = count.clamp(1, chars.len().max(1));
    let base = chars.len() / count;
    let extra = chars.len() % count;
    let mut pieces = Vec::with_capacity(count);
    let mut start = 0;
    for i in 0..count {
        let len = base + usize::from(i < extra);
        pieces.push(chars[start..start + len].iter().collect());
        start += len;
    }
    pieces
}

/// Decodes `%XX` escapes; `None` if an escape is malformed or the result
/// is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The value of `name` in the query of `uri`, if it is there.
fn query_param<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// A tool name from a request: the name forced by a tool choice.
fn forced_tool(name: Option<&Value>) -> Option<String> {
    name.and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(model: &str) -> ChatRequest {
        ChatRequest {
            model: model.to_owned(),
            stream: false,
            include_usage: false,
            tool: None,
            continue_from: None,
        }
    }

    #[test]
    fn text_splits_into_near_equal_pieces() {
        assert_eq!(split_text("abcdefg", 3), ["abc", "de", "fg"]);
        assert_eq!(split_text("ab", 5), ["a", "b"]);
        assert_eq!(split_text("héllo", 1), ["héllo"]);
        assert_eq!(split_text("", 4), [""]);
    }

    #[test]
    fn the_model_is_echoed_escaped() {
        let wire = Wire::new(WireFormat::OpenAi, "primary", 4);
        let body: Value = serde_json::from_slice(&wire.full(&request("gpt \"4\""))).unwrap();
        assert_eq!(body["model"], "gpt \"4\"");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "Hello from primary."
        );
    }

    #[test]
    fn split_bodies_join_to_the_whole() {
        let wire = Wire::new(WireFormat::Anthropic, "backup", 5);
        let pieces = wire.split(&wire.full(&request("claude")));
        assert_eq!(pieces.len(), 5);
        assert_eq!(pieces.concat(), wire.full(&request("claude")).to_vec());
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(
            percent_decode("anthropic.claude-3-haiku-20240307-v1%3A0").as_deref(),
            Some("anthropic.claude-3-haiku-20240307-v1:0")
        );
        assert_eq!(percent_decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn query_params_are_found() {
        let uri: Uri = "/x?a=1&api-version=2024-10-21&flag".parse().unwrap();
        assert_eq!(query_param(&uri, "api-version"), Some("2024-10-21"));
        assert_eq!(query_param(&uri, "flag"), Some(""));
        assert_eq!(query_param(&uri, "b"), None);
    }
}
