//! Faults, the rules that schedule them, and plans of rules.
//!
//! Every type here reads from and prints to the spec grammar described in
//! the [crate documentation](crate#fault-specs), and (de)serialises as the
//! JSON the control endpoint takes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One way for the mock to misbehave.
///
/// Parsed from and printed as the `FAULT` part of a spec: `status:503`,
/// `rate-limit:2`, `refuse`, `reset`, `hang`, `delay:250`,
/// `first-chunk-delay:500`, `drop-after:3`, `drip:100`, `garbage`,
/// `error-event`, `none`.
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
    /// Streaming: send this many SSE events, then cut the connection.
    /// Non-streaming: send the head and at most this many of the body's
    /// pieces (never all of it), then cut the connection.
    DropAfter(usize),
    /// Send every SSE event (streaming) or body piece (non-streaming) this
    /// long after the previous one; the first one too.
    Drip(Duration),
    /// Answer 200 with a body that is neither JSON nor SSE.
    Garbage,
    /// Streaming: answer 200 with an SSE error event in the provider's
    /// shape before any content. Non-streaming: answer 200 with an error
    /// envelope as the JSON body.
    ErrorEvent,
}

impl Fault {
    /// Does this fault act on connections rather than on answers?
    pub const fn is_connection_level(self) -> bool {
        matches!(self, Self::Refuse)
    }

    /// Does this fault apply to the health-probe path `GET /v1/models`?
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
            "drop-after" => {
                let n = need()?.parse().map_err(|_| {
                    ParseFaultError::new(spec, "the chunk count must be a whole number")
                })?;
                Ok(Self::DropAfter(n))
            }
            _ => Err(ParseFaultError::new(
                spec,
                "unknown fault; expected one of none, status:<code>, rate-limit:<secs>, \
                 refuse, reset, hang, delay:<ms>, first-chunk-delay:<ms>, drop-after:<n>, \
                 drip:<ms>, garbage, error-event",
            )),
        }
    }
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

/// When a [`FaultRule`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[non_exhaustive]
pub enum FaultMode {
    /// To every matching request, until the plan changes.
    #[default]
    Always,
    /// To the next N matching requests; then the rule is spent.
    Times(u64),
    /// To each matching request with this probability, drawn from the
    /// mock's seeded RNG, so a run is reproducible.
    Probability(f64),
    /// To every matching request for this long after the plan is set.
    For(Duration),
}

/// A fault and when it applies: the `RULE` of a spec, `status:503*3`.
///
/// ```
/// use understudy_mock::{Fault, FaultMode, FaultRule};
///
/// let rule: FaultRule = "status:503*3".parse().unwrap();
/// assert_eq!(rule, FaultRule::new(Fault::Status(503)).times(3));
/// assert_eq!(rule.to_string(), "status:503*3");
///
/// let json: FaultRule = serde_json::from_str(r#"{"fault":"reset","probability":0.25}"#).unwrap();
/// assert_eq!(json.mode, FaultMode::Probability(0.25));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultRule {
    /// What goes wrong.
    pub fault: Fault,
    /// When.
    pub mode: FaultMode,
}

impl FaultRule {
    /// A rule that always applies `fault`.
    pub const fn new(fault: Fault) -> Self {
        Self {
            fault,
            mode: FaultMode::Always,
        }
    }

    /// Applies to the next `n` matching requests only.
    pub const fn times(mut self, n: u64) -> Self {
        self.mode = FaultMode::Times(n);
        self
    }

    /// Applies to each matching request with probability `p`, which is
    /// clamped to `0.0..=1.0`.
    pub const fn probability(mut self, p: f64) -> Self {
        self.mode = FaultMode::Probability(p.clamp(0.0, 1.0));
        self
    }

    /// Applies for `duration` after the plan is set.
    pub const fn lasting(mut self, duration: Duration) -> Self {
        self.mode = FaultMode::For(duration);
        self
    }
}

impl From<Fault> for FaultRule {
    fn from(fault: Fault) -> Self {
        Self::new(fault)
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.fault, f)?;
        match self.mode {
            FaultMode::Always => Ok(()),
            FaultMode::Times(n) => write!(f, "*{n}"),
            FaultMode::Probability(p) => write!(f, "@{p}"),
            FaultMode::For(duration) => write!(f, "~{}ms", duration.as_millis()),
        }
    }
}

impl FromStr for FaultRule {
    type Err = ParseFaultError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let spec = spec.trim();
        let Some(at) = spec.find(['*', '@', '~']) else {
            return Ok(Self::new(spec.parse()?));
        };
        let fault: Fault = spec[..at].parse()?;
        let arg = spec[at + 1..].trim();
        let mode =
            match spec.as_bytes()[at] {
                b'*' => FaultMode::Times(arg.parse().map_err(|_| {
                    ParseFaultError::new(spec, "`*` takes a whole number of requests")
                })?),
                b'@' => {
                    let p: f64 = arg.parse().map_err(|_| {
                        ParseFaultError::new(spec, "`@` takes a probability between 0 and 1")
                    })?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(ParseFaultError::new(
                            spec,
                            "the probability must be in the range 0.0..=1.0",
                        ));
                    }
                    FaultMode::Probability(p)
                }
                _ => FaultMode::For(parse_millis(spec, arg)?),
            };
        Ok(Self { fault, mode })
    }
}

/// The JSON form of a rule: `{"fault":"status:503","times":3}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleObject {
    fault: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    times: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    for_ms: Option<u64>,
}

impl Serialize for FaultRule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut object = RuleObject {
            fault: self.fault.to_string(),
            times: None,
            probability: None,
            for_ms: None,
        };
        match self.mode {
            FaultMode::Always => {}
            FaultMode::Times(n) => object.times = Some(n),
            FaultMode::Probability(p) => object.probability = Some(p),
            FaultMode::For(duration) => {
                object.for_ms = Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
            }
        }
        object.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for FaultRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RuleVisitor)
    }
}

struct RuleVisitor;

impl<'de> Visitor<'de> for RuleVisitor {
    type Value = FaultRule;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a fault spec string or an object like {\"fault\":\"status:503\",\"times\":3}")
    }

    fn visit_str<E: de::Error>(self, spec: &str) -> Result<FaultRule, E> {
        spec.parse().map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FaultRule, A::Error> {
        let object = RuleObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
        rule_from_object(&object)
    }
}

fn rule_from_object<E: de::Error>(object: &RuleObject) -> Result<FaultRule, E> {
    let mut rule: FaultRule = object.fault.parse().map_err(E::custom)?;
    let modes = [
        object.times.is_some(),
        object.probability.is_some(),
        object.for_ms.is_some(),
    ];
    let given = modes.iter().filter(|&&set| set).count();
    if given > 1 || (given == 1 && rule.mode != FaultMode::Always) {
        return Err(E::custom(
            "a rule takes at most one of `times`, `probability` and `for_ms`",
        ));
    }
    if let Some(n) = object.times {
        rule.mode = FaultMode::Times(n);
    }
    if let Some(p) = object.probability {
        if !(0.0..=1.0).contains(&p) {
            return Err(E::custom("the probability must be in the range 0.0..=1.0"));
        }
        rule.mode = FaultMode::Probability(p);
    }
    if let Some(ms) = object.for_ms {
        rule.mode = FaultMode::For(Duration::from_millis(ms));
    }
    Ok(rule)
}

/// An ordered list of rules; for each request the first rule that matches
/// applies, and a request no rule matches is served normally.
///
/// Parsed from a comma-separated list of rules, and from JSON as either
/// `{"rules":[…], "seed": 7}` or a bare list, where each rule is a spec
/// string or a rule object.
///
/// ```
/// use understudy_mock::{Fault, FaultPlan, FaultRule};
///
/// let plan: FaultPlan = "none*2, status:503".parse().unwrap();
/// assert_eq!(plan.rules.len(), 2);
/// assert_eq!(plan.to_string(), "none*2,status:503");
///
/// let json: FaultPlan = serde_json::from_str(
///     r#"{"rules":[{"fault":"status:503","times":3},"delay:100@0.5"]}"#,
/// ).unwrap();
/// assert_eq!(json.rules[0], FaultRule::new(Fault::Status(503)).times(3));
///
/// let list: FaultPlan = serde_json::from_str(r#"["refuse~2s"]"#).unwrap();
/// assert_eq!(list.to_string(), "refuse~2000ms");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FaultPlan {
    /// The rules, first match wins.
    pub rules: Vec<FaultRule>,
    /// A seed for this plan's probability draws; the mock's own seed when
    /// unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl FaultPlan {
    /// A plan with no rules: every request is served normally.
    pub const fn none() -> Self {
        Self {
            rules: Vec::new(),
            seed: None,
        }
    }

    /// A plan with one rule.
    pub fn single(rule: impl Into<FaultRule>) -> Self {
        Self::none().rule(rule)
    }

    /// Appends a rule.
    pub fn rule(mut self, rule: impl Into<FaultRule>) -> Self {
        self.rules.push(rule.into());
        self
    }

    /// Sets the seed of the probability draws.
    pub const fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Does the plan have no rules?
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl From<Fault> for FaultPlan {
    fn from(fault: Fault) -> Self {
        Self::single(fault)
    }
}

impl From<FaultRule> for FaultPlan {
    fn from(rule: FaultRule) -> Self {
        Self::single(rule)
    }
}

impl From<Vec<FaultRule>> for FaultPlan {
    fn from(rules: Vec<FaultRule>) -> Self {
        Self { rules, seed: None }
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            fmt::Display::fmt(rule, f)?;
        }
        Ok(())
    }
}

impl FromStr for FaultPlan {
    type Err = ParseFaultError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        spec.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<FaultRule>, _>>()
            .map(Self::from)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanObject {
    #[serde(default)]
    rules: Vec<FaultRule>,
    #[serde(default)]
    seed: Option<u64>,
}

impl<'de> Deserialize<'de> for FaultPlan {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PlanVisitor)
    }
}

struct PlanVisitor;

impl<'de> Visitor<'de> for PlanVisitor {
    type Value = FaultPlan;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plan: {\"rules\":[...]}, a list of rules, or a spec string")
    }

    fn visit_str<E: de::Error>(self, spec: &str) -> Result<FaultPlan, E> {
        spec.parse().map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<FaultPlan, A::Error> {
        let rules = Vec::<FaultRule>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(FaultPlan::from(rules))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FaultPlan, A::Error> {
        let PlanObject { rules, seed } =
            PlanObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(FaultPlan { rules, seed })
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

    #[test]
    fn json_rules_take_one_mode() {
        let error = serde_json::from_str::<FaultRule>(
            r#"{"fault":"status:503","times":3,"probability":0.5}"#,
        )
        .unwrap_err();
        assert!(error.to_string().contains("at most one"));
        let error =
            serde_json::from_str::<FaultRule>(r#"{"fault":"status:503*2","times":3}"#).unwrap_err();
        assert!(error.to_string().contains("at most one"));
        let rule: FaultRule = serde_json::from_str(r#"{"fault":"status:503*2"}"#).unwrap();
        assert_eq!(rule.mode, FaultMode::Times(2));
    }

    #[test]
    fn plans_parse_from_every_json_form() {
        let expected = FaultPlan::single(FaultRule::new(Fault::Status(503)).times(3));
        for json in [
            r#"{"rules":[{"fault":"status:503","times":3}]}"#,
            r#"{"rules":["status:503*3"]}"#,
            r#"["status:503*3"]"#,
            r#""status:503*3""#,
        ] {
            assert_eq!(serde_json::from_str::<FaultPlan>(json).unwrap(), expected);
        }
        let seeded: FaultPlan = serde_json::from_str(r#"{"rules":[],"seed":9}"#).unwrap();
        assert_eq!(seeded, FaultPlan::none().seed(9));
        let round = serde_json::to_string(&expected).unwrap();
        assert_eq!(round, r#"{"rules":[{"fault":"status:503","times":3}]}"#);
    }
}
