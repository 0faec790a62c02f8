//! The JSON forms of rules and plans, as the control endpoint takes them.
//!
//! A rule is a spec string or an object, `{"fault":"status:503","times":3}`;
//! a plan is a spec string, a list of rules, or an object,
//! `{"rules":[…],"seed":7}`. serde's derive reads each form's shape; what
//! its strings and numbers mean is checked after, in the conversions below,
//! so that a bad spec is reported as itself.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FaultMode, FaultPlan, FaultRule, ParseFaultError};

/// A rule as JSON, and the object form a rule is written out in.
///
/// Untagged, so a string is read as a spec and an object by its fields;
/// serde reads the fields of an untagged struct variant from an object
/// only, never from a list.
#[derive(Serialize, Deserialize)]
#[serde(
    untagged,
    deny_unknown_fields,
    expecting = "a rule: a fault spec string, or an object like {\"fault\":\"status:503\",\"times\":3} \
                 with `fault` and at most one of `times`, `probability` and `for_ms`"
)]
pub(super) enum RuleForm {
    /// `"status:503*3"`.
    Spec(String),
    /// `{"fault":"status:503","times":3}`.
    Object {
        /// A rule spec; it may carry its own mode when no field below is
        /// set.
        fault: String,
        /// [`FaultMode::Times`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        times: Option<u64>,
        /// [`FaultMode::Probability`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        probability: Option<f64>,
        /// [`FaultMode::For`], in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_ms: Option<u64>,
    },
}

/// A plan as JSON.
#[derive(Deserialize)]
#[serde(
    untagged,
    deny_unknown_fields,
    expecting = "a plan: a spec string, a list of rules, or an object like {\"rules\":[...],\"seed\":7}, \
                 where a rule is a fault spec string or an object like \
                 {\"fault\":\"status:503\",\"times\":3} with `fault` and at most one of `times`, \
                 `probability` and `for_ms`"
)]
pub(super) enum PlanForm {
    /// `"none*2,status:503"`.
    Spec(String),
    /// `["status:503*3", {"fault":"reset","probability":0.5}]`.
    Rules(Vec<RuleForm>),
    /// `{"rules":[…],"seed":7}`.
    Object {
        /// The rules, first match wins.
        #[serde(default)]
        rules: Vec<RuleForm>,
        /// The seed of the plan's probability draws.
        #[serde(default)]
        seed: Option<u64>,
    },
}

/// Why a JSON rule or plan is refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum FormError {
    /// A spec string that does not parse.
    #[error(transparent)]
    Spec(#[from] ParseFaultError),
    /// Fields that do not go together.
    #[error("{0}")]
    Invalid(&'static str),
}

impl TryFrom<RuleForm> for FaultRule {
    type Error = FormError;

    fn try_from(form: RuleForm) -> Result<Self, Self::Error> {
        let (fault, times, probability, for_ms) = match form {
            RuleForm::Spec(spec) => return Ok(spec.parse()?),
            RuleForm::Object {
                fault,
                times,
                probability,
                for_ms,
            } => (fault, times, probability, for_ms),
        };
        let mut rule: Self = fault.parse()?;
        let modes = [times.is_some(), probability.is_some(), for_ms.is_some()];
        let given = modes.iter().filter(|&&set| set).count();
        if given > 1 || (given == 1 && rule.mode != FaultMode::Always) {
            return Err(FormError::Invalid(
                "a rule takes at most one of `times`, `probability` and `for_ms`",
            ));
        }
        if let Some(n) = times {
            rule.mode = FaultMode::Times(n);
        }
        if let Some(p) = probability {
            if !(0.0..=1.0).contains(&p) {
                return Err(FormError::Invalid(
                    "the probability must be in the range 0.0..=1.0",
                ));
            }
            rule.mode = FaultMode::Probability(p);
        }
        if let Some(ms) = for_ms {
            rule.mode = FaultMode::For(Duration::from_millis(ms));
        }
        Ok(rule)
    }
}

impl From<FaultRule> for RuleForm {
    fn from(rule: FaultRule) -> Self {
        let (mut times, mut probability, mut for_ms) = (None, None, None);
        match rule.mode {
            FaultMode::Always => {}
            FaultMode::Times(n) => times = Some(n),
            FaultMode::Probability(p) => probability = Some(p),
            FaultMode::For(duration) => {
                for_ms = Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
            }
        }
        Self::Object {
            fault: rule.fault.to_string(),
            times,
            probability,
            for_ms,
        }
    }
}

impl TryFrom<PlanForm> for FaultPlan {
    type Error = FormError;

    fn try_from(form: PlanForm) -> Result<Self, Self::Error> {
        match form {
            PlanForm::Spec(spec) => Ok(spec.parse()?),
            PlanForm::Rules(rules) => Ok(Self::from(rules_from(rules)?)),
            PlanForm::Object { rules, seed } => Ok(Self {
                rules: rules_from(rules)?,
                seed,
            }),
        }
    }
}

fn rules_from(forms: Vec<RuleForm>) -> Result<Vec<FaultRule>, FormError> {
    forms.into_iter().map(FaultRule::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Fault;

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

    #[test]
    fn shapes_outside_the_grammar_are_refused() {
        // serde reads a struct's fields from a list by position; a rule
        // object is never read from one.
        for json in [r#"["status:503"]"#, r#"["status:503", 3]"#, "7", "{}"] {
            assert!(serde_json::from_str::<FaultRule>(json).is_err(), "{json}");
        }
        for json in [
            r#"[["status:503"]]"#,
            "[[], 7]",
            r#"[["status:503"], 7]"#,
            "[7]",
            "null",
            r#"{"rules":[],"bogus":1}"#,
            r#"{"rules":[{"fault":"reset","bogus":1}]}"#,
            r#"{"rules":[],"rules":[]}"#,
            r#"{"rules":"status:503"}"#,
            r#"{"rules":[],"seed":-1}"#,
        ] {
            assert!(serde_json::from_str::<FaultPlan>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn a_bad_spec_anywhere_is_reported_as_itself() {
        for json in [
            r#""explode""#,
            r#"["explode"]"#,
            r#"{"rules":["explode"]}"#,
            r#"{"rules":[{"fault":"explode","times":1}]}"#,
        ] {
            let error = serde_json::from_str::<FaultPlan>(json).unwrap_err();
            assert!(
                error.to_string().contains("invalid fault spec `explode`"),
                "{json}: {error}"
            );
        }
    }
}
