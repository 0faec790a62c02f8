//! Faults, the rules that schedule them, and plans of rules.
//!
//! Every type here reads from and prints to the spec grammar described in
//! the [crate documentation](crate#fault-specs), and (de)serialises as the
//! JSON the control endpoint takes (its forms are in `json.rs`).

mod json;
mod plan;
mod rule;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use self::plan::FaultPlan;
pub use self::rule::{FaultMode, FaultRule};

/// One way for the mock to misbehave.
///
/// Parsed from and printed as the `FAULT` part of a spec: `status:503`,
/// `rate-limit:2`, `refuse`, `reset`, `hang`, `delay:250`,
/// `first-chunk-delay:500`, `drop-after:3`, `drip:100`, `garbage`,
/// `error-event`, `content-filter`, `cut-after-chunks:3`,
/// `stall-after-chunks:3:2000`, `error-event-after-chunks:3`, `none`.
///
/// The `*-after-chunks` faults count content chunks (the events that carry
/// answer text or a tool call's arguments), not the events before them (a
/// role chunk, `message_start`, `content_block_start`): they break a stream
/// after it has committed. A first-chunk delay applies per request: the
/// rule `first-chunk-delay:2000*1` delays only the next request's stream,
/// and `first-chunk-delay:2000` every one.
///
/// ```
/// use std::time::Duration;
/// use understudy_mock::Fault;
///
/// assert_eq!("status:503".parse::<Fault>().unwrap(), Fault::Status(503));
/// assert_eq!("delay:250".parse::<Fault>().unwrap(), Fault::Delay(Duration::from_millis(250)));
/// assert_eq!(Fault::RateLimit(Duration::from_secs(2)).to_string(), "rate-limit:2");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// No fault: the request is served normally. Useful in a plan, e.g.
    /// `none*5,status:503` (five good answers, then 503s).
    None,
    /// Answer with this status (400–599) and an error body in the
    /// provider's shape.
    Status(u16),
    /// Answer 429 with `Retry-After` set to this many whole seconds.
    RateLimit(Duration),
    /// Refuse connections: the listening socket is closed (see the crate
    /// docs for how `*N` and `@p` apply to this one).
    Refuse,
    /// Read the request, then close the connection without an answer.
    Reset,
    /// Read the request and never answer. The connection ends when the
    /// client goes away or the mock shuts down.
    Hang,
    /// Wait this long before sending the response head.
    Delay(Duration),
    /// Streaming: send the head at once, the first event after this long.
    /// Non-streaming: the same as [`Fault::Delay`].
    FirstChunkDelay(Duration),
    /// Streaming: send this many SSE events (Bedrock: event-stream frames),
    /// then cut the connection.
    /// Non-streaming: send the head and at most this many of the body's
    /// pieces (never all of it), then cut the connection.
    DropAfter(usize),
    /// Send every SSE event or frame (streaming) or body piece (non-streaming) this
    /// long after the previous one; the first one too.
    Drip(Duration),
    /// Answer 200 with a body that is neither JSON nor SSE (a Bedrock
    /// stream: a frame whose checksum is wrong).
    Garbage,
    /// Streaming: answer 200 with an error event in the provider's shape
    /// (an SSE event, or Bedrock's exception frame) before any content. Non-streaming: answer 200 with an error
    /// envelope as the JSON body.
    ErrorEvent,
    /// The prompt is refused by the provider's content filter, as that
    /// provider refuses one: Azure OpenAI 400 `content_filter` with its
    /// filter results, OpenAI 400 `content_policy_violation`, Anthropic 400
    /// `invalid_request_error`, Gemini 200 with `promptFeedback.blockReason`
    /// and no candidate, Bedrock 200 with `stopReason: guardrail_intervened`.
    ContentFilter,
    /// Streaming: send the events before the content and this many content
    /// chunks, then cut the connection. Non-streaming: no fault.
    CutAfterChunks(usize),
    /// Streaming: send the events before the content and this many content
    /// chunks, then wait this long before the rest. Non-streaming: no
    /// fault.
    StallAfterChunks(usize, Duration),
    /// Streaming: send the events before the content and this many content
    /// chunks, then an error event in the provider's shape, and end the
    /// stream. Non-streaming: no fault.
    ErrorEventAfterChunks(usize),
}

impl Fault {
    /// Does this fault act on connections rather than on answers?
    pub const fn is_connection_level(self) -> bool {
        matches!(self, Self::Refuse)
    }

    /// Does this fault apply to the health-probe path, the format's models
    /// listing (`GET /v1/models` and the like)?
    ///
    /// Only `status`, `rate-limit`, `reset`, `hang` (and `refuse`, which
    /// acts on connections) do: a probe should see a provider that is down,
    /// not one that streams slowly.
    pub const fn applies_to_models(self) -> bool {
        matches!(
            self,
            Self::Status(_) | Self::RateLimit(_) | Self::Reset | Self::Hang
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::None => f.write_str("none"),
            Self::Status(code) => write!(f, "status:{code}"),
            Self::RateLimit(wait) => write!(f, "rate-limit:{}", wait.as_secs()),
            Self::Refuse => f.write_str("refuse"),
            Self::Reset => f.write_str("reset"),
            Self::Hang => f.write_str("hang"),
            Self::Delay(wait) => write!(f, "delay:{}", wait.as_millis()),
            Self::FirstChunkDelay(wait) => write!(f, "first-chunk-delay:{}", wait.as_millis()),
            Self::DropAfter(n) => write!(f, "drop-after:{n}"),
            Self::Drip(wait) => write!(f, "drip:{}", wait.as_millis()),
            Self::Garbage => f.write_str("garbage"),
            Self::ErrorEvent => f.write_str("error-event"),
            Self::ContentFilter => f.write_str("content-filter"),
            Self::CutAfterChunks(n) => write!(f, "cut-after-chunks:{n}"),
            Self::StallAfterChunks(n, wait) => {
                write!(f, "stall-after-chunks:{n}:{}", wait.as_millis())
            }
            Self::ErrorEventAfterChunks(n) => write!(f, "error-event-after-chunks:{n}"),
        }
    }
}

impl FromStr for Fault {
    type Err = ParseFaultError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let spec = spec.trim();
        let (name, arg) = match spec.split_once(':') {
            Some((name, arg)) => (name, Some(arg.trim())),
            None => (spec, None),
        };
        let no_arg = |fault: Self| match arg {
            None => Ok(fault),
            Some(_) => Err(ParseFaultError::new(spec, "this fault takes no argument")),
        };
        let need = || arg.ok_or_else(|| ParseFaultError::new(spec, "missing the `:` argument"));
        match name.trim() {
            "none" => no_arg(Self::None),
            "refuse" => no_arg(Self::Refuse),
            "reset" => no_arg(Self::Reset),
            "hang" => no_arg(Self::Hang),
            "garbage" => no_arg(Self::Garbage),
            "error-event" => no_arg(Self::ErrorEvent),
            "content-filter" => no_arg(Self::ContentFilter),
            "status" => {
                let code: u16 = need()?
                    .parse()
                    .map_err(|_| ParseFaultError::new(spec, "the status must be a number"))?;
                if (400..=599).contains(&code) {
                    Ok(Self::Status(code))
                } else {
                    Err(ParseFaultError::new(
                        spec,
                        "the status must be in the range 400..=599",
                    ))
                }
            }
            "rate-limit" => {
                let secs: u64 = need()?.trim_end_matches('s').parse().map_err(|_| {
                    ParseFaultError::new(spec, "the Retry-After must be whole seconds")
                })?;
                Ok(Self::RateLimit(Duration::from_secs(secs)))
            }
            "delay" => Ok(Self::Delay(parse_millis(spec, need()?)?)),
            "first-chunk-delay" => Ok(Self::FirstChunkDelay(parse_millis(spec, need()?)?)),
            "drip" => Ok(Self::Drip(parse_millis(spec, need()?)?)),
            "drop-after" => Ok(Self::DropAfter(parse_count(spec, need()?)?)),
            "cut-after-chunks" => Ok(Self::CutAfterChunks(parse_count(spec, need()?)?)),
            "error-event-after-chunks" => {
                Ok(Self::ErrorEventAfterChunks(parse_count(spec, need()?)?))
            }
            "stall-after-chunks" => {
                let (count, wait) = need()?.split_once(':').ok_or_else(|| {
                    ParseFaultError::new(spec, "expected stall-after-chunks:<n>:<ms>")
                })?;
                Ok(Self::StallAfterChunks(
                    parse_count(spec, count)?,
                    parse_millis(spec, wait)?,
                ))
            }
            _ => Err(ParseFaultError::new(
                spec,
                "unknown fault; expected one of none, status:<code>, rate-limit:<secs>, \
                 refuse, reset, hang, delay:<ms>, first-chunk-delay:<ms>, drop-after:<n>, \
                 drip:<ms>, garbage, error-event, content-filter, cut-after-chunks:<n>, \
                 stall-after-chunks:<n>:<ms>, error-event-after-chunks:<n>",
            )),
        }
    }
}

/// Parses a whole count of chunks.
fn parse_count(spec: &str, text: &str) -> Result<usize, ParseFaultError> {
    text.trim()
        .parse()
        .map_err(|_| ParseFaultError::new(spec, "the chunk count must be a whole number"))
}

/// Parses `<n>`, `<n>ms` (milliseconds) or `<n>s` (seconds).
fn parse_millis(spec: &str, text: &str) -> Result<Duration, ParseFaultError> {
    let text = text.trim();
    let invalid = || ParseFaultError::new(spec, "expected a duration: <ms>, <n>ms or <n>s");
    if let Some(ms) = text.strip_suffix("ms") {
        ms.parse().map(Duration::from_millis).map_err(|_| invalid())
    } else if let Some(secs) = text.strip_suffix('s') {
        secs.parse().map(Duration::from_secs).map_err(|_| invalid())
    } else {
        text.parse()
            .map(Duration::from_millis)
            .map_err(|_| invalid())
    }
}

/// A fault spec that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault spec `{spec}`: {reason}")]
pub struct ParseFaultError {
    spec: String,
    reason: &'static str,
}

impl ParseFaultError {
    fn new(spec: &str, reason: &'static str) -> Self {
        Self {
            spec: spec.to_owned(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_round_trips_through_its_spec() {
        let faults = [
            Fault::None,
            Fault::Status(529),
            Fault::RateLimit(Duration::from_secs(3)),
            Fault::Refuse,
            Fault::Reset,
            Fault::Hang,
            Fault::Delay(Duration::from_millis(20)),
            Fault::FirstChunkDelay(Duration::from_millis(300)),
            Fault::DropAfter(2),
            Fault::Drip(Duration::from_millis(5)),
            Fault::Garbage,
            Fault::ErrorEvent,
            Fault::ContentFilter,
            Fault::CutAfterChunks(3),
            Fault::StallAfterChunks(3, Duration::from_millis(2500)),
            Fault::ErrorEventAfterChunks(1),
        ];
        for fault in faults {
            assert_eq!(fault.to_string().parse::<Fault>().unwrap(), fault);
            for rule in [
                FaultRule::new(fault),
                FaultRule::new(fault).times(4),
                FaultRule::new(fault).probability(0.5),
                FaultRule::new(fault).lasting(Duration::from_millis(1500)),
            ] {
                assert_eq!(rule.to_string().parse::<FaultRule>().unwrap(), rule);
                let json = serde_json::to_string(&rule).unwrap();
                assert_eq!(serde_json::from_str::<FaultRule>(&json).unwrap(), rule);
            }
        }
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(
            "delay:2s".parse::<Fault>().unwrap(),
            Fault::Delay(Duration::from_secs(2))
        );
        assert_eq!(
            "drip:15ms".parse::<Fault>().unwrap(),
            Fault::Drip(Duration::from_millis(15))
        );
        assert_eq!(
            "hang~1s".parse::<FaultRule>().unwrap().mode,
            FaultMode::For(Duration::from_secs(1))
        );
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, reason) in [
            ("status:200", "range 400..=599"),
            ("status", "missing"),
            ("reset:3", "no argument"),
            ("explode", "unknown fault"),
            ("status:503@1.5", "probability"),
            ("status:503*x", "whole number"),
            ("delay:soon", "duration"),
        ] {
            let error = spec.parse::<FaultRule>().unwrap_err().to_string();
            assert!(error.contains(reason), "{spec}: {error}");
            assert!(error.contains(spec), "{spec}: {error}");
        }
    }
}
