//! [`FaultPlan`]: an ordered list of rules, first match wins.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::json::PlanForm;
use super::{Fault, FaultRule, ParseFaultError};

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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PlanForm")]
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
