//! [`Tier`]: a group of deployments of the same model that share a route's
//! traffic, and the rule that picks the deployment for each attempt.
//!
//! The rule is weighted power of two choices on requests in flight: draw
//! two distinct open members at random, each with probability proportional
//! to its weight, and take the one with the lower `in_flight / weight`; on
//! a tie, the first draw. When every member is idle the first draw always
//! wins, so traffic follows the weights exactly; under load, the member
//! with fewer requests in flight for its weight is preferred.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::target::Target;

/// The weight of a target, and its requests in flight when it shares a
/// tier with others.
#[derive(Debug)]
pub(crate) struct Member {
    /// At least 1.
    pub(crate) weight: u32,
    /// Counted only in tiers of more than one member.
    pub(crate) in_flight: Option<Arc<AtomicUsize>>,
}

impl Member {
    pub(crate) fn new(weight: u32, balanced: bool) -> Self {
        Self {
            weight: weight.max(1),
            in_flight: balanced.then(|| Arc::new(AtomicUsize::new(0))),
        }
    }

    fn load(&self) -> usize {
        self.in_flight
            .as_ref()
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }
}

/// One entry of a [`Fallback`](crate::Fallback): a single target, or a
/// balanced group of deployments of the same model (from
/// [`FallbackBuilder::balanced`](crate::FallbackBuilder::balanced)).
///
/// # Example
///
/// ```
/// use understudy_core::TargetName;
/// use understudy_fallback::{Fallback, Target};
///
/// let fallback: Fallback<()> = Fallback::builder()
///     .balanced([
///         (Target::new(TargetName::new("east", "gpt-4o"), ()), 2),
///         (Target::new(TargetName::new("west", "gpt-4o"), ()), 1),
///     ])
///     .target(Target::new(TargetName::new("backup", "gpt-4o-mini"), ()))
///     .build();
/// let tiers: Vec<_> = fallback.tiers().collect();
/// assert_eq!(tiers.len(), 2);
/// assert!(tiers[0].is_balanced());
/// assert_eq!(tiers[0].weights().collect::<Vec<_>>(), [2, 1]);
/// assert_eq!(tiers[0].in_flight().collect::<Vec<_>>(), [0, 0]);
/// assert_eq!(tiers[1].targets()[0].provider(), "backup");
/// ```
pub struct Tier<'a, S> {
    targets: &'a [Target<S>],
    members: &'a [Member],
}

impl<'a, S> Tier<'a, S> {
    pub(crate) fn new(
        targets: &'a [Target<S>],
        members: &'a [Member],
        range: Range<usize>,
    ) -> Self {
        Self {
            targets: targets.get(range.clone()).unwrap_or_default(),
            members: members.get(range).unwrap_or_default(),
        }
    }

    /// The tier's targets (its deployments), in the order they were added.
    pub fn targets(&self) -> &'a [Target<S>] {
        self.targets
    }

    /// Does the tier balance between more than one deployment?
    pub fn is_balanced(&self) -> bool {
        self.targets.len() > 1
    }

    /// Each deployment's weight, in order (1 for a single target).
    pub fn weights(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.members.iter().map(|member| member.weight)
    }

    /// Each deployment's requests in flight, in order: from dispatch until
    /// the response body ends or is dropped. Always 0 for a single target,
    /// whose requests are not counted.
    pub fn in_flight(&self) -> impl ExactSizeIterator<Item = usize> + 'a {
        self.members.iter().map(Member::load)
    }
}

impl<S> Clone for Tier<'_, S> {
    fn clone(&self) -> Self {
        Self {
            targets: self.targets,
            members: self.members,
        }
    }
}

impl<S> fmt::Debug for Tier<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tier")
            .field("targets", &self.targets)
            .field("members", &self.members)
            .finish()
    }
}

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// Takes the member to try next out of `open` (indices into `members`),
/// by weighted power of two choices; `None` once `open` is empty.
pub(crate) fn pick(members: &[Member], open: &mut Vec<usize>) -> Option<usize> {
    let at = match open.len() {
        0 => return None,
        1 => 0,
        _ => RNG.with_borrow_mut(|rng| choose(members, open, rng)),
    };
    Some(open.remove(at))
}

/// The position in `open` (at least two members) of the member to try.
fn choose(members: &[Member], open: &[usize], rng: &mut impl Rng) -> usize {
    let member = |at: usize| open.get(at).and_then(|&i| members.get(i));
    let weight = |at: usize| member(at).map_or(1, |m| u64::from(m.weight));
    let total: u64 = (0..open.len()).map(weight).sum();
    let first = draw(open.len(), total, None, &weight, rng);
    let second = draw(
        open.len(),
        total.saturating_sub(weight(first)),
        Some(first),
        &weight,
        rng,
    );
    let load = |at: usize| member(at).map_or(0, Member::load) as u128;
    // `second` only if its in_flight / weight is strictly lower.
    if load(second) * u128::from(weight(first)) < load(first) * u128::from(weight(second)) {
        second
    } else {
        first
    }
}

/// A position below `len` other than `skip`, with probability proportional
/// to its weight (`total` is the sum of the weights drawn from).
fn draw(
    len: usize,
    total: u64,
    skip: Option<usize>,
    weight: &impl Fn(usize) -> u64,
    rng: &mut impl Rng,
) -> usize {
    let mut left = rng.random_range(0..total.max(1));
    let mut last = 0;
    for at in (0..len).filter(|&at| Some(at) != skip) {
        let w = weight(at);
        if left < w {
            return at;
        }
        left -= w;
        last = at;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::{Member, choose};
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::sync::atomic::Ordering;

    fn members(weights: &[u32]) -> Vec<Member> {
        weights.iter().map(|&w| Member::new(w, true)).collect()
    }

    #[test]
    fn idle_members_are_drawn_in_proportion_to_their_weights() {
        let members = members(&[3, 1]);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = [0_u32; 2];
        for _ in 0..4000 {
            counts[choose(&members, &[0, 1], &mut rng)] += 1;
        }
        assert!((2800..3200).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn the_member_with_less_in_flight_for_its_weight_wins() {
        let members = members(&[2, 1]);
        members[0]
            .in_flight
            .as_ref()
            .unwrap()
            .store(3, Ordering::Relaxed);
        members[1]
            .in_flight
            .as_ref()
            .unwrap()
            .store(1, Ordering::Relaxed);
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..100 {
            // 3/2 > 1/1: always the second.
            assert_eq!(choose(&members, &[0, 1], &mut rng), 1);
        }
    }

    #[test]
    fn two_draws_are_distinct() {
        let members = members(&[1, 1000, 1]);
        members[1]
            .in_flight
            .as_ref()
            .unwrap()
            .store(10_000, Ordering::Relaxed);
        let mut rng = SmallRng::seed_from_u64(1);
        let picks = (0..1000)
            .filter(|_| choose(&members, &[0, 1, 2], &mut rng) != 1)
            .count();
        // Whenever the heavy, loaded member is drawn, the other draw is a
        // different, idle member that wins.
        assert_eq!(picks, 1000);
    }
}
