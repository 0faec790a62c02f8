//! [`FaultRule`]: a fault and when it applies.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::json::RuleForm;
use super::{Fault, ParseFaultError, parse_millis};

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
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RuleForm", into = "RuleForm")]
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
