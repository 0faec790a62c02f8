//! Caller keys: who the caller is, and what it may do.
//!
//! With `[auth]` configured, every `/v1/*` request must present one of the
//! configured keys: `Authorization: Bearer <key>`, or on the Messages
//! endpoint also `x-api-key: <key>` (Anthropic's SDKs send that).
//!
//! - [`AuthLayer`] sits in the edge right after the observe layer, before
//!   the deadline and before any body is read: a request without a known
//!   key gets a 401 `invalid_api_key` and goes no further. A known one
//!   gets its [`Caller`] in the request extensions, the key's *name* in the
//!   `key` field of the `llm.request` span, and a [`CallerName`] in the
//!   response extensions, which the observe layer turns into the `key`
//!   metric label.
//! - [`refusal`], called by the router once the route is known: a route the
//!   key may not use gets a 403 `route_not_allowed`; then a key over its
//!   `rpm` gets a 429 `rate_limit_exceeded` with `Retry-After`. A refused
//!   route does not use up the key's rate.
//!
//! Every error is OpenAI-shaped; the Messages endpoint turns them into
//! Anthropic's shape (401 `authentication_error`, 403 `permission_error`,
//! 429 `rate_limit_error`). No message repeats a key.
//!
//! # Keys are compared as digests, in constant time
//!
//! Only the SHA-256 of each key is kept. A presented key is hashed, and its
//! digest compared with every configured digest with
//! [`subtle::ConstantTimeEq`], all of them whatever matches, the match
//! selected with [`subtle`] too. The digests have one length whatever the
//! keys' lengths, so the comparison's time says nothing about how long a
//! key is; and were any timing to leak how long a prefix of the digests
//! matched, that prefix says nothing about the key, since an attacker
//! cannot choose a key whose digest starts with a chosen prefix.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use tower::{Layer, Service};
use understudy_core::{CallerName, OpenAiError, Operation, ResponseBody, RouteName};

use crate::config::{AuthConfig, AuthSecrets};
use crate::live::Live;

/// The header Anthropic's SDKs carry their key in.
const X_API_KEY: &str = "x-api-key";

/// The SHA-256 of a key: what is kept of it, and what is compared.
///
/// Its `Debug` shows nothing of it.
///
/// ```
/// use understudy_gateway::auth::KeyDigest;
///
/// let digest = KeyDigest::of(b"sk-caller");
/// let hex = "7aa1b1c2a0e9fbe6e3c5c4d6b1fa0e5bd1b5fe1c4e19b1e0e8e8a4e1a3c1d0f2";
/// assert!(KeyDigest::from_hex(hex).is_some());
/// assert!(KeyDigest::from_hex("not hex").is_none());
/// assert!(digest.same_as(&KeyDigest::of(b"sk-caller")));
/// assert_eq!(format!("{digest:?}"), "KeyDigest(…)");
/// ```
#[derive(Clone, Copy)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The digest of `key`.
    pub fn of(key: &[u8]) -> Self {
        Self(Sha256::digest(key).into())
    }

    /// A digest written as 64 hexadecimal characters (either case), as
    /// `printf %s "$KEY" | sha256sum` prints it; `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0_u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            let [high, low] = pair else { return None };
            *byte = (nibble(*high)? << 4) | nibble(*low)?;
        }
        Some(Self(bytes))
    }

    /// The digest's bytes.
    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// Whether `other` is the same digest, compared in constant time.
    pub fn same_as(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

/// The value of one hexadecimal digit.
fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl ConstantTimeEq for KeyDigest {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(…)")
    }
}

/// A caller identified by its key: the key's name, the routes it may use
/// and its rate limiter. Requests carry it in their extensions.
#[derive(Clone)]
pub struct Caller {
    name: CallerName,
    /// Route names, `provider/*`, or `*`.
    routes: Arc<[String]>,
    /// `rpm` as configured, and its limiter.
    limit: Option<(NonZeroU32, Arc<DefaultDirectRateLimiter>)>,
}

impl Caller {
    /// A caller named `name` that may use `routes` (route names,
    /// `provider/model`, `provider/*` for any model of a provider addressed
    /// directly, or `*` for all), at most `rpm` requests a minute (bursts
    /// of up to `rpm`) when given.
    pub fn new(name: &str, routes: &[String], rpm: Option<NonZeroU32>) -> Self {
        Self {
            name: CallerName::new(name),
            routes: routes.into(),
            limit: rpm.map(|rpm| (rpm, Arc::new(RateLimiter::direct(Quota::per_minute(rpm))))),
        }
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Whether the key may use the route `route` (a route's name, or the
    /// name the router gives a model addressed directly).
    pub fn may_use(&self, route: &str) -> bool {
        self.routes.iter().any(|allowed| {
            allowed == "*"
                || allowed == route
                || allowed.strip_suffix("/*").is_some_and(|provider| {
                    route
                        .strip_prefix(provider)
                        .is_some_and(|rest| rest.starts_with('/'))
                })
        })
    }

    /// Takes one request from the key's rate; `Err` with how long until
    /// the next one may be made when it is spent.
    fn take(&self) -> Result<(), (NonZeroU32, Duration)> {
        let Some((rpm, limiter)) = &self.limit else {
            return Ok(());
        };
        limiter
            .check()
            .map_err(|not_until| (*rpm, not_until.wait_time_from(limiter.clock().now())))
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("name", &self.name())
            .field("routes", &self.routes)
            .field("rpm", &self.limit.as_ref().map(|(rpm, _)| rpm))
            .finish()
    }
}

/// The configured keys' digests, each with its [`Caller`].
#[derive(Clone, Debug, Default)]
pub struct KeyTable {
    digests: Vec<KeyDigest>,
    callers: Vec<Caller>,
}

impl KeyTable {
    /// A table of `keys`.
    pub fn new(keys: impl IntoIterator<Item = (KeyDigest, Caller)>) -> Self {
        let (digests, callers) = keys.into_iter().unzip();
        Self { digests, callers }
    }

    /// The caller whose key is `key`, if any; see the module docs for how
    /// it is compared.
    ///
    /// ```
    /// use understudy_gateway::auth::{Caller, KeyDigest, KeyTable};
    ///
    /// let table = KeyTable::new([(
    ///     KeyDigest::of(b"sk-search"),
    ///     Caller::new("search", &["chat".to_owned()], None),
    /// )]);
    /// assert_eq!(table.identify(b"sk-search").map(|c| c.name()), Some("search"));
    /// assert!(table.identify(b"sk-other").is_none());
    /// ```
    pub fn identify(&self, key: &[u8]) -> Option<&Caller> {
        self.find_with(&KeyDigest::of(key), KeyDigest::ct_eq)
    }

    /// The caller whose digest `same` says is `presented`: `same` is called
    /// with every configured digest, whatever matches, and the match is
    /// selected without a branch on it (a later match wins).
    fn find_with(
        &self,
        presented: &KeyDigest,
        mut same: impl FnMut(&KeyDigest, &KeyDigest) -> Choice,
    ) -> Option<&Caller> {
        let mut found = Choice::from(0);
        let mut index = 0_u64;
        for (i, digest) in (0_u64..).zip(&self.digests) {
            let matched = same(digest, presented);
            index.conditional_assign(&i, matched);
            found |= matched;
        }
        if bool::from(found) {
            usize::try_from(index)
                .ok()
                .and_then(|i| self.callers.get(i))
        } else {
            None
        }
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether the table holds no key.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

/// Caller authentication as configured by `[auth]`: the caller keys, and
/// the keys of `/metrics` and the admin endpoints.
#[derive(Clone, Debug)]
pub struct Auth {
    table: KeyTable,
    metrics: Option<KeyDigest>,
    admin: Option<KeyDigest>,
}

impl Auth {
    /// Authentication from `[auth]` and the digests read for it
    /// ([`Config::auth_secrets`](crate::config::Config::auth_secrets)).
    pub fn new(config: &AuthConfig, secrets: AuthSecrets) -> Self {
        let table = KeyTable::new(secrets.keys.into_iter().zip(&config.keys).map(
            |(digest, key)| {
                let rpm = key.rpm.and_then(NonZeroU32::new);
                (digest, Caller::new(&key.name, &key.routes, rpm))
            },
        ));
        Self {
            table,
            metrics: secrets.metrics,
            admin: secrets.admin,
        }
    }

    /// Keeps `previous`'s rate limiters for the keys whose name and `rpm`
    /// are unchanged, so a reload does not hand every caller a fresh
    /// minute.
    pub fn keep_limits(&mut self, previous: &Self) {
        for caller in &mut self.table.callers {
            let Some((rpm, limiter)) = &mut caller.limit else {
                continue;
            };
            let kept = previous
                .table
                .callers
                .iter()
                .find_map(|old| match &old.limit {
                    Some((old_rpm, old_limiter)) if old.name == caller.name && old_rpm == rpm => {
                        Some(old_limiter.clone())
                    }
                    _ => None,
                });
            if let Some(kept) = kept {
                *limiter = kept;
            }
        }
    }

    /// Whether `headers` bear the metrics key for the status page: as
    /// `Authorization: Bearer <key>`, or as the password of `Basic`
    /// credentials (any user name), which is what a browser can be asked
    /// for. False when no metrics key is configured.
    pub fn may_read_status(&self, headers: &HeaderMap) -> bool {
        let Some(digest) = &self.metrics else {
            return false;
        };
        if presents(headers, digest) {
            return true;
        }
        basic_password(headers).is_some_and(|password| KeyDigest::of(&password).same_as(digest))
    }

    /// Whether an admin key is configured (`admin_key_env`).
    pub const fn has_admin(&self) -> bool {
        self.admin.is_some()
    }

    /// The caller keys.
    pub fn table(&self) -> &KeyTable {
        &self.table
    }

    /// The caller the request's headers identify: the key in
    /// `Authorization: Bearer`, or in `x-api-key` when `x_api_key` (the
    /// Messages endpoint, and the model list in Anthropic's shape).
    pub fn identify(&self, headers: &HeaderMap, x_api_key: bool) -> Option<&Caller> {
        let key = x_api_key
            .then(|| headers.get(X_API_KEY).map(HeaderValue::as_bytes))
            .flatten()
            .or_else(|| bearer(headers))?;
        self.table.identify(key)
    }

    /// Whether the request may read `/metrics`: always without
    /// `metrics_key_env`, else with `Authorization: Bearer <that key>`.
    pub fn may_read_metrics(&self, headers: &HeaderMap) -> bool {
        self.metrics.is_none_or(|digest| presents(headers, &digest))
    }

    /// Whether the request presents the admin key
    /// (`Authorization: Bearer <key>`); never without `admin_key_env`.
    pub fn is_admin(&self, headers: &HeaderMap) -> bool {
        self.admin.is_some_and(|digest| presents(headers, &digest))
    }
}

/// Whether the request's bearer token is the key whose digest is `digest`.
fn presents(headers: &HeaderMap, digest: &KeyDigest) -> bool {
    bearer(headers).is_some_and(|key| KeyDigest::of(key).same_as(digest))
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
/// The password of `Authorization: Basic <base64(user:password)>`.
fn basic_password(headers: &HeaderMap) -> Option<Vec<u8>> {
    use base64::Engine as _;

    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.get(6..)?.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    decoded.get(colon.checked_add(1)?..).map(<[u8]>::to_vec)
}

fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value.get(7..)?.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// The 401 a request without a known key gets.
pub fn unauthorized(operation: Operation) -> Response<ResponseBody> {
    let how = if operation == Operation::Messages {
        "`x-api-key: <key>` or `Authorization: Bearer <key>`"
    } else {
        "`Authorization: Bearer <key>`"
    };
    let mut response = OpenAiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        format!("missing or unknown API key: send one of the gateway's keys as {how}"),
    )
    .with_code("invalid_api_key")
    .to_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The answer refusing a request for `route`, or `None` when it may go on:
/// always without a [`Caller`] in `extensions` (no `[auth]`); else a 403
/// when the caller's key may not use the route, and a 429 when it has
/// spent its rate (a refused route spends none of it).
pub fn refusal(extensions: &http::Extensions, route: &RouteName) -> Option<Response<ResponseBody>> {
    let caller = extensions.get::<Caller>()?;
    if !caller.may_use(route.as_str()) {
        return Some(
            OpenAiError::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                format!(
                    "the key `{}` may not use the model `{route}`",
                    caller.name()
                ),
            )
            .with_code("route_not_allowed")
            .to_response(),
        );
    }
    let (rpm, wait) = caller.take().err()?;
    Some(
        OpenAiError::rate_limited(
            format!(
                "the key `{}` is over its limit of {rpm} requests a minute",
                caller.name()
            ),
            Some(whole_seconds(wait)),
        )
        .to_response(),
    )
}

/// `wait` rounded up to whole seconds, at least one.
fn whole_seconds(wait: Duration) -> Duration {
    let seconds = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    Duration::from_secs(seconds.max(1))
}

/// Admits requests by their caller key, with the keys of the configuration
/// being served (see the module docs); a pass-through while it has no
/// `[auth]`.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    live: Live,
}

impl AuthLayer {
    /// Admits with the keys of the generation `live` serves.
    pub const fn new(live: Live) -> Self {
        Self { live }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            live: self.live.clone(),
        }
    }
}

/// [`AuthLayer`]'s service.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    live: Live,
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = AuthFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if self.live.peek().auth.is_none() {
            return AuthFuture::Admitted {
                future: self.inner.call(request),
                name: None,
            };
        }
        let generation = self.live.current();
        let Some(auth) = &generation.auth else {
            // Swapped for a generation without keys just now.
            return AuthFuture::Admitted {
                future: self.inner.call(request),
                name: None,
            };
        };
        let operation = Operation::of(request.extensions());
        let caller = auth
            .identify(request.headers(), operation == Operation::Messages)
            .cloned();
        let Some(caller) = caller else {
            return AuthFuture::Refused {
                response: Some(unauthorized(operation)),
            };
        };
        understudy_observe::record_key(caller.name());
        let name = caller.name.clone();
        request.extensions_mut().insert(caller);
        // The keys that admitted the request and the routes it is served
        // by come from one configuration, whatever a reload does meanwhile.
        request.extensions_mut().insert(generation);
        AuthFuture::Admitted {
            future: self.inner.call(request),
            name: Some(name),
        }
    }
}

pin_project! {
    /// The response future of [`AuthService`].
    #[project = AuthFutureProj]
    #[allow(missing_docs)]
    pub enum AuthFuture<F> {
        /// Refused before the stack saw the request.
        Refused { response: Option<Response<ResponseBody>> },
        /// Passed on; the answer gets the caller's key name.
        Admitted {
            #[pin]
            future: F,
            name: Option<CallerName>,
        },
    }
}

impl<F> Future for AuthFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody>, Infallible>>,
{
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AuthFutureProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| unauthorized(Operation::default())))),
            AuthFutureProj::Admitted { future, name } => {
                let Ok(mut response) = ready!(future.poll(cx));
                if let Some(name) = name.take() {
                    response.extensions_mut().insert(name);
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}

impl<F> fmt::Debug for AuthFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { .. } => f.write_str("AuthFuture::Refused"),
            Self::Admitted { name, .. } => f
                .debug_struct("AuthFuture::Admitted")
                .field("name", name)
                .finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn table(names: &[&str]) -> KeyTable {
        KeyTable::new(names.iter().map(|name| {
            (
                KeyDigest::of(format!("sk-{name}").as_bytes()),
                Caller::new(name, &["*".to_owned()], None),
            )
        }))
    }

    #[test]
    fn every_key_is_compared_over_its_whole_digest_whatever_matches() {
        let names = ["first", "second", "third"];
        let table = table(&names);
        let configured: Vec<[u8; 32]> = names
            .iter()
            .map(|name| KeyDigest::of(format!("sk-{name}").as_bytes()).to_bytes())
            .collect();
        for (presented, expected) in [
            (&b"sk-first"[..], Some("first")),
            (b"sk-third", Some("third")),
            (b"sk-nobody", None),
        ] {
            let compared = RefCell::new(Vec::new());
            let found = table.find_with(&KeyDigest::of(presented), |known, presented| {
                compared
                    .borrow_mut()
                    .push((known.to_bytes(), presented.to_bytes()));
                known.ct_eq(presented)
            });
            assert_eq!(found.map(Caller::name), expected);
            // Every configured digest, in order, a match first or not, each
            // against the whole digest of the presented key.
            let compared = compared.into_inner();
            let known: Vec<[u8; 32]> = compared.iter().map(|(known, _)| *known).collect();
            assert_eq!(known, configured);
            let digest = KeyDigest::of(presented).to_bytes();
            assert!(compared.iter().all(|(_, presented)| *presented == digest));
        }
    }

    #[test]
    fn a_later_match_is_selected_without_stopping_at_the_first() {
        let table = table(&["a", "b", "c"]);
        let mut calls = 0;
        let found = table.find_with(&KeyDigest::of(b"sk-a"), |_, _| {
            calls += 1;
            Choice::from(u8::from(calls >= 2))
        });
        assert_eq!(calls, 3);
        assert_eq!(found.map(Caller::name), Some("c"));
        assert!(table.identify(b"sk-b").is_some());
        assert!(table.identify(b"").is_none());
        assert!(KeyTable::default().identify(b"sk-a").is_none());
    }

    #[test]
    fn digests_parse_from_hex_in_either_case_and_show_nothing() {
        let digest = KeyDigest::of(b"hello");
        let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert!(KeyDigest::from_hex(hex).unwrap().same_as(&digest));
        assert!(
            KeyDigest::from_hex(&hex.to_ascii_uppercase())
                .unwrap()
                .same_as(&digest)
        );
        assert!(KeyDigest::from_hex(&hex[1..]).is_none());
        assert!(KeyDigest::from_hex(&format!("{}g", &hex[1..])).is_none());
        assert_eq!(format!("{digest:?}"), "KeyDigest(…)");
    }

    #[test]
    fn bearer_tokens_are_read_in_any_case_of_the_scheme() {
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            headers
        };
        assert_eq!(bearer(&headers("Bearer sk-1")), Some(&b"sk-1"[..]));
        assert_eq!(bearer(&headers("bearer  sk-1 ")), Some(&b"sk-1"[..]));
        assert_eq!(bearer(&headers("Basic c2stMQ==")), None);
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&headers("Bear")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn routes_match_by_name_by_provider_or_all() {
        let caller = Caller::new(
            "k",
            &[
                "chat".to_owned(),
                "openai/*".to_owned(),
                "azure/gpt-4o".to_owned(),
            ],
            None,
        );
        assert!(caller.may_use("chat"));
        assert!(caller.may_use("openai/*"));
        assert!(caller.may_use("openai/gpt-4o"));
        assert!(caller.may_use("azure/gpt-4o"));
        assert!(!caller.may_use("azure/*"));
        assert!(!caller.may_use("openaix/gpt-4o"));
        assert!(!caller.may_use("embed"));
        assert!(Caller::new("all", &["*".to_owned()], None).may_use("anything"));
    }

    #[test]
    fn waits_are_whole_seconds_of_at_least_one() {
        assert_eq!(whole_seconds(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            whole_seconds(Duration::from_millis(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            whole_seconds(Duration::from_millis(29_001)),
            Duration::from_secs(30)
        );
        assert_eq!(
            whole_seconds(Duration::from_secs(30)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn a_key_over_its_rate_is_refused_but_a_forbidden_route_spends_none() {
        let mut extensions = http::Extensions::new();
        let caller = Caller::new("k", &["chat".to_owned()], NonZeroU32::new(2));
        extensions.insert(caller);
        let chat = RouteName::new("chat");
        let other = RouteName::new("other");
        for _ in 0..3 {
            assert_eq!(
                refusal(&extensions, &other).unwrap().status(),
                StatusCode::FORBIDDEN
            );
        }
        assert!(refusal(&extensions, &chat).is_none());
        assert!(refusal(&extensions, &chat).is_none());
        let refused = refusal(&extensions, &chat).unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=30).contains(&retry_after), "{retry_after}");
        assert!(refusal(&http::Extensions::new(), &other).is_none());
    }
}
