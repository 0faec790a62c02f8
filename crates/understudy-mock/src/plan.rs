//! The plan in force: rule counters, expiry times and the seeded RNG.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::fault::{Fault, FaultMode, FaultPlan};

/// What a fault is being picked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A chat or embeddings request: every fault applies, `refuse` only
    /// while it holds the listener closed.
    Chat,
    /// A probe of the models listing: only the faults that make a provider look
    /// down apply (`refuse` as for chat requests), a `*N` rule applies
    /// without being spent, and a `@p` rule does not apply.
    Models,
    /// A newly accepted connection: only `refuse` applies.
    Connection,
}

/// How long the listener stays closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Until the plan changes.
    UntilChanged,
    /// Until this time, or until the plan changes.
    Until(Instant),
}

/// A [`FaultPlan`] with its run-time state.
#[derive(Debug)]
pub(crate) struct ActivePlan {
    plan: FaultPlan,
    /// Per rule: requests left for a `*N` rule, unused otherwise.
    remaining: Vec<AtomicU64>,
    set_at: Instant,
    rng: Mutex<StdRng>,
    has_refuse: bool,
}

impl ActivePlan {
    pub(crate) fn new(plan: FaultPlan, default_seed: u64, now: Instant) -> Self {
        let remaining = plan
            .rules
            .iter()
            .map(|rule| match rule.mode {
                FaultMode::Times(n) => AtomicU64::new(n),
                _ => AtomicU64::new(0),
            })
            .collect();
        let has_refuse = plan.rules.iter().any(|rule| rule.fault == Fault::Refuse);
        let seed = plan.seed.unwrap_or(default_seed);
        Self {
            plan,
            remaining,
            set_at: now,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            has_refuse,
        }
    }

    pub(crate) const fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.plan.rules.is_empty()
    }

    pub(crate) const fn has_refuse(&self) -> bool {
        self.has_refuse
    }

    /// The fault of the first rule that matches, spending a `*N` rule's
    /// count or drawing for a `@p` rule on the way; `None` when no rule
    /// matches.
    pub(crate) fn pick(&self, target: Target, now: Instant) -> Option<Fault> {
        for (rule, remaining) in self.plan.rules.iter().zip(&self.remaining) {
            // A request on a connection opened before a refusal began is
            // refused too (closed unanswered), so that the refusal takes
            // effect at once; counted refusals act on connections only.
            let refusing = rule.fault == Fault::Refuse
                && matches!(rule.mode, FaultMode::Always | FaultMode::For(_));
            let applies = match target {
                Target::Chat => rule.fault != Fault::Refuse || refusing,
                Target::Models => rule.fault.applies_to_models() || refusing,
                Target::Connection => rule.fault == Fault::Refuse,
            };
            if !applies {
                continue;
            }
            let matched = match rule.mode {
                FaultMode::Always => true,
                FaultMode::For(duration) => now < self.set_at + duration,
                FaultMode::Times(_) if target == Target::Models => remaining.load(Relaxed) > 0,
                FaultMode::Times(_) => remaining
                    .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                    .is_ok(),
                FaultMode::Probability(_) if target == Target::Models => false,
                FaultMode::Probability(p) => {
                    let draw: f64 = match self.rng.lock() {
                        Ok(mut rng) => rng.random(),
                        Err(poisoned) => poisoned.into_inner().random(),
                    };
                    draw < p
                }
            };
            if matched {
                return Some(rule.fault);
            }
        }
        None
    }

    /// Is the listener to be closed now, and until when?
    pub(crate) fn refusal(&self, now: Instant) -> Option<Refusal> {
        if !self.has_refuse {
            return None;
        }
        self.plan
            .rules
            .iter()
            .filter(|rule| rule.fault == Fault::Refuse)
            .find_map(|rule| match rule.mode {
                FaultMode::Always => Some(Refusal::UntilChanged),
                FaultMode::For(duration) => {
                    let until = self.set_at + duration;
                    (now < until).then_some(Refusal::Until(until))
                }
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fault::FaultRule;

    fn plan(spec: &str) -> ActivePlan {
        ActivePlan::new(spec.parse().unwrap(), 42, Instant::now())
    }

    #[test]
    fn first_matching_rule_wins_and_counts_are_spent() {
        let active = plan("status:503*2,delay:5");
        let now = Instant::now();
        assert_eq!(active.pick(Target::Chat, now), Some(Fault::Status(503)));
        assert_eq!(active.pick(Target::Chat, now), Some(Fault::Status(503)));
        assert_eq!(
            active.pick(Target::Chat, now),
            Some(Fault::Delay(Duration::from_millis(5)))
        );
    }

    #[test]
    fn probes_peek_at_counts_and_skip_draws() {
        let active = plan("drip:5,status:503*1,reset@1.0");
        let now = Instant::now();
        assert_eq!(active.pick(Target::Models, now), Some(Fault::Status(503)));
        assert_eq!(active.pick(Target::Models, now), Some(Fault::Status(503)));
        assert_eq!(
            active.pick(Target::Chat, now),
            Some(Fault::Drip(Duration::from_millis(5)))
        );
        let active = plan("status:503*1,reset@1.0");
        assert_eq!(active.pick(Target::Chat, now), Some(Fault::Status(503)));
        assert_eq!(active.pick(Target::Models, now), None);
        assert_eq!(active.pick(Target::Chat, now), Some(Fault::Reset));
    }

    #[test]
    fn refuse_acts_on_connections_only() {
        let active = plan("refuse*1");
        let now = Instant::now();
        assert_eq!(active.pick(Target::Chat, now), None);
        assert_eq!(active.pick(Target::Models, now), None);
        assert_eq!(active.refusal(now), None);
        assert_eq!(active.pick(Target::Connection, now), Some(Fault::Refuse));
        assert_eq!(active.pick(Target::Connection, now), None);

        let now = Instant::now();
        let active = ActivePlan::new(
            FaultPlan::single(FaultRule::new(Fault::Refuse).lasting(Duration::from_secs(2))),
            0,
            now,
        );
        assert_eq!(
            active.refusal(now),
            Some(Refusal::Until(now + Duration::from_secs(2)))
        );
        assert_eq!(active.refusal(now + Duration::from_secs(2)), None);
        assert_eq!(plan("refuse").refusal(now), Some(Refusal::UntilChanged));
        assert_eq!(plan("refuse").pick(Target::Chat, now), Some(Fault::Refuse));
        assert_eq!(
            plan("refuse").pick(Target::Models, now),
            Some(Fault::Refuse)
        );
    }

    #[test]
    fn draws_are_reproducible_for_a_seed() {
        let draws = || {
            let active = plan("status:500@0.5");
            let now = Instant::now();
            (0..64)
                .map(|_| active.pick(Target::Chat, now).is_some())
                .collect::<Vec<_>>()
        };
        let first = draws();
        assert_eq!(first, draws());
        assert!(first.contains(&true) && first.contains(&false));
    }
}
