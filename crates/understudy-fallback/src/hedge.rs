//! Hedged first chunks: when an attempt has not committed within
//! `hedge_after`, the next available target is started beside it, and the
//! first to commit serves the request; the other is dropped (its
//! connection closed) and counts as no failure.

use std::borrow::Cow;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use http::{Request, Response};
use tower_service::Service;
use understudy_core::events::Event;
use understudy_core::{
    AttemptCounter, Availability, BoxError, Outcome, ReplayBody, ResponseBody, RouteName,
};

use crate::service::{Shared, Step, attempt, in_flight};

/// Budget tokens are counted in thousandths.
const MILLI: u64 = 1000;
/// The most hedges a budget holds: ten.
const MAX_BALANCE: u64 = 10 * MILLI;

/// A route's hedging settings and budget.
#[derive(Debug)]
pub(crate) struct HedgeSettings {
    after: Duration,
    max_hedges: usize,
    budget: HedgeBudget,
}

impl HedgeSettings {
    pub(crate) fn new(after: Duration, max_hedges: usize, ratio: f64) -> Self {
        Self {
            after,
            max_hedges,
            budget: HedgeBudget::new(ratio),
        }
    }

    /// A request arrived: the budget earns its share.
    pub(crate) fn deposit(&self) {
        self.budget.deposit();
    }
}

/// Each request earns `ratio` of a hedge; each hedge spends one. So over
/// time hedges are at most `ratio` of requests (plus a balance of at most
/// ten), and a uniformly slow provider cannot double the load.
#[derive(Debug)]
struct HedgeBudget {
    balance: AtomicU64,
    per_request: u64,
}

impl HedgeBudget {
    fn new(ratio: f64) -> Self {
        // A ratio in 0..=1, checked by the configuration; as thousandths.
        let per_request = (ratio.clamp(0.0, 1.0) * 1000.0).round();
        Self {
            balance: AtomicU64::new(0),
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            per_request: per_request as u64,
        }
    }

    fn deposit(&self) {
        let _ = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |balance| {
                Some(balance.saturating_add(self.per_request).min(MAX_BALANCE))
            });
    }

    fn withdraw(&self) -> bool {
        self.balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |balance| {
                balance.checked_sub(MILLI)
            })
            .is_ok()
    }
}

/// One request's hedges so far.
#[derive(Debug, Default)]
pub(crate) struct Hedges {
    used: usize,
    /// Targets started as hedges, not to be dispatched again.
    started: Vec<usize>,
}

impl Hedges {
    /// Was target `i` already started as a hedge?
    pub(crate) fn started(&self, i: usize) -> bool {
        self.started.contains(&i)
    }
}

/// What an attempt (hedged or not) came to.
pub(crate) struct Hedged {
    /// The step of the attempt that decided it.
    pub(crate) step: Step,
    /// The target that served, when `step` serves; otherwise the first.
    pub(crate) index: usize,
    /// A hedge that failed: its target and outcome.
    pub(crate) hedge_failed: Option<(usize, Outcome)>,
}

impl Hedged {
    /// An attempt that was not hedged.
    pub(crate) const fn alone(step: Step, index: usize) -> Self {
        Self {
            step,
            index,
            hedge_failed: None,
        }
    }
}

/// Sends one attempt to target `i`; on a route that hedges, starts the
/// next available target beside it when it has not committed within the
/// hedge delay, and the budget allows.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn attempt_hedged<S>(
    shared: &Shared<S>,
    i: usize,
    parts: &http::request::Parts,
    body: &ReplayBody,
    counter: &AttemptCounter,
    hedges: &mut Hedges,
) -> Option<Hedged>
where
    S: Service<Request<ReplayBody>, Response = Response<ResponseBody>> + Clone,
    S::Error: Into<BoxError>,
{
    let target = shared.targets.get(i)?;
    let mut first = pin!(attempt(
        shared,
        target,
        in_flight(shared, i),
        Cow::Borrowed(parts),
        body,
        counter,
        false
    ));
    let settings = match &shared.hedge {
        Some(settings) if hedges.used < settings.max_hedges => settings,
        _ => {
            let step = first.await;
            return Some(Hedged {
                step,
                index: i,
                hedge_failed: None,
            });
        }
    };
    let mut timer = pin!(tokio::time::sleep(settings.after));
    let early = poll_fn(|cx| {
        if let Poll::Ready(step) = first.as_mut().poll(cx) {
            return Poll::Ready(Some(step));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await;
    if let Some(step) = early {
        return Some(Hedged {
            step,
            index: i,
            hedge_failed: None,
        });
    }
    let route = parts.extensions.get::<RouteName>().map(RouteName::as_str);
    let next = (i.saturating_add(1)..shared.targets.len()).find(|&j| {
        !hedges.started(j)
            && shared.targets.get(j).is_some_and(|t| {
                !matches!(
                    shared.availability.availability(t.provider()),
                    Availability::Unavailable { .. }
                )
            })
    });
    let (Some(j), Some(hedge_target)) = (next, next.and_then(|j| shared.targets.get(j))) else {
        let step = first.await;
        return Some(Hedged {
            step,
            index: i,
            hedge_failed: None,
        });
    };
    if !settings.budget.withdraw() {
        report(shared, route, "budget_exhausted");
        let step = first.await;
        return Some(Hedged {
            step,
            index: i,
            hedge_failed: None,
        });
    }
    hedges.used = hedges.used.saturating_add(1);
    hedges.started.push(j);
    let mut second = pin!(attempt(
        shared,
        hedge_target,
        in_flight(shared, j),
        Cow::Borrowed(parts),
        body,
        counter,
        false
    ));
    let mut first_failed: Option<Outcome> = None;
    let mut second_failed: Option<Outcome> = None;
    let winner = poll_fn(|cx| {
        if first_failed.is_none()
            && let Poll::Ready(step) = first.as_mut().poll(cx)
        {
            match step {
                Step::Serve(response) => return Poll::Ready(Some((i, response))),
                Step::Next(outcome) => first_failed = Some(outcome),
            }
        }
        if second_failed.is_none()
            && let Poll::Ready(step) = second.as_mut().poll(cx)
        {
            match step {
                Step::Serve(response) => return Poll::Ready(Some((j, response))),
                Step::Next(outcome) => second_failed = Some(outcome),
            }
        }
        if first_failed.is_some() && second_failed.is_some() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    let hedge_failed = second_failed.map(|outcome| (j, outcome));
    if let Some((index, response)) = winner {
        report(shared, route, if index == j { "won" } else { "lost" });
        return Some(Hedged {
            step: Step::Serve(response),
            index,
            hedge_failed,
        });
    }
    report(shared, route, "failed");
    Some(Hedged {
        step: Step::Next(first_failed.unwrap_or(Outcome::Unavailable)),
        index: i,
        hedge_failed,
    })
}

fn report<S>(shared: &Shared<S>, route: Option<&str>, result: &str) {
    shared.observer.on_event(&Event::Hedge { route, result });
}

#[cfg(test)]
mod tests {
    use super::HedgeBudget;

    #[test]
    fn the_budget_allows_a_ratio_of_requests() {
        let budget = HedgeBudget::new(0.1);
        let mut hedges = 0;
        for _ in 0..100 {
            budget.deposit();
            if budget.withdraw() {
                hedges += 1;
            }
        }
        assert_eq!(hedges, 10);
        let none = HedgeBudget::new(0.0);
        none.deposit();
        assert!(!none.withdraw());
        // The balance is capped.
        let all = HedgeBudget::new(1.0);
        for _ in 0..100 {
            all.deposit();
        }
        assert_eq!((0..100).filter(|_| all.withdraw()).count(), 10);
    }
}
