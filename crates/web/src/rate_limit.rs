//! The general rate limits of every route: per client IP before authentication, per user (or API
//! key) after it. Each is a GCRA policy (`bulwark_domain::rate_limit`); the stricter limits of the
//! sensitive flows (sign-in, registration, resets) are the services' own.
//!
//! - [`per_ip`] runs before the access middleware, so floods of bad tokens, 401s and 404s are
//!   limited too, and no work is done for them. The key is the client IP of
//!   [`crate::identity::client_ip`] — a client cannot choose it with a header — with IPv6
//!   addresses taken by their /64, the block one customer gets.
//! - [`per_principal`] runs after it, keyed by the user (sessions) or the API key, so one account
//!   cannot escape its limit from many addresses.
//!
//! - The **daily request quota** of the caller's plan (`free` or `pro`) is counted in
//!   [`per_principal`] too, once per request, per *user* — an API key's requests count toward its
//!   owner's day — and the sockets count each message a client sends through
//!   [`count_daily`]: one count across REST, GraphQL and WebSocket. It is a calendar count that
//!   renews at midnight UTC (not a trickle like GCRA); over it, 429 problem+json with the type
//!   `quota-exceeded` and `Retry-After` until midnight. The account's own security
//!   (`/api/v1/auth/*`: logout, sessions, MFA, API keys; the password change) is never counted:
//!   a user who has used up the day can still lock a thief out.
//!
//! Neither key holds the path, so `/login/`, `//login`, `/LOGIN` or `;x` variants never reach a
//! fresh bucket. Every limited response carries the IETF draft headers — `RateLimit-Policy:
//! "ip";q=600;w=60` and `RateLimit: "ip";r=599;t=1`, one item per policy that applied — and a
//! refusal is 429 problem+json with `Retry-After`, rounded up so that a client that waits exactly
//! that long is let in. Health probes are not limited (orchestrators poll them).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use async_trait::async_trait;
use bulwark_domain::context::{Actor, Credential};
use bulwark_domain::error::Unexpected;
use bulwark_domain::quota::PlanLimits;
use bulwark_domain::rate_limit::{
    Decision, RateLimiter, RatePolicy, calendar_window, fixed_window, gcra,
};
use bulwark_domain::user::Plan;

use crate::ProblemError;
use crate::identity::{daily_quota_exceeded, rate_limited};

/// `RateLimit-Policy`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The general limits, registered by the app as `web::Data<RateLimits>`.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Every request, per client IP.
    pub ip: RatePolicy,
    /// Authenticated requests, per user or API key.
    pub principal: RatePolicy,
    /// Stricter per-IP policies of some routes, by route template (`/api/v1/auth/login`): the
    /// sensitive flows and the socket upgrades. Each route has its own bucket per client IP, on top
    /// of the general one; the template (not the raw path) is the key, so no spelling of the
    /// path reaches a fresh bucket.
    pub routes: Vec<(&'static str, RatePolicy)>,
    /// The daily request quotas of the plans.
    pub quotas: DailyQuotas,
    /// Where the decisions are taken.
    pub limiter: Arc<dyn RateLimiter>,
}

/// The daily request quota of each plan: a policy named `day` with a one-day window (so the
/// headers read `"day";q=10000;w=86400`).
#[derive(Debug, Clone)]
pub struct DailyQuotas {
    free: RatePolicy,
    pro: RatePolicy,
}

impl DailyQuotas {
    /// The name of the quota policy in the headers and the store.
    pub const NAME: &'static str = "day";

    /// From the plans' limits.
    #[must_use]
    pub fn new(limits: &PlanLimits) -> Self {
        let day = std::time::Duration::from_secs(86_400);
        Self {
            free: RatePolicy::new(Self::NAME, limits.free.requests_per_day, day),
            pro: RatePolicy::new(Self::NAME, limits.pro.requests_per_day, day),
        }
    }

    /// The policy of a plan.
    #[must_use]
    pub const fn of(&self, plan: Plan) -> &RatePolicy {
        match plan {
            Plan::Free => &self.free,
            Plan::Pro => &self.pro,
        }
    }
}

/// The routes limited more strictly per client IP, and which of the two policies applies: the
/// sign-in and recovery flows (`auth`: each is a password guess, an account probe or a mail sent)
/// and the socket upgrades (`upgrade`: each holds a task and a connection for minutes).
pub const STRICT_ROUTES: [(&str, StrictClass); 9] = [
    ("/api/v1/auth/login", StrictClass::Auth),
    ("/api/v1/auth/register", StrictClass::Auth),
    ("/api/v1/auth/password/forgot", StrictClass::Auth),
    ("/api/v1/auth/password/reset", StrictClass::Auth),
    ("/api/v1/auth/mfa/verify", StrictClass::Auth),
    ("/api/v1/auth/refresh", StrictClass::Auth),
    ("/api/v1/auth/oauth/{provider}/authorize", StrictClass::Auth),
    ("/api/v1/ws", StrictClass::Upgrade),
    ("/graphql/ws", StrictClass::Upgrade),
];

/// Which strict policy a route of [`STRICT_ROUTES`] has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictClass {
    /// Sign-in and recovery flows.
    Auth,
    /// WebSocket upgrades.
    Upgrade,
}

impl RateLimits {
    /// The limits with [`STRICT_ROUTES`] given these two policies.
    #[must_use]
    pub fn new(
        ip: RatePolicy,
        principal: RatePolicy,
        auth: &RatePolicy,
        upgrade: &RatePolicy,
        quotas: DailyQuotas,
        limiter: Arc<dyn RateLimiter>,
    ) -> Self {
        let routes = STRICT_ROUTES
            .iter()
            .map(|(route, class)| {
                let policy = match class {
                    StrictClass::Auth => auth.clone(),
                    StrictClass::Upgrade => upgrade.clone(),
                };
                (*route, policy)
            })
            .collect();
        Self {
            ip,
            principal,
            routes,
            quotas,
            limiter,
        }
    }

    fn strict(&self, pattern: &str) -> Option<&RatePolicy> {
        self.routes
            .iter()
            .find(|(route, _)| *route == pattern)
            .map(|(_, policy)| policy)
    }
}

/// The key of a client address: IPv4 as is, IPv6 by its /64.
#[must_use]
pub fn ip_key(ip: IpAddr) -> String {
    match crate::client_ip::canonical(ip) {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The key of an authenticated caller: its user, or its API key (a key's limit is its own, so a
/// leaked key cannot starve its owner's sessions).
#[must_use]
pub fn principal_key(actor: &Actor) -> String {
    match actor.credential {
        Credential::Session => format!("user:{}", actor.user_id),
        Credential::ApiKey { .. } => format!("key:{}", actor.session_id),
    }
}

fn exempt(req: &ServiceRequest) -> bool {
    req.path().starts_with("/health/")
}

/// Routes the daily quota never counts (by template): the account's own security.
fn quota_exempt(pattern: Option<&str>) -> bool {
    pattern.is_some_and(|p| p.starts_with("/api/v1/auth/") || p == "/api/v1/users/me/password")
}

/// The key of a user's daily count (whatever credential the request carried).
fn quota_key(actor: &Actor) -> String {
    format!("user:{}", actor.user_id)
}

/// Counts `cost` requests toward the actor's daily quota: `Ok` with the decision (None when the
/// store could not answer: let through and logged, as for the limits), `Err` with the refusal.
///
/// # Errors
/// The decision, when the day's quota is used up.
pub async fn count_daily(
    limits: &RateLimits,
    actor: &Actor,
    cost: u32,
) -> Result<Option<Decision>, Decision> {
    let policy = limits.quotas.of(actor.plan);
    match limits.limiter.count(policy, &quota_key(actor), cost).await {
        Ok(decision) if decision.allowed => Ok(Some(decision)),
        Ok(decision) => {
            tracing::info!(plan = actor.plan.as_str(), "daily request quota used up");
            Err(decision)
        }
        Err(error) => {
            tracing::warn!(error = ?error, "quota store unavailable; request let through");
            Ok(None)
        }
    }
}

/// The 429 `quota-exceeded` of a refused daily count, with its headers.
#[must_use]
pub fn quota_refusal(policy: &RatePolicy, decision: &Decision) -> ProblemError {
    let retry = std::time::Duration::from_secs(decision.retry_after_secs());
    let mut refusal = daily_quota_exceeded(retry);
    if let (Some(p), Some(r)) = (
        header_value(&policy.header_item()),
        header_value(&decision.header_item(policy)),
    ) {
        refusal = refusal
            .with_header(RATELIMIT_POLICY, p)
            .with_header(RATELIMIT, r);
    }
    refusal
}

/// Asks the limiter; a limiter that cannot answer lets the request through (and logs it): the
/// general limits protect capacity, and refusing everyone because the store is down would turn
/// an outage of the store into an outage of the API.
async fn decide(
    limits: &RateLimits,
    question: Question,
    policy: &RatePolicy,
    key: &str,
    cost: u32,
) -> Option<Decision> {
    match question.ask(&*limits.limiter, policy, key, cost).await {
        Ok(decision) => Some(decision),
        Err(error) => {
            tracing::warn!(error = ?error, policy = policy.name, "rate limiter unavailable; request let through");
            None
        }
    }
}

fn header_value(item: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(item).ok()
}

/// Adds the headers of one policy's decision to a response.
fn annotate<B>(res: &mut ServiceResponse<B>, policy: &RatePolicy, decision: &Decision) {
    let headers = res.headers_mut();
    if let Some(value) = header_value(&policy.header_item()) {
        headers.append(RATELIMIT_POLICY, value);
    }
    if let Some(value) = header_value(&decision.header_item(policy)) {
        headers.append(RATELIMIT, value);
    }
}

/// Tells the abuse watch of a 429 (a storm of them, from one address or overall, is one of its
/// signals).
async fn tell_watch(req: &actix_web::HttpRequest) {
    if let Some(watch) = req.app_data::<web::Data<bulwark_domain::abuse::AbuseWatch>>() {
        watch.rate_limited(crate::identity::client_ip(req)).await;
    }
}

/// Counts a refusal in the metrics (`bulwark_rate_limited_total{policy}`).
fn count_refusal(req: &actix_web::HttpRequest, policy: &RatePolicy) {
    if let Some(metrics) = req.app_data::<web::Data<crate::metrics::Metrics>>() {
        metrics.rate_limited(policy.name);
    }
}

/// The 429 of a refusal under `policy`: `rate-limited`, or `quota-exceeded` for the daily quota.
fn refuse<B>(
    req: ServiceRequest,
    question: Question,
    policy: &RatePolicy,
    decision: &Decision,
) -> ServiceResponse<EitherBody<B>> {
    count_refusal(req.request(), policy);
    let problem = match question {
        Question::Rate => {
            tracing::info!(policy = policy.name, "rate limited");
            let retry = std::time::Duration::from_secs(decision.retry_after_secs());
            rate_limited(retry)
        }
        Question::Quota => quota_refusal(policy, decision),
    };
    let mut res = req.error_response(problem).map_into_right_body();
    if matches!(question, Question::Rate) {
        annotate(&mut res, policy, decision);
    }
    res
}

/// One decision a request needs: which question, under which policy, for which key.
type Check = (Question, RatePolicy, String);

async fn limited<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
    pick: impl FnOnce(&ServiceRequest, &RateLimits) -> Vec<Check>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    // A reference-counted handle, not a copy of the policies, per request.
    let Some(limits) = req.app_data::<web::Data<RateLimits>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let mut allowed = Vec::new();
    for (question, policy, key) in pick(&req, &limits) {
        let Some(decision) = decide(&limits, question, &policy, &key, 1).await else {
            continue;
        };
        if !decision.allowed {
            tell_watch(req.request()).await;
            return Ok(refuse(req, question, &policy, &decision));
        }
        allowed.push((policy, decision));
    }
    let mut res = next.call(req).await?.map_into_left_body();
    for (policy, decision) in &allowed {
        annotate(&mut res, policy, decision);
    }
    Ok(res)
}

/// Charges a request more than the 1 the middleware took — a GraphQL operation its cost — under
/// both general policies (the client IP, and the caller if authenticated). The refusal carries
/// `Retry-After` and the headers of the policy that refused.
///
/// # Errors
/// 429 problem+json when either allowance is used up.
pub async fn charge(req: &actix_web::HttpRequest, extra: u32) -> Result<(), Box<ProblemError>> {
    if extra == 0 {
        return Ok(());
    }
    let Some(limits) = req.app_data::<web::Data<RateLimits>>() else {
        return Ok(());
    };
    let mut charges = Vec::with_capacity(2);
    if let Some(ip) = crate::identity::client_ip(req) {
        charges.push((limits.ip.clone(), ip_key(ip)));
    }
    if let Some(actor) = req.extensions().get::<Actor>().copied() {
        charges.push((limits.principal.clone(), principal_key(&actor)));
    }
    for (policy, key) in charges {
        let Some(decision) = decide(limits, Question::Rate, &policy, &key, extra).await else {
            continue;
        };
        if !decision.allowed {
            tracing::info!(policy = policy.name, cost = extra, "rate limited by cost");
            count_refusal(req, &policy);
            tell_watch(req).await;
            let retry = std::time::Duration::from_secs(decision.retry_after_secs());
            let mut refusal = rate_limited(retry);
            if let (Some(p), Some(r)) = (
                header_value(&policy.header_item()),
                header_value(&decision.header_item(&policy)),
            ) {
                refusal = refusal
                    .with_header(RATELIMIT_POLICY, p)
                    .with_header(RATELIMIT, r);
            }
            return Err(Box::new(refusal));
        }
    }
    Ok(())
}

/// The per-IP limit (before authentication).
///
/// # Errors
/// Only what the inner service returns.
pub async fn per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    limited(req, next, |req, limits| {
        let Some(ip) = crate::identity::client_ip(req.request()).filter(|_| !exempt(req)) else {
            return Vec::new();
        };
        let key = ip_key(ip);
        let mut checks = vec![(Question::Rate, limits.ip.clone(), key.clone())];
        if let Some(pattern) = crate::routing::route_pattern(req.request())
            && let Some(policy) = limits.strict(&pattern)
        {
            let strict = format!("{}:{pattern}:{key}", policy.name);
            checks.push((Question::Rate, policy.clone(), strict));
        }
        checks
    })
    .await
}

/// The per-user / per-key limit and the daily quota (after authentication; anonymous requests
/// pass untouched here).
///
/// # Errors
/// Only what the inner service returns.
pub async fn per_principal(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    limited(req, next, |req, limits| {
        let Some(actor) = req.extensions().get::<Actor>().copied() else {
            return Vec::new();
        };
        let mut checks = vec![(
            Question::Rate,
            limits.principal.clone(),
            principal_key(&actor),
        )];
        if !quota_exempt(crate::routing::route_pattern(req.request()).as_deref()) {
            let quota = limits.quotas.of(actor.plan).clone();
            checks.push((Question::Quota, quota, quota_key(&actor)));
        }
        checks
    })
    .await
}

/// Counts `extra` requests beyond the one the middleware counted toward the caller's daily quota
/// (a GraphQL batch of n operations counts n).
///
/// # Errors
/// 429 `quota-exceeded` when the day's quota is used up.
pub async fn count_extra(
    req: &actix_web::HttpRequest,
    extra: u32,
) -> Result<(), Box<ProblemError>> {
    let (Some(limits), Some(actor)) = (
        req.app_data::<web::Data<RateLimits>>(),
        req.extensions().get::<Actor>().copied(),
    ) else {
        return Ok(());
    };
    if extra == 0 || quota_exempt(crate::routing::route_pattern(req).as_deref()) {
        return Ok(());
    }
    match count_daily(limits, &actor, extra).await {
        Ok(_) => Ok(()),
        Err(decision) => {
            count_refusal(req, limits.quotas.of(actor.plan));
            tell_watch(req).await;
            Err(Box::new(quota_refusal(
                limits.quotas.of(actor.plan),
                &decision,
            )))
        }
    }
}

/// The in-process limiter: one GCRA state per key, in memory. Exact for one instance; with
/// several, each counts alone (use the Redis limiter to share the count).
///
/// Memory is bounded: a key whose allowance is whole again holds no information and is dropped
/// by a sweep that runs whenever the map has doubled since the last one. At `max_keys`, a sweep
/// runs at most once a second (so a flood cannot make every request pay for one); if the map is
/// still full, a request under a key not yet remembered is refused rather than remembered — a
/// flood of fresh keys cannot grow memory without bound.
#[derive(Debug)]
pub struct LocalRateLimiter {
    started: Instant,
    max_keys: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tats: HashMap<String, u64>,
    /// The daily quotas' counts: (calendar window, used in it).
    counts: HashMap<String, (u64, u64)>,
    sweep_at: usize,
    last_sweep: Option<u64>,
}

impl LocalRateLimiter {
    /// A limiter remembering at most `max_keys` keys at once.
    #[must_use]
    pub fn new(max_keys: usize) -> Self {
        Self {
            started: Instant::now(),
            max_keys: max_keys.max(1),
            state: Mutex::new(State {
                tats: HashMap::new(),
                counts: HashMap::new(),
                sweep_at: 1024,
                last_sweep: None,
            }),
        }
    }

    fn now_micros(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Keys currently remembered (for tests and metrics).
    #[must_use]
    pub fn len(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.tats.len() + state.counts.len()
    }

    /// Whether no key is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The decision at an explicit instant (microseconds since the limiter started).
    pub fn check_at(&self, policy: &RatePolicy, key: &str, cost: u32, now: u64) -> Decision {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (decision, new_tat) = gcra(policy, state.tats.get(key).copied(), now, cost);
        if let Some(tat) = new_tat {
            if !state.tats.contains_key(key) {
                let full = state.tats.len() >= self.max_keys;
                let due = state
                    .last_sweep
                    .is_none_or(|at| now.saturating_sub(at) >= 1_000_000);
                if (state.tats.len() >= state.sweep_at && !full) || (full && due) {
                    state.tats.retain(|_, tat| *tat > now);
                    state.sweep_at = (state.tats.len() * 2).max(1024);
                    state.last_sweep = Some(now);
                }
                if state.tats.len() >= self.max_keys {
                    tracing::warn!(keys = self.max_keys, "rate limiter full; request refused");
                    return Decision {
                        allowed: false,
                        remaining: 0,
                        reset: policy.window,
                        retry_after: std::time::Duration::from_secs(1),
                    };
                }
            }
            state.tats.insert(key.to_owned(), tat);
        }
        decision
    }

    /// The fixed-window count at an explicit instant (microseconds since the Unix epoch: the
    /// calendar decides when a window turns). At `max_keys` remembered counts, those of windows
    /// that have ended are dropped; if none has, a key not yet remembered is refused, as above.
    pub fn count_at(
        &self,
        policy: &RatePolicy,
        key: &str,
        cost: u32,
        unix_micros: u64,
    ) -> Decision {
        let (window, left) = calendar_window(policy, unix_micros);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let used = state
            .counts
            .get(key)
            .filter(|(at, _)| *at == window)
            .map_or(0, |(_, used)| *used);
        let (decision, spent) = fixed_window(policy, used, left, cost);
        if let Some(spent) = spent {
            if !state.counts.contains_key(key) && state.counts.len() >= self.max_keys {
                state.counts.retain(|_, (at, _)| *at == window);
                if state.counts.len() >= self.max_keys {
                    tracing::warn!(keys = self.max_keys, "quota counter full; request refused");
                    return Decision {
                        allowed: false,
                        remaining: 0,
                        reset: std::time::Duration::from_micros(left),
                        retry_after: std::time::Duration::from_secs(1),
                    };
                }
            }
            state.counts.insert(key.to_owned(), (window, spent));
        }
        decision
    }
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(
        &self,
        policy: &RatePolicy,
        key: &str,
        cost: u32,
    ) -> Result<Decision, Unexpected> {
        Ok(self.check_at(policy, key, cost, self.now_micros()))
    }

    async fn count(
        &self,
        policy: &RatePolicy,
        key: &str,
        cost: u32,
    ) -> Result<Decision, Unexpected> {
        Ok(self.count_at(policy, key, cost, unix_micros()))
    }
}

/// The two questions a limiter answers.
#[derive(Debug, Clone, Copy)]
enum Question {
    /// A GCRA rate limit ([`RateLimiter::check`]).
    Rate,
    /// A calendar quota ([`RateLimiter::count`]).
    Quota,
}

impl Question {
    async fn ask(
        self,
        limiter: &dyn RateLimiter,
        policy: &RatePolicy,
        key: &str,
        cost: u32,
    ) -> Result<Decision, Unexpected> {
        match self {
            Self::Rate => limiter.check(policy, key, cost).await,
            Self::Quota => limiter.count(policy, key, cost).await,
        }
    }
}

/// A shared limiter (Redis) with the in-process one behind it: when the shared store cannot
/// answer, decisions are taken locally — requests never get a 5xx because of the limiter, and the
/// limits (the sign-in ones included) stay enforced, per instance, until it is back. The switch
/// and the recovery are logged once each, and counted ([`FallbackLimiter::fallbacks`]).
///
/// After a failure the shared store is asked again at most once per `retry_every`, so an outage
/// does not add the store's timeout to every request.
#[derive(Debug)]
pub struct FallbackLimiter {
    shared: Arc<dyn RateLimiter>,
    local: LocalRateLimiter,
    retry_every: std::time::Duration,
    down_since: Mutex<Option<Instant>>,
    fallbacks: std::sync::atomic::AtomicU64,
}

impl FallbackLimiter {
    /// `shared` first; `local` when it fails, retrying `shared` every `retry_every`.
    #[must_use]
    pub fn new(
        shared: Arc<dyn RateLimiter>,
        local: LocalRateLimiter,
        retry_every: std::time::Duration,
    ) -> Self {
        Self {
            shared,
            local,
            retry_every,
            down_since: Mutex::new(None),
            fallbacks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Decisions taken locally because the shared store could not answer.
    #[must_use]
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn shared_due(&self) -> bool {
        let down = self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        down.is_none_or(|since| since.elapsed() >= self.retry_every)
    }

    async fn locally(
        &self,
        question: Question,
        policy: &RatePolicy,
        key: &str,
        cost: u32,
    ) -> Result<Decision, Unexpected> {
        self.fallbacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        question.ask(&self.local, policy, key, cost).await
    }

    async fn decide(
        &self,
        question: Question,
        policy: &RatePolicy,
        key: &str,
        cost: u32,
    ) -> Result<Decision, Unexpected> {
        if !self.shared_due() {
            return self.locally(question, policy, key, cost).await;
        }
        match question.ask(&*self.shared, policy, key, cost).await {
            Ok(decision) => {
                let was_down = self
                    .down_since
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if was_down.is_some() {
                    tracing::info!("shared rate limiter is back; decisions are shared again");
                }
                Ok(decision)
            }
            Err(error) => {
                let first = {
                    let mut down = self
                        .down_since
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    let first = down.is_none();
                    *down = Some(Instant::now());
                    first
                };
                if first {
                    tracing::warn!(error = ?error, "shared rate limiter unavailable; limiting in process until it is back");
                }
                self.locally(question, policy, key, cost).await
            }
        }
    }
}

#[async_trait]
impl RateLimiter for FallbackLimiter {
    async fn check(
        &self,
        policy: &RatePolicy,
        key: &str,
        cost: u32,
    ) -> Result<Decision, Unexpected> {
        self.decide(Question::Rate, policy, key, cost).await
    }

    async fn count(
        &self,
        policy: &RatePolicy,
        key: &str,
        cost: u32,
    ) -> Result<Decision, Unexpected> {
        self.decide(Question::Quota, policy, key, cost).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A shared store that fails while `down` is set, and counts the calls it gets.
    #[derive(Debug, Default)]
    struct Flaky {
        down: std::sync::atomic::AtomicBool,
        calls: std::sync::atomic::AtomicUsize,
        inner: Mutex<Option<LocalRateLimiter>>,
    }

    impl Flaky {
        /// Counts the call; fails while down, else answers with its own local limiter.
        fn answer(
            &self,
            decide: impl FnOnce(&LocalRateLimiter) -> Decision,
        ) -> Result<Decision, Unexpected> {
            use std::sync::atomic::Ordering;
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(Unexpected::new("flaky", std::io::Error::other("down")));
            }
            let mut inner = self.inner.lock().unwrap();
            Ok(decide(
                inner.get_or_insert_with(|| LocalRateLimiter::new(1000)),
            ))
        }
    }

    #[async_trait]
    impl RateLimiter for Flaky {
        async fn check(
            &self,
            policy: &RatePolicy,
            key: &str,
            cost: u32,
        ) -> Result<Decision, Unexpected> {
            self.answer(|limiter| limiter.check_at(policy, key, cost, 0))
        }

        async fn count(
            &self,
            policy: &RatePolicy,
            key: &str,
            cost: u32,
        ) -> Result<Decision, Unexpected> {
            self.answer(|limiter| limiter.count_at(policy, key, cost, 0))
        }
    }

    #[tokio::test]
    async fn quotas_fall_back_like_limits_and_the_shared_count_decides_once_back() {
        use std::sync::atomic::Ordering;
        let shared = Arc::new(Flaky::default());
        let limiter =
            FallbackLimiter::new(shared.clone(), LocalRateLimiter::new(1000), Duration::ZERO);
        let day = RatePolicy::new("day", 2, Duration::from_secs(86_400));
        assert!(limiter.count(&day, "u", 1).await.unwrap().allowed);
        shared.down.store(true, Ordering::SeqCst);
        assert!(limiter.count(&day, "u", 1).await.unwrap().allowed);
        assert!(limiter.count(&day, "u", 1).await.unwrap().allowed);
        assert!(
            !limiter.count(&day, "u", 1).await.unwrap().allowed,
            "the local count holds"
        );
        shared.down.store(false, Ordering::SeqCst);
        assert!(limiter.count(&day, "u", 1).await.unwrap().allowed);
        assert!(!limiter.count(&day, "u", 1).await.unwrap().allowed);
        assert_eq!(limiter.fallbacks(), 3);
    }

    #[test]
    fn the_local_quota_count_turns_with_the_calendar_window_and_stays_bounded() {
        const DAY: u64 = 86_400 * 1_000_000;
        let limiter = LocalRateLimiter::new(2);
        let day = RatePolicy::new("day", 2, Duration::from_secs(86_400));
        let noon = 10 * DAY + DAY / 2;
        assert!(limiter.count_at(&day, "a", 1, noon).allowed);
        let last = limiter.count_at(&day, "a", 1, noon + 1);
        assert!(last.allowed);
        assert_eq!(last.remaining, 0);
        let refused = limiter.count_at(&day, "a", 1, noon + 2);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs(), 43_200, "until midnight UTC");
        assert!(
            limiter.count_at(&day, "a", 1, 11 * DAY).allowed,
            "a new day"
        );
        // Full: a third key is refused while both counts are of today, admitted once they are not.
        assert!(limiter.count_at(&day, "b", 1, 11 * DAY).allowed);
        assert!(!limiter.count_at(&day, "c", 1, 11 * DAY).allowed);
        assert!(limiter.count_at(&day, "c", 1, 12 * DAY).allowed);
        assert!(limiter.len() <= 2);
    }

    #[tokio::test]
    async fn when_the_shared_store_fails_the_limits_hold_locally_and_it_is_used_again_once_back() {
        use std::sync::atomic::Ordering;
        let shared = Arc::new(Flaky::default());
        let limiter =
            FallbackLimiter::new(shared.clone(), LocalRateLimiter::new(1000), Duration::ZERO);
        let policy = RatePolicy::new("t", 2, Duration::from_secs(60));
        assert!(limiter.check(&policy, "k", 1).await.unwrap().allowed);
        shared.down.store(true, Ordering::SeqCst);
        // Locally: a fresh bucket, but a bucket all the same — the third is refused.
        assert!(limiter.check(&policy, "k", 1).await.unwrap().allowed);
        assert!(limiter.check(&policy, "k", 1).await.unwrap().allowed);
        assert!(!limiter.check(&policy, "k", 1).await.unwrap().allowed);
        assert_eq!(limiter.fallbacks(), 3);
        shared.down.store(false, Ordering::SeqCst);
        // Back: the shared store's own count (one used) decides again.
        assert!(limiter.check(&policy, "k", 1).await.unwrap().allowed);
        assert!(!limiter.check(&policy, "k", 1).await.unwrap().allowed);
        assert_eq!(limiter.fallbacks(), 3);
    }

    #[tokio::test]
    async fn an_outage_is_not_retried_on_every_request() {
        use std::sync::atomic::Ordering;
        let shared = Arc::new(Flaky::default());
        shared.down.store(true, Ordering::SeqCst);
        let limiter = FallbackLimiter::new(
            shared.clone(),
            LocalRateLimiter::new(1000),
            Duration::from_secs(3600),
        );
        let policy = RatePolicy::new("t", 100, Duration::from_secs(60));
        for _ in 0..10 {
            assert!(limiter.check(&policy, "k", 1).await.unwrap().allowed);
        }
        assert_eq!(
            shared.calls.load(Ordering::SeqCst),
            1,
            "asked once, then not for an hour"
        );
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        assert_eq!(
            ip_key("::ffff:203.0.113.7".parse().unwrap()),
            "ip:203.0.113.7"
        );
    }

    #[test]
    fn the_local_limiter_counts_per_key() {
        let limiter = LocalRateLimiter::new(100);
        let policy = RatePolicy::new("t", 2, Duration::from_secs(60));
        assert!(limiter.check_at(&policy, "a", 1, 0).allowed);
        assert!(limiter.check_at(&policy, "a", 1, 0).allowed);
        assert!(!limiter.check_at(&policy, "a", 1, 0).allowed);
        assert!(
            limiter.check_at(&policy, "b", 1, 0).allowed,
            "another key, another bucket"
        );
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_fresh_keys() {
        let limiter = LocalRateLimiter::new(2000);
        let policy = RatePolicy::new("t", 10, Duration::from_secs(1));
        let mut refused = 0;
        for i in 0..10_000 {
            if !limiter.check_at(&policy, &format!("k{i}"), 1, 0).allowed {
                refused += 1;
            }
        }
        assert!(limiter.len() <= 2000, "{}", limiter.len());
        assert_eq!(refused, 8000, "past the cap, fresh keys are refused");
        // A second later every bucket is whole again: the sweep frees them all.
        assert!(limiter.check_at(&policy, "fresh", 1, 2_000_000).allowed);
        assert!(limiter.len() <= 2, "{}", limiter.len());
    }
}
