//! [`Fallback`]: sends a request to the route's targets in order until one
//! serves it.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::future::poll_fn;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response};
use tokio::time::Instant;
use tower_service::Service;
use understudy_core::events::{Event, SharedObserver, noop_observer};
use understudy_core::{
    AlwaysAvailable, AttemptCounter, Availability, BoxError, Classify, Deadline, OpenAiError,
    Outcome, PanicRouting, ProviderAvailability, ReplayBody, ResponseBody, RouteName,
    SharedClassifier,
};

use crate::future::ResponseFuture;
use crate::hedge::{HedgeSettings, Hedged, Hedges, attempt_hedged};
use crate::in_flight::InFlight;
use crate::policy::{FallbackPolicy, FallbackRules, PanicMode};
use crate::resume::{Resumable, ResumeSettings, resumable};
use crate::summary::{AttemptSummary, FailedAttempts, all_failed};
use crate::target::Target;
use crate::tier::{Member, Tier, pick};

/// The provider that served the response.
pub const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-understudy-provider");
/// The model that provider was asked for.
pub const MODEL_HEADER: HeaderName = HeaderName::from_static("x-understudy-model");
/// Upstream attempts made for the request, retries included.
pub const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("x-understudy-attempts");

/// Sends each request to an ordered list of tiers of [`Target`]s until one
/// serves it.
///
/// For each request, tiers are taken in order; targets that health reports
/// unavailable are skipped without being called. A tier of one target (from
/// [`FallbackBuilder::target`]) is tried as it is; a balanced tier (from
/// [`FallbackBuilder::balanced`]) is tried deployment by deployment, each
/// picked among those of the tier not yet tried by weighted power of two
/// choices on requests in flight (see [`Tier`]), and the next tier is
/// reached only once every deployment of the tier has failed or been
/// skipped. A deployment's requests count as in flight from dispatch until
/// the response body ends or is dropped, so a stream counts for as long as
/// it lasts; single targets are not counted. Each attempt gets the same
/// request: the same [`ReplayBody`] (shared, not copied), headers and
/// extensions, plus the target's [`TargetName`](understudy_core::TargetName)
/// and the request's [`AttemptCounter`]. When the outcome is one the
/// [`FallbackPolicy`] fails over on, the response is dropped (releasing its
/// connection) and the next target is tried; otherwise the response goes to
/// the caller with `x-understudy-provider`, `x-understudy-model` and
/// `x-understudy-attempts` headers.
///
/// Every attempt, `Fallback` event and response header names the
/// deployment (target) that failed or served, and the policy's
/// [`target_limit`](FallbackPolicy::target_limit) counts the attempts
/// dispatched, whatever their tier. When every target of every tier is
/// unavailable, [`PanicMode::TryAll`] tries them all anyway, soonest back
/// first.
///
/// When every target fails, the caller gets one OpenAI-shaped error (see
/// [`FailedAttempts`]): 429 when every target was rate limited, with the
/// smallest `Retry-After`; 503 when none could be tried; 502 otherwise.
///
/// The commit point: a target's response must be safe to release when it
/// comes back, so target stacks end with [`FirstChunk`](crate::FirstChunk),
/// which reads non-streaming bodies whole and holds streams until their
/// first content chunk.
///
/// `poll_ready` is always ready: each attempt clones its target and waits for
/// its readiness inside the response future, so one stuck provider never
/// blocks requests to the others. Dropping the response future drops the
/// attempt in flight and tries nothing more.
///
/// # Example
///
/// ```
/// use http::{Request, Response};
/// use tower::{ServiceExt, service_fn, util::BoxCloneSyncService};
/// use understudy_core::{BoxError, ReplayBody, ResponseBody, TargetName};
/// use understudy_fallback::{Fallback, Target};
///
/// fn answering(status: u16) -> BoxCloneSyncService<Request<ReplayBody>, Response<ResponseBody>, BoxError> {
///     BoxCloneSyncService::new(service_fn(move |_: Request<ReplayBody>| async move {
///         Ok::<_, BoxError>(Response::builder().status(status).body(ResponseBody::from("{}")).unwrap())
///     }))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let fallback = Fallback::builder()
///     .target(Target::new(TargetName::new("primary", "big"), answering(503)))
///     .target(Target::new(TargetName::new("backup", "small"), answering(200)))
///     .build();
/// let response = fallback.oneshot(Request::new(ReplayBody::from("{}"))).await.unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["x-understudy-provider"], "backup");
/// assert_eq!(response.headers()["x-understudy-attempts"], "2");
/// # }
/// ```
pub struct Fallback<S> {
    shared: Arc<Shared<S>>,
}

pub(crate) struct Shared<S> {
    /// Every target, flat, in order.
    pub(crate) targets: Vec<Target<S>>,
    /// Each target's weight and in-flight count, by the same index.
    members: Vec<Member>,
    /// Each tier's range of `targets`, in order.
    tiers: Vec<Range<usize>>,
    policy: Arc<dyn FallbackPolicy>,
    pub(crate) availability: Arc<dyn ProviderAvailability>,
    pub(crate) observer: SharedObserver,
    classifier: SharedClassifier,
    /// Resume broken streams, with at most this much content sent.
    pub(crate) resume: Option<ResumeSettings>,
    /// Hedge slow first chunks.
    pub(crate) hedge: Option<HedgeSettings>,
}

/// Builds a [`Fallback`].
///
/// # Example
///
/// ```
/// use http::{Request, Response};
/// use tower::service_fn;
/// use tower::util::BoxCloneSyncService;
/// use understudy_core::{BoxError, Outcome, ReplayBody, ResponseBody, TargetName};
/// use understudy_fallback::{Fallback, FallbackOn, FallbackRules, Target};
///
/// type Service = BoxCloneSyncService<Request<ReplayBody>, Response<ResponseBody>, BoxError>;
///
/// let answer = || {
///     Service::new(service_fn(|_: Request<ReplayBody>| async {
///         Ok::<_, BoxError>(Response::new(ResponseBody::from("{}")))
///     }))
/// };
/// let fallback: Fallback<Service> = Fallback::builder()
///     .target(Target::new(TargetName::new("openai", "gpt-4o"), answer()))
///     .target(Target::new(TargetName::new("anthropic", "claude-sonnet-4"), answer()))
///     // Also move on when the prompt is too long for the first model.
///     .policy(FallbackRules::default().on(FallbackOn::ContextLength))
///     .build();
/// assert_eq!(fallback.targets().len(), 2);
/// assert!(fallback.policy().fails_over(&Outcome::Unavailable));
/// ```
pub struct FallbackBuilder<S> {
    targets: Vec<Target<S>>,
    members: Vec<Member>,
    tiers: Vec<Range<usize>>,
    policy: Arc<dyn FallbackPolicy>,
    availability: Arc<dyn ProviderAvailability>,
    observer: SharedObserver,
    classifier: SharedClassifier,
    resume: Option<ResumeSettings>,
    hedge: Option<HedgeSettings>,
}

// ===== impl FallbackBuilder =====

impl<S> FallbackBuilder<S> {
    /// Adds a target after those already added: a tier of one.
    pub fn target(self, target: Target<S>) -> Self {
        self.balanced([(target, 1)])
    }

    /// Adds targets after those already added, each a tier of one.
    pub fn targets(self, targets: impl IntoIterator<Item = Target<S>>) -> Self {
        targets.into_iter().fold(self, Self::target)
    }

    /// Adds a balanced tier after those already added: deployments of the
    /// same model, each with its weight (0 counts as 1), that share the
    /// traffic reaching the tier.
    ///
    /// Each attempt goes to the open deployment picked by weighted power
    /// of two choices on requests in flight (see [`Tier`]); one that fails
    /// over moves the request to another deployment of the tier, and the
    /// next tier is tried only when every deployment of this one has failed
    /// or is unavailable. A tier of one deployment is a plain target, and
    /// no deployments add no tier.
    ///
    /// # Example
    ///
    /// ```
    /// use http::{Request, Response};
    /// use tower::{ServiceExt, service_fn, util::BoxCloneSyncService};
    /// use understudy_core::{BoxError, ReplayBody, ResponseBody, TargetName};
    /// use understudy_fallback::{Fallback, Target};
    ///
    /// fn answering(status: u16) -> BoxCloneSyncService<Request<ReplayBody>, Response<ResponseBody>, BoxError> {
    ///     BoxCloneSyncService::new(service_fn(move |_: Request<ReplayBody>| async move {
    ///         Ok::<_, BoxError>(Response::builder().status(status).body(ResponseBody::from("{}")).unwrap())
    ///     }))
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let fallback = Fallback::builder()
    ///     // Two deployments of one model, the first taking twice the traffic.
    ///     .balanced([
    ///         (Target::new(TargetName::new("east", "gpt-4o"), answering(503)), 2),
    ///         (Target::new(TargetName::new("west", "gpt-4o"), answering(503)), 1),
    ///     ])
    ///     // Only when both have failed.
    ///     .target(Target::new(TargetName::new("backup", "gpt-4o-mini"), answering(200)))
    ///     .build();
    /// assert_eq!(fallback.targets().len(), 3);
    /// assert_eq!(fallback.tiers().len(), 2);
    ///
    /// let response = fallback.oneshot(Request::new(ReplayBody::from("{}"))).await.unwrap();
    /// assert_eq!(response.headers()["x-understudy-provider"], "backup");
    /// assert_eq!(response.headers()["x-understudy-attempts"], "3");
    /// # }
    /// ```
    pub fn balanced(mut self, deployments: impl IntoIterator<Item = (Target<S>, u32)>) -> Self {
        let start = self.targets.len();
        let mut weights = Vec::new();
        for (target, weight) in deployments {
            self.targets.push(target);
            weights.push(weight);
        }
        let balanced = weights.len() > 1;
        self.members.extend(
            weights
                .into_iter()
                .map(|weight| Member::new(weight, balanced)),
        );
        if self.targets.len() > start {
            self.tiers.push(start..self.targets.len());
        }
        self
    }

    /// When to fail over; the default ([`FallbackRules`]) fails over on
    /// every provider failure.
    pub fn policy(mut self, policy: impl FallbackPolicy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Classifies each target's answer with `classifier` instead of
    /// [`LlmClassifier`](understudy_core::LlmClassifier); give the whole
    /// stack the same one.
    pub fn classifier(mut self, classifier: impl Classify) -> Self {
        self.classifier = SharedClassifier::new(classifier);
        self
    }

    /// Where availability comes from, typically `understudy-health`'s
    /// `HealthRegistry`; by default every target is available.
    pub fn availability(mut self, availability: impl ProviderAvailability + 'static) -> Self {
        self.availability = Arc::new(availability);
        self
    }

    /// Receives `Fallback` and `AllTargetsFailed` events.
    pub fn observer(mut self, observer: SharedObserver) -> Self {
        self.observer = observer;
        self
    }

    /// Resumes streams that break after their commit (see
    /// [`resume`](crate::resume)): the answer goes on from the next
    /// available target, each asked at most once, unless more than
    /// `max_resume_bytes` of content were already sent or a tool call was
    /// in progress. Off by default: a break ends the stream with an SSE
    /// error event. `max_event_bytes` bounds each event read. A break the
    /// resume finds in the events (an error event, a malformed one) is
    /// reported to the [`observer`](Self::observer) as
    /// `Event::StreamBrokenAfterCommit` (cuts and stalls are reported by
    /// the first-chunk guard): give it the health registry too, so such a
    /// break counts against the provider. Each resume is reported as
    /// `Event::Resume`.
    pub fn resume(mut self, max_resume_bytes: usize, max_event_bytes: usize) -> Self {
        self.resume = Some(ResumeSettings {
            max_resume_bytes,
            max_event_bytes,
        });
        self
    }

    /// Hedges slow first chunks: when an attempt has not committed (a
    /// stream's first content, a whole answer) within `after`, the next
    /// available target is started beside it; the first to commit serves
    /// and the other is dropped, its connection closed, counting as no
    /// failure. At most `max_hedges` per request, and hedges draw from a
    /// budget that each request adds `ratio` (0 to 1) of a hedge to. Off
    /// by default.
    pub fn hedge(mut self, after: Duration, max_hedges: usize, ratio: f64) -> Self {
        self.hedge = Some(HedgeSettings::new(after, max_hedges, ratio));
        self
    }

    /// The selector.
    pub fn build(self) -> Fallback<S> {
        Fallback {
            shared: Arc::new(Shared {
                targets: self.targets,
                members: self.members,
                tiers: self.tiers,
                policy: self.policy,
                availability: self.availability,
                observer: self.observer,
                classifier: self.classifier,
                resume: self.resume,
                hedge: self.hedge,
            }),
        }
    }
}

impl<S> fmt::Debug for FallbackBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackBuilder")
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

// ===== impl Fallback =====

impl<S> Fallback<S> {
    /// Starts a selector with no targets, the default policy, every target
    /// available and no observer.
    pub fn builder() -> FallbackBuilder<S> {
        FallbackBuilder {
            targets: Vec::new(),
            members: Vec::new(),
            tiers: Vec::new(),
            policy: Arc::new(FallbackRules::default()),
            availability: Arc::new(AlwaysAvailable),
            observer: noop_observer(),
            classifier: SharedClassifier::default(),
            resume: None,
            hedge: None,
        }
    }

    /// Every target, in order: the deployments of each tier, tier by tier.
    pub fn targets(&self) -> &[Target<S>] {
        &self.shared.targets
    }

    /// The tiers, in order.
    pub fn tiers(&self) -> impl ExactSizeIterator<Item = Tier<'_, S>> {
        let shared = &*self.shared;
        shared
            .tiers
            .iter()
            .map(|range| Tier::new(&shared.targets, &shared.members, range.clone()))
    }

    /// The policy.
    pub fn policy(&self) -> &dyn FallbackPolicy {
        &*self.shared.policy
    }
}

impl<S> Clone for Fallback<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S> fmt::Debug for Fallback<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("targets", &self.shared.targets)
            .finish_non_exhaustive()
    }
}

impl<S> Service<Request<ReplayBody>> for Fallback<S>
where
    S: Service<Request<ReplayBody>, Response = Response<ResponseBody>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReplayBody>) -> Self::Future {
        ResponseFuture {
            inner: Box::pin(dispatch(self.shared.clone(), request)),
        }
    }
}

/// What one attempt at a target came to.
pub(crate) enum Step {
    /// Release this response to the caller.
    Serve(Response<ResponseBody>),
    /// Move on; the target failed with this outcome.
    Next(Outcome),
}

async fn dispatch<S>(
    shared: Arc<Shared<S>>,
    request: Request<ReplayBody>,
) -> Result<Response<ResponseBody>, Infallible>
where
    S: Service<Request<ReplayBody>, Response = Response<ResponseBody>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let (mut parts, body) = request.into_parts();
    let counter = if let Some(counter) = parts.extensions.get::<AttemptCounter>() {
        counter.clone()
    } else {
        let counter = AttemptCounter::new();
        parts.extensions.insert(counter.clone());
        counter
    };
    let route = parts.extensions.get::<RouteName>().cloned();
    let deadline = parts.extensions.get::<Deadline>().copied();
    let route_str = route.as_ref().map(RouteName::as_str);
    let limit = shared.policy.target_limit();
    if shared.resume.is_some() {
        parts.extensions.insert(Resumable);
    }
    let mut hedges = Hedges::default();
    if let Some(hedge) = &shared.hedge {
        hedge.deposit();
    }

    // Attempts that did not serve the request; stays empty (no allocation)
    // when the first target serves it.
    let mut failed: Vec<AttemptSummary> = Vec::new();
    // How many of `failed` have been reported as `Fallback` events.
    let mut reported = 0;
    let mut dispatched = 0;

    let stop =
        |dispatched: usize| dispatched == limit || deadline.is_some_and(Deadline::has_passed);
    // A balanced tier's deployments neither tried nor skipped (allocated
    // only for balanced tiers); a single target's index is `only`.
    let mut open: Vec<usize> = Vec::new();
    'tiers: for (t, tier) in shared.tiers.iter().enumerate() {
        if stop(dispatched) {
            break;
        }
        // Just checked, with nothing awaited since: the tier's first
        // candidate needs no second clock read.
        let mut checked = true;
        let balanced = tier.len() > 1;
        let mut only = None;
        open.clear();
        for i in tier.clone() {
            let Some(target) = shared.targets.get(i) else {
                continue;
            };
            if let Availability::Unavailable { kind, until } =
                shared.availability.availability(target.provider())
            {
                if let Some(log) = parts.extensions.get::<understudy_core::AttemptLog>() {
                    log.skipped(Arc::clone(&target.name().provider), kind);
                }
                failed.push(skipped(target, kind, until));
            } else if balanced {
                open.push(i);
            } else {
                only = Some(i);
            }
        }
        while let Some(i) = only.take().or_else(|| pick(&shared.members, &mut open)) {
            if !std::mem::take(&mut checked) && stop(dispatched) {
                break 'tiers;
            }
            let Some(target) = shared.targets.get(i) else {
                continue;
            };
            if hedges.started(i) {
                continue;
            }
            report_fallbacks(&shared, route_str, &failed, &mut reported, target);
            dispatched += 1;
            let hedged = if shared.hedge.is_some() {
                // Boxed: the race's state stays out of every other request's.
                Box::pin(attempt_hedged(
                    &shared,
                    i,
                    &parts,
                    &body,
                    &counter,
                    &mut hedges,
                ))
                .await
            } else {
                let in_flight = in_flight(&shared, i);
                // Nothing can follow the route's last target when the
                // route does not resume: the head is moved into its attempt
                // rather than copied (panic mode only runs when nothing was
                // dispatched, and a served response keeps no head).
                let last = t + 1 == shared.tiers.len() && open.is_empty();
                let head = if last && shared.resume.is_none() {
                    Cow::Owned(std::mem::replace(&mut parts, empty_head()))
                } else {
                    Cow::Borrowed(&parts)
                };
                let step = attempt(&shared, target, in_flight, head, &body, &counter, false).await;
                Some(Hedged::alone(step, i))
            };
            let Some(hedged) = hedged else {
                continue;
            };
            if let Some((j, outcome)) = hedged.hedge_failed
                && let Some(hedge) = shared.targets.get(j)
            {
                failed.push(tried(hedge, outcome));
            }
            match hedged.step {
                Step::Serve(response) => {
                    let i = hedged.index;
                    let target = shared.targets.get(i).unwrap_or(target);
                    let response = resumable(&shared, i, response, &parts, &body, &counter);
                    return Ok(served(response, target, &counter, route));
                }
                Step::Next(outcome) => failed.push(tried(target, outcome)),
            }
        }
    }

    // Every target was unavailable: panic mode.
    let all_unavailable = dispatched == 0 && !failed.is_empty();
    if all_unavailable && shared.policy.panic() == PanicMode::TryAll {
        let skips = std::mem::take(&mut failed);
        reported = 0;
        let mut order: Vec<usize> = (0..skips.len()).collect();
        // Soonest back first; unknown return times last, in route order.
        order.sort_by_key(|&i| skips[i].until.map_or((1, None), |until| (0, Some(until))));
        for i in order {
            if stop(dispatched) {
                break;
            }
            let Some(target) = shared.targets.get(i) else {
                continue;
            };
            report_fallbacks(&shared, route_str, &failed, &mut reported, target);
            dispatched += 1;
            let in_flight = in_flight(&shared, i);
            let head = Cow::Borrowed(&parts);
            match attempt(&shared, target, in_flight, head, &body, &counter, true).await {
                Step::Serve(response) => {
                    let response = resumable(&shared, i, response, &parts, &body, &counter);
                    return Ok(served(response, target, &counter, route));
                }
                Step::Next(outcome) => failed.push(tried(target, outcome)),
            }
        }
        if failed.is_empty() {
            failed = skips;
        }
    }

    shared.observer.on_event(&Event::AllTargetsFailed {
        route: route_str,
        attempts: counter.get(),
        all_unavailable,
    });
    let error = all_failed(route_str, &failed);
    let mut response: Response<ResponseBody> = error.to_response();
    let outcome = failed.last().map_or(Outcome::Unavailable, |a| a.outcome);
    response.extensions_mut().insert(outcome);
    response.extensions_mut().insert(FailedAttempts(failed));
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
        .headers_mut()
        .insert(ATTEMPTS_HEADER, HeaderValue::from(counter.get()));
    Ok(response)
}

/// The in-flight count of target `i`, when it is counted.
pub(crate) fn in_flight<S>(shared: &Shared<S>, i: usize) -> Option<&Arc<AtomicUsize>> {
    shared.members.get(i).and_then(|m| m.in_flight.as_ref())
}

/// A request head with nothing in it, left in place of one moved out
/// (allocates nothing).
fn empty_head() -> http::request::Parts {
    Request::new(()).into_parts().0
}

/// Sends one attempt to `target` and decides what it comes to; with
/// `in_flight`, the attempt is counted there until its response body ends
/// or is dropped. The request head is copied unless it is given.
pub(crate) async fn attempt<S>(
    shared: &Shared<S>,
    target: &Target<S>,
    in_flight: Option<&Arc<AtomicUsize>>,
    parts: Cow<'_, http::request::Parts>,
    body: &ReplayBody,
    counter: &AttemptCounter,
    panic: bool,
) -> Step
where
    S: Service<Request<ReplayBody>, Response = Response<ResponseBody>> + Clone,
    S::Error: Into<BoxError>,
{
    counter.add(1);
    let guard = in_flight.map(InFlight::enter);
    let mut request = Request::from_parts(parts.into_owned(), body.clone());
    request.extensions_mut().insert(target.name().clone());
    if panic {
        request.extensions_mut().insert(PanicRouting);
    }
    let mut service = target.service().clone();
    let ready: Result<(), BoxError> =
        poll_fn(|cx| service.poll_ready(cx).map_err(Into::into)).await;
    let result = match ready {
        Ok(()) => service.call(request).await.map_err(Into::into),
        Err(error) => Err(error),
    };
    let classifier = &shared.classifier;
    let outcome = match &result {
        Ok(response) => classifier.classify_response(response),
        Err(error) => classifier.classify_error(&**error),
    };
    let fails_over = match outcome {
        Outcome::Success => false,
        Outcome::Unavailable => {
            // Nothing was sent (health refused it at the last moment, or
            // the provider does not serve this operation).
            counter.take_back(1);
            true
        }
        _ => shared.policy.fails_over(&outcome),
    };
    if !fails_over {
        let response = result.unwrap_or_else(|_| {
            // A failure the policy does not fail over on, with no response
            // to pass on.
            let mut response: Response<ResponseBody> = OpenAiError::bad_gateway(format!(
                "provider `{}` failed: {outcome}",
                target.provider()
            ))
            .to_response();
            response.extensions_mut().insert(outcome);
            response
        });
        return Step::Serve(match guard {
            Some(guard) => response.map(|body| guard.hold(body)),
            None => response,
        });
    }
    Step::Next(outcome)
}

/// Reports a `Fallback` event from every target left since the last
/// dispatch to `next`.
fn report_fallbacks<S>(
    shared: &Shared<S>,
    route: Option<&str>,
    failed: &[AttemptSummary],
    reported: &mut usize,
    next: &Target<S>,
) {
    for left in failed.iter().skip(*reported) {
        shared.observer.on_event(&Event::Fallback {
            route,
            from: &left.provider,
            to: next.provider(),
            outcome: left.outcome,
        });
    }
    *reported = failed.len();
}

fn skipped<S>(
    target: &Target<S>,
    kind: understudy_core::UnavailableKind,
    until: Option<Instant>,
) -> AttemptSummary {
    AttemptSummary {
        provider: target.name().provider.clone(),
        model: target.name().model.clone(),
        outcome: Outcome::Unavailable,
        skipped: Some(kind),
        until,
    }
}

fn tried<S>(target: &Target<S>, outcome: Outcome) -> AttemptSummary {
    AttemptSummary {
        provider: target.name().provider.clone(),
        model: target.name().model.clone(),
        outcome,
        skipped: None,
        until: None,
    }
}

/// Marks the response with who served it.
fn served<S>(
    mut response: Response<ResponseBody>,
    target: &Target<S>,
    counter: &AttemptCounter,
    route: Option<RouteName>,
) -> Response<ResponseBody> {
    let headers = response.headers_mut();
    if let Some(value) = target.provider_header() {
        headers.insert(PROVIDER_HEADER, value.clone());
    }
    if let Some(value) = target.model_header() {
        headers.insert(MODEL_HEADER, value.clone());
    }
    headers.insert(ATTEMPTS_HEADER, HeaderValue::from(counter.get()));
    let extensions = response.extensions_mut();
    extensions.insert(target.name().clone());
    if let Some(route) = route {
        extensions.insert(route);
    }
    response
}
