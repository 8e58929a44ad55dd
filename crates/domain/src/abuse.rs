//! Abuse detection: counting the audit trail's warning signs and raising an alert when too many
//! arrive too quickly (OWASP API Top 10 API2/API4, ASVS 16.3 "log security events" and 16.5
//! "alert on them").
//!
//! # What is watched
//!
//! The audit trail already records every failed sign-in, every refused second factor, every reused
//! refresh token and every refused access. One of those on its own is normal: people mistype their
//! passwords. A few hundred in five minutes is an attack: credential stuffing against the whole
//! service, guessing against one account, one address spraying many accounts, a stolen refresh
//! token being replayed, a user walking other people's ids, or a client hammering a rate limit.
//! This module turns those patterns into alerts:
//!
//! | Rule | Counts | Per |
//! |------|--------|-----|
//! | [`Rule::LoginFailuresGlobal`] | `auth.login_failed`, `auth.mfa_failed` | the whole service |
//! | [`Rule::LoginFailuresPerAccount`] | the same | account |
//! | [`Rule::LoginFailuresPerIp`] | the same | client address |
//! | [`Rule::RefreshReuse`] | `auth.refresh_reuse` | user |
//! | [`Rule::AccessDenialsPerUser`] | `document.access_denied`, `authz.denied` | user |
//! | [`Rule::RateLimitedPerIp`] | requests refused with 429 | client address |
//! | [`Rule::RateLimitedGlobal`] | requests refused with 429 | the whole service |
//!
//! # How
//!
//! [`AbuseWatch`] wraps the real [`AuditLog`]. Every event is first written to the trail, exactly
//! as before; only then is it read for the signals above. Refused requests are not audited one by
//! one (a flood would flood the trail), so the rate limiter calls [`AbuseWatch::rate_limited`]
//! instead.
//!
//! The counting itself is done by the [`Detector`]: a sliding window per rule and key (an account,
//! an address, a user, or the whole service). For each key it keeps the last `threshold`
//! timestamps. When an event makes `threshold` events within the window, the rule fires — once:
//! the key is then quiet for one window. So a sustained flood gives exactly one alert per window,
//! a trickle below the threshold never alerts, and events spread out more widely than the window
//! never add up. A threshold of 0 turns a rule off.
//!
//! An alert is two things, and never carries an email address or a token:
//! - a `security.alert` row in the audit trail ([`ALERT_EVENT`], outcome `denied`) with the rule,
//!   the count, the window and the kind of key, the account or user as subject and the address as
//!   origin;
//! - one `WARN` line in the server log, for whatever watches the log.
//!
//! [`AbuseWatch::counts`] exposes monotonically increasing counters for the metrics endpoint.
//!
//! # Per instance, on purpose
//!
//! Detection is in process: each instance alerts on what *it* sees. Behind a load balancer an
//! attack spread over `n` instances reaches each threshold `n` times more slowly, or not at all.
//! That is accepted: the alerts here are immediate and need no shared store, and the fleet-wide
//! view comes from the Prometheus rules in `deploy/prometheus/alerts.yml`, which sum the counters
//! of every instance.
//!
//! # Bounded memory
//!
//! An attacker controls how many distinct addresses and accounts appear. The detector therefore
//! tracks at most `max_keys` keys. When a new key arrives and the table is full, keys that are
//! both stale (no event within the window) and no longer quiet are dropped; if the table is still
//! full, the new key is simply not tracked. The service-wide rules are always tracked (there are
//! at most seven of them), so an attack that fills the table with fresh addresses still raises the
//! global alerts. Each key keeps at most its rule's threshold of timestamps.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use uuid::Uuid;

use crate::audit::{
    AuditDetail, AuditError, AuditInputError, AuditLog, AuditValue, EventType, NewAuditEvent,
    Outcome,
};

/// The audit event type of an alert.
pub const ALERT_EVENT: &str = "security.alert";

/// The event type of a refused function-level call, written by `bulwark-web` (whose
/// `access::DENIED_EVENT` is this constant: one spelling for the writer and the watcher).
pub const AUTHZ_DENIED: &str = "authz.denied";

/// How often, at most, a full table is swept for stale keys. A flood of fresh addresses finds the
/// table full on every event; sweeping each time would cost a pass over the whole table per event,
/// under the lock, exactly when the service is under attack.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A detection rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Failed sign-ins (password or second factor) across the whole service: credential stuffing.
    LoginFailuresGlobal,
    /// Failed sign-ins against one account: guessing its password or second factor.
    LoginFailuresPerAccount,
    /// Failed sign-ins from one client address: one source spraying many accounts.
    LoginFailuresPerIp,
    /// Rotated refresh tokens presented again: a stolen token being replayed.
    RefreshReuse,
    /// Refused accesses by one user: walking other people's ids, probing admin routes.
    AccessDenialsPerUser,
    /// Requests refused by a rate limit, from one client address.
    RateLimitedPerIp,
    /// Requests refused by a rate limit, across the whole service.
    RateLimitedGlobal,
}

impl Rule {
    /// Every rule, in declaration order.
    pub const ALL: [Rule; 7] = [
        Self::LoginFailuresGlobal,
        Self::LoginFailuresPerAccount,
        Self::LoginFailuresPerIp,
        Self::RefreshReuse,
        Self::AccessDenialsPerUser,
        Self::RateLimitedPerIp,
        Self::RateLimitedGlobal,
    ];

    /// Stable public name, used in the audit detail, the log and as a metrics label:
    /// "login_failures_global", "login_failures_per_account", "login_failures_per_ip",
    /// "refresh_reuse", "access_denials_per_user", "rate_limited_per_ip", "rate_limited_global".
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::LoginFailuresGlobal => "login_failures_global",
            Self::LoginFailuresPerAccount => "login_failures_per_account",
            Self::LoginFailuresPerIp => "login_failures_per_ip",
            Self::RefreshReuse => "refresh_reuse",
            Self::AccessDenialsPerUser => "access_denials_per_user",
            Self::RateLimitedPerIp => "rate_limited_per_ip",
            Self::RateLimitedGlobal => "rate_limited_global",
        }
    }

    /// The rule's position in [`Rule::ALL`].
    const fn index(self) -> usize {
        match self {
            Self::LoginFailuresGlobal => 0,
            Self::LoginFailuresPerAccount => 1,
            Self::LoginFailuresPerIp => 2,
            Self::RefreshReuse => 3,
            Self::AccessDenialsPerUser => 4,
            Self::RateLimitedPerIp => 5,
            Self::RateLimitedGlobal => 6,
        }
    }
}

/// Thresholds: how many events within `window` make an alert; 0 turns a rule off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// The sliding window every rule counts over (and the quiet time after an alert). A zero
    /// window never alerts.
    pub window: Duration,
    /// Failed sign-ins across the service.
    pub login_failures_global: u32,
    /// Failed sign-ins against one account.
    pub login_failures_per_account: u32,
    /// Failed sign-ins from one address.
    pub login_failures_per_ip: u32,
    /// Reused refresh tokens of one user.
    pub refresh_reuse: u32,
    /// Refused accesses by one user.
    pub access_denials_per_user: u32,
    /// Rate-limited requests from one address.
    pub rate_limited_per_ip: u32,
    /// Rate-limited requests across the service.
    pub rate_limited_global: u32,
}

impl Thresholds {
    /// The threshold of `rule`.
    #[must_use]
    pub const fn of(&self, rule: Rule) -> u32 {
        match rule {
            Rule::LoginFailuresGlobal => self.login_failures_global,
            Rule::LoginFailuresPerAccount => self.login_failures_per_account,
            Rule::LoginFailuresPerIp => self.login_failures_per_ip,
            Rule::RefreshReuse => self.refresh_reuse,
            Rule::AccessDenialsPerUser => self.access_denials_per_user,
            Rule::RateLimitedPerIp => self.rate_limited_per_ip,
            Rule::RateLimitedGlobal => self.rate_limited_global,
        }
    }
}

impl Default for Thresholds {
    /// Five minutes; 200 failed sign-ins service-wide, 10 per account, 30 per address; any reused
    /// refresh token; 20 refusals per user; 100 rate-limited requests per address, 1000
    /// service-wide.
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            login_failures_global: 200,
            login_failures_per_account: 10,
            login_failures_per_ip: 30,
            refresh_reuse: 1,
            access_denials_per_user: 20,
            rate_limited_per_ip: 100,
            rate_limited_global: 1000,
        }
    }
}

/// Whose events a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The whole service (this instance).
    Global,
    /// One account, by user id (sign-in failures).
    Account(Uuid),
    /// One client address.
    Address(IpAddr),
    /// One signed-in user, by user id.
    User(Uuid),
}

impl Scope {
    /// The kind of key, as written to the alert's detail and log line.
    const fn kind(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Account(_) => "account",
            Self::Address(_) => "address",
            Self::User(_) => "user",
        }
    }
}

/// An alert: `count` events of `rule` for `scope` within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    /// Which rule fired.
    pub rule: Rule,
    /// For whom.
    pub scope: Scope,
    /// How many events were seen (the threshold).
    pub count: u32,
    /// Within how long.
    pub window: Duration,
}

/// One key's recent events.
#[derive(Debug, Default)]
struct Track {
    /// At most `threshold` timestamps, oldest first.
    times: VecDeque<Instant>,
    /// When the key last alerted; it stays quiet for one window after.
    alerted_at: Option<Instant>,
}

impl Track {
    fn quiet_at(&self, now: Instant, window: Duration) -> bool {
        self.alerted_at
            .is_some_and(|at| now.saturating_duration_since(at) < window)
    }

    fn stale_at(&self, now: Instant, window: Duration) -> bool {
        let idle = self
            .times
            .back()
            .is_none_or(|newest| now.saturating_duration_since(*newest) >= window);
        idle && !self.quiet_at(now, window)
    }
}

#[derive(Debug, Default)]
struct Table {
    tracks: HashMap<(Rule, Scope), Track>,
    last_sweep: Option<Instant>,
}

/// The sliding-window counters (pure, clock passed in, no IO).
pub struct Detector {
    thresholds: Thresholds,
    max_keys: usize,
    table: Mutex<Table>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the table: it holds up to `max_keys` addresses and ids, and printing it would lock.
        f.debug_struct("Detector")
            .field("thresholds", &self.thresholds)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// A detector with these thresholds, tracking at most `max_keys` (rule, key) pairs; the
    /// service-wide keys (at most one per rule) are tracked even past that.
    #[must_use]
    pub fn new(thresholds: Thresholds, max_keys: usize) -> Self {
        Self {
            thresholds,
            max_keys,
            table: Mutex::new(Table::default()),
        }
    }

    /// The thresholds in force.
    #[must_use]
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Counts one event at `now`; returns the alert when this event makes `threshold` events
    /// within the window and no alert for this (rule, scope) fired in the last window.
    ///
    /// Returns `None` without counting when the rule is off (threshold 0), or when `scope` is a
    /// new key and the table is full of live ones.
    pub fn observe_at(&self, rule: Rule, scope: Scope, now: Instant) -> Option<Alert> {
        let threshold = self.thresholds.of(rule);
        if threshold == 0 {
            return None;
        }
        let window = self.thresholds.window;
        let keep = usize::try_from(threshold).unwrap_or(usize::MAX);
        let mut table = self.lock();
        let key = (rule, scope);
        if !table.tracks.contains_key(&key)
            && scope != Scope::Global
            && !self.make_room(&mut table, now)
        {
            return None;
        }
        let track = table.tracks.entry(key).or_default();
        // Timestamps are taken before the lock, so one may arrive a little late: keep them sorted.
        let at = track
            .times
            .iter()
            .rposition(|t| *t <= now)
            .map_or(0, |i| i + 1);
        track.times.insert(at, now);
        while track.times.len() > keep {
            track.times.pop_front();
        }
        // All `threshold` kept events lie within one window (oldest > newest - window; the newest
        // is `now` unless `now` arrived late).
        let full = track.times.len() == keep
            && match (track.times.front(), track.times.back()) {
                (Some(oldest), Some(newest)) => newest.saturating_duration_since(*oldest) < window,
                _ => false,
            };
        if !full || track.quiet_at(now, window) {
            return None;
        }
        track.alerted_at = Some(now);
        Some(Alert {
            rule,
            scope,
            count: threshold,
            window,
        })
    }

    /// Whether a new key fits, sweeping stale keys (at most every [`SWEEP_EVERY`]) when full.
    fn make_room(&self, table: &mut Table, now: Instant) -> bool {
        if table.tracks.len() < self.max_keys {
            return true;
        }
        let due = table
            .last_sweep
            .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
        if !due {
            return false;
        }
        table.last_sweep = Some(now);
        let window = self.thresholds.window;
        table.tracks.retain(|_, track| !track.stale_at(now, window));
        table.tracks.len() < self.max_keys
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere while holding the lock leaves counters, not invariants: carry on.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().tracks.len()
    }
}

/// What the watch has counted since start (for the metrics: monotonically increasing counters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// `auth.login_failed` events recorded.
    pub login_failures: u64,
    /// `auth.mfa_failed` events recorded.
    pub mfa_failures: u64,
    /// `auth.refresh_reuse` events recorded.
    pub refresh_reuse: u64,
    /// `document.access_denied` and `authz.denied` events recorded.
    pub access_denials: u64,
    /// Requests refused by a rate limit.
    pub rate_limited: u64,
    /// Alerts raised, per rule: every rule in [`Rule::ALL`] order, zero included.
    pub alerts: Vec<(Rule, u64)>,
}

/// The signals an audit event carries, read before the event is handed to the trail.
enum Signal {
    LoginFailure {
        mfa: bool,
        account: Option<Uuid>,
        ip: Option<IpAddr>,
    },
    RefreshReuse {
        user: Option<Uuid>,
    },
    AccessDenied {
        user: Option<Uuid>,
    },
}

impl Signal {
    fn of(event: &NewAuditEvent) -> Option<Self> {
        let subject_user = match &event.subject {
            Some((kind, id)) if kind == "user" => Some(*id),
            _ => None,
        };
        match event.event_type.as_str() {
            crate::auth::events::LOGIN_FAILED | crate::auth::events::MFA_FAILED => {
                Some(Self::LoginFailure {
                    mfa: event.event_type.as_str() == crate::auth::events::MFA_FAILED,
                    // A failed password names the account as subject (when it exists); a refused
                    // second factor names it as actor.
                    account: subject_user.or(event.actor_user_id),
                    ip: event.ip,
                })
            }
            crate::auth::events::REFRESH_REUSE => Some(Self::RefreshReuse {
                // The session is the subject; the user is in the detail (`user_id`).
                user: event
                    .actor_user_id
                    .or(subject_user)
                    .or_else(|| detail_user_id(&event.detail)),
            }),
            crate::documents::events::ACCESS_DENIED | AUTHZ_DENIED => Some(Self::AccessDenied {
                user: event.actor_user_id,
            }),
            _ => None,
        }
    }
}

/// The `user_id` text entry of a detail, when it is a user id.
fn detail_user_id(detail: &AuditDetail) -> Option<Uuid> {
    detail
        .to_json()
        .get("user_id")
        .and_then(serde_json::Value::as_str)
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// An [`AuditLog`] decorator: records every event in the inner log, then reads it for abuse
/// signals.
pub struct AbuseWatch {
    inner: Arc<dyn AuditLog>,
    detector: Detector,
    login_failures: AtomicU64,
    mfa_failures: AtomicU64,
    refresh_reuse: AtomicU64,
    access_denials: AtomicU64,
    rate_limited: AtomicU64,
    alerts: [AtomicU64; 7],
}

impl std::fmt::Debug for AbuseWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AbuseWatch")
            .field("inner", &self.inner)
            .field("detector", &self.detector)
            .finish_non_exhaustive()
    }
}

impl AbuseWatch {
    /// Watches everything recorded through `inner` with `detector`.
    #[must_use]
    pub fn new(inner: Arc<dyn AuditLog>, detector: Detector) -> Self {
        Self {
            inner,
            detector,
            login_failures: AtomicU64::new(0),
            mfa_failures: AtomicU64::new(0),
            refresh_reuse: AtomicU64::new(0),
            access_denials: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            alerts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The counters so far.
    #[must_use]
    pub fn counts(&self) -> Counts {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            login_failures: read(&self.login_failures),
            mfa_failures: read(&self.mfa_failures),
            refresh_reuse: read(&self.refresh_reuse),
            access_denials: read(&self.access_denials),
            rate_limited: read(&self.rate_limited),
            alerts: Rule::ALL
                .iter()
                .map(|rule| (*rule, read(&self.alerts[rule.index()])))
                .collect(),
        }
    }

    /// A request refused by a rate limit (429s are not audited one by one: a flood would flood
    /// the trail). Counts it and observes [`Rule::RateLimitedPerIp`] (when `ip` is `Some`) and
    /// [`Rule::RateLimitedGlobal`]; raises their alerts.
    pub async fn rate_limited(&self, ip: Option<IpAddr>) {
        self.rate_limited_at(ip, Instant::now()).await;
    }

    /// [`AuditLog::record`] with an explicit instant (for tests): writes the event to the inner
    /// log, then counts it and raises any alert it completes.
    ///
    /// # Errors
    /// The inner log's error, when the event could not be written; nothing is counted then. A
    /// failure to write an *alert* is logged and does not fail the call.
    pub async fn record_at(&self, event: NewAuditEvent, now: Instant) -> Result<(), AuditError> {
        let signal = Signal::of(&event);
        let request_id = signal.as_ref().and(event.request_id.clone());
        let origin = event.ip;
        self.inner.record(event).await?;
        let Some(signal) = signal else {
            return Ok(());
        };
        let mut alerts = Vec::new();
        let mut observe = |rule, scope| {
            if let Some(alert) = self.detector.observe_at(rule, scope, now) {
                alerts.push(alert);
            }
        };
        match signal {
            Signal::LoginFailure { mfa, account, ip } => {
                let counter = if mfa {
                    &self.mfa_failures
                } else {
                    &self.login_failures
                };
                counter.fetch_add(1, Ordering::Relaxed);
                observe(Rule::LoginFailuresGlobal, Scope::Global);
                if let Some(id) = account {
                    observe(Rule::LoginFailuresPerAccount, Scope::Account(id));
                }
                if let Some(ip) = ip {
                    observe(Rule::LoginFailuresPerIp, Scope::Address(ip));
                }
            }
            Signal::RefreshReuse { user } => {
                self.refresh_reuse.fetch_add(1, Ordering::Relaxed);
                observe(Rule::RefreshReuse, user.map_or(Scope::Global, Scope::User));
            }
            Signal::AccessDenied { user } => {
                self.access_denials.fetch_add(1, Ordering::Relaxed);
                if let Some(id) = user {
                    observe(Rule::AccessDenialsPerUser, Scope::User(id));
                }
            }
        }
        for alert in alerts {
            self.raise(alert, request_id.as_deref(), origin).await;
        }
        Ok(())
    }

    /// [`AbuseWatch::rate_limited`] with an explicit instant (for tests).
    pub async fn rate_limited_at(&self, ip: Option<IpAddr>, now: Instant) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
        let per_ip = ip.and_then(|ip| {
            self.detector
                .observe_at(Rule::RateLimitedPerIp, Scope::Address(ip), now)
        });
        let global = self
            .detector
            .observe_at(Rule::RateLimitedGlobal, Scope::Global, now);
        for alert in per_ip.into_iter().chain(global) {
            self.raise(alert, None, ip).await;
        }
    }

    /// Counts, logs and audits one alert, with the request that completed it (its id and client
    /// address: where the last straw came from). Written to the inner log directly: an alert is
    /// never itself observed.
    async fn raise(&self, alert: Alert, request_id: Option<&str>, origin: Option<IpAddr>) {
        self.alerts[alert.rule.index()].fetch_add(1, Ordering::Relaxed);
        let (ip, user) = match alert.scope {
            Scope::Global => (None, None),
            Scope::Address(ip) => (Some(ip), None),
            Scope::Account(id) | Scope::User(id) => (None, Some(id)),
        };
        tracing::warn!(
            rule = alert.rule.name(),
            count = alert.count,
            window_secs = alert.window.as_secs(),
            scope = alert.scope.kind(),
            ip = ip.map(tracing::field::display),
            user_id = user.map(tracing::field::display),
            "security alert: abuse threshold crossed"
        );
        let event = match alert_event(&alert, request_id, origin) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(rule = alert.rule.name(), %error, "security alert could not be built");
                return;
            }
        };
        if let Err(error) = self.inner.record(event).await {
            tracing::error!(
                rule = alert.rule.name(),
                %error,
                "security alert could not be written to the audit trail"
            );
        }
    }
}

/// The `security.alert` audit event of `alert`: the address of an address-scoped alert is its
/// origin; any other alert carries the address of the request that completed it.
fn alert_event(
    alert: &Alert,
    request_id: Option<&str>,
    origin: Option<IpAddr>,
) -> Result<NewAuditEvent, AuditInputError> {
    let detail = AuditDetail::new()
        .with("rule", AuditValue::Text(alert.rule.name().to_owned()))?
        .with("count", AuditValue::Integer(i64::from(alert.count)))?
        .with(
            "window_seconds",
            AuditValue::Integer(i64::try_from(alert.window.as_secs()).unwrap_or(i64::MAX)),
        )?
        .with("scope", AuditValue::Text(alert.scope.kind().to_owned()))?;
    let mut event =
        NewAuditEvent::new(EventType::parse(ALERT_EVENT)?, Outcome::Denied).with_detail(detail);
    match alert.scope {
        Scope::Global => event = event.with_origin(origin, None),
        Scope::Address(ip) => event = event.with_origin(Some(ip), None),
        Scope::Account(id) | Scope::User(id) => {
            event = event.with_subject("user", id).with_origin(origin, None);
        }
    }
    if let Some(id) = request_id {
        event = event.with_request_id(id);
    }
    Ok(event)
}

#[async_trait]
impl AuditLog for AbuseWatch {
    async fn record(&self, event: NewAuditEvent) -> Result<(), AuditError> {
        self.record_at(event, Instant::now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::block_on;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    /// Every rule off but `rule`.
    fn only(rule: Rule, threshold: u32, window: Duration) -> Thresholds {
        let mut t = Thresholds {
            window,
            login_failures_global: 0,
            login_failures_per_account: 0,
            login_failures_per_ip: 0,
            refresh_reuse: 0,
            access_denials_per_user: 0,
            rate_limited_per_ip: 0,
            rate_limited_global: 0,
        };
        match rule {
            Rule::LoginFailuresGlobal => t.login_failures_global = threshold,
            Rule::LoginFailuresPerAccount => t.login_failures_per_account = threshold,
            Rule::LoginFailuresPerIp => t.login_failures_per_ip = threshold,
            Rule::RefreshReuse => t.refresh_reuse = threshold,
            Rule::AccessDenialsPerUser => t.access_denials_per_user = threshold,
            Rule::RateLimitedPerIp => t.rate_limited_per_ip = threshold,
            Rule::RateLimitedGlobal => t.rate_limited_global = threshold,
        }
        t
    }

    /// The indices of the events (at `start + i·step`) that alerted.
    fn fired(detector: &Detector, rule: Rule, scope: Scope, n: u64, step: Duration) -> Vec<u64> {
        let start = Instant::now();
        (0..n)
            .filter(|i| {
                let at = start + step * u32::try_from(*i).unwrap();
                detector.observe_at(rule, scope, at).is_some()
            })
            .collect()
    }

    #[test]
    fn rule_names_are_stable_and_distinct() {
        let names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(
            names,
            [
                "login_failures_global",
                "login_failures_per_account",
                "login_failures_per_ip",
                "refresh_reuse",
                "access_denials_per_user",
                "rate_limited_per_ip",
                "rate_limited_global",
            ]
        );
        for (i, rule) in Rule::ALL.iter().enumerate() {
            assert_eq!(rule.index(), i);
        }
    }

    #[test]
    fn default_thresholds() {
        let t = Thresholds::default();
        assert_eq!(t.window, Duration::from_secs(300));
        let of: Vec<u32> = Rule::ALL.iter().map(|r| t.of(*r)).collect();
        assert_eq!(of, [200, 10, 30, 1, 20, 100, 1000]);
    }

    #[test]
    fn a_sustained_flood_alerts_exactly_once_per_window() {
        let rule = Rule::LoginFailuresPerIp;
        let detector = Detector::new(only(rule, 3, Duration::from_secs(10)), 100);
        // 300 events 0.1 s apart (30 s): the 3rd, then the first event after each quiet window.
        let alerts = fired(&detector, rule, Scope::Address(ip(1)), 300, ms(100));
        assert_eq!(alerts, [2, 102, 202]);
    }

    #[test]
    fn the_alert_says_what_crossed() {
        let rule = Rule::AccessDenialsPerUser;
        let window = Duration::from_secs(10);
        let detector = Detector::new(only(rule, 2, window), 100);
        let user = Scope::User(Uuid::new_v4());
        let t0 = Instant::now();
        assert_eq!(detector.observe_at(rule, user, t0), None);
        assert_eq!(
            detector.observe_at(rule, user, t0 + ms(1)),
            Some(Alert {
                rule,
                scope: user,
                count: 2,
                window
            })
        );
    }

    #[test]
    fn a_flood_below_the_threshold_never_alerts() {
        let rule = Rule::LoginFailuresPerAccount;
        // 4 events per 10 s window against a threshold of 5, for a long time.
        let detector = Detector::new(only(rule, 5, Duration::from_secs(10)), 100);
        let alerts = fired(
            &detector,
            rule,
            Scope::Account(Uuid::new_v4()),
            1000,
            ms(2501),
        );
        assert_eq!(alerts, [] as [u64; 0]);
    }

    #[test]
    fn events_spread_wider_than_the_window_never_alert() {
        let rule = Rule::LoginFailuresGlobal;
        let detector = Detector::new(only(rule, 3, Duration::from_secs(10)), 100);
        // Three events span exactly 10 s: the oldest is not *within* the window.
        assert_eq!(
            fired(&detector, rule, Scope::Global, 100, ms(5000)),
            [] as [u64; 0]
        );
        // A hair closer and they do.
        let detector = Detector::new(only(rule, 3, Duration::from_secs(10)), 100);
        assert_eq!(fired(&detector, rule, Scope::Global, 3, ms(4999)), [2]);
    }

    #[test]
    fn threshold_one_alerts_on_the_first_event_then_once_per_window() {
        let rule = Rule::RefreshReuse;
        let window = Duration::from_secs(10);
        let detector = Detector::new(only(rule, 1, window), 100);
        let user = Scope::User(Uuid::new_v4());
        let t0 = Instant::now();
        assert!(detector.observe_at(rule, user, t0).is_some());
        assert!(detector.observe_at(rule, user, t0 + ms(1)).is_none());
        assert!(detector.observe_at(rule, user, t0 + ms(9_999)).is_none());
        assert!(detector.observe_at(rule, user, t0 + window).is_some());
        assert!(
            detector
                .observe_at(rule, user, t0 + window + ms(1))
                .is_none()
        );
    }

    #[test]
    fn threshold_zero_is_off_and_stores_nothing() {
        let detector = Detector::new(only(Rule::RefreshReuse, 1, Duration::from_secs(10)), 100);
        let t0 = Instant::now();
        for i in 0..100 {
            let at = t0 + ms(i);
            assert!(
                detector
                    .observe_at(Rule::LoginFailuresGlobal, Scope::Global, at)
                    .is_none()
            );
            assert!(
                detector
                    .observe_at(Rule::RateLimitedPerIp, Scope::Address(ip(1)), at)
                    .is_none()
            );
        }
        assert_eq!(detector.tracked(), 0);
    }

    #[test]
    fn a_zero_window_never_alerts() {
        let rule = Rule::RefreshReuse;
        let detector = Detector::new(only(rule, 1, Duration::ZERO), 100);
        assert!(
            detector
                .observe_at(rule, Scope::Global, Instant::now())
                .is_none()
        );
    }

    #[test]
    fn keys_are_independent() {
        let window = Duration::from_secs(10);
        let t0 = Instant::now();

        let rule = Rule::LoginFailuresPerIp;
        let detector = Detector::new(only(rule, 3, window), 100);
        let (a, b) = (Scope::Address(ip(1)), Scope::Address(ip(2)));
        // Interleaved: a, b, a, b, a (a's third) , b (b's third).
        let order = [a, b, a, b, a, b];
        let fired: Vec<bool> = order
            .iter()
            .zip(0u64..)
            .map(|(scope, i)| detector.observe_at(rule, *scope, t0 + ms(i)).is_some())
            .collect();
        assert_eq!(fired, [false, false, false, false, true, true]);

        let rule = Rule::LoginFailuresPerAccount;
        let detector = Detector::new(only(rule, 2, window), 100);
        let (x, y) = (
            Scope::Account(Uuid::new_v4()),
            Scope::Account(Uuid::new_v4()),
        );
        assert!(detector.observe_at(rule, x, t0).is_none());
        assert!(detector.observe_at(rule, y, t0).is_none());
        assert!(detector.observe_at(rule, x, t0 + ms(1)).is_some());
        // x alerting does not silence y.
        assert!(detector.observe_at(rule, y, t0 + ms(2)).is_some());
    }

    #[test]
    fn the_same_key_under_two_rules_counts_separately() {
        let mut thresholds = only(Rule::LoginFailuresPerIp, 2, Duration::from_secs(10));
        thresholds.rate_limited_per_ip = 2;
        let detector = Detector::new(thresholds, 100);
        let t0 = Instant::now();
        let addr = Scope::Address(ip(7));
        assert!(
            detector
                .observe_at(Rule::LoginFailuresPerIp, addr, t0)
                .is_none()
        );
        assert!(
            detector
                .observe_at(Rule::RateLimitedPerIp, addr, t0)
                .is_none()
        );
        assert!(
            detector
                .observe_at(Rule::LoginFailuresPerIp, addr, t0 + ms(1))
                .is_some()
        );
    }

    #[test]
    fn a_late_timestamp_is_counted_in_order() {
        let rule = Rule::LoginFailuresGlobal;
        let detector = Detector::new(only(rule, 2, Duration::from_secs(10)), 100);
        let t0 = Instant::now();
        assert!(
            detector
                .observe_at(rule, Scope::Global, t0 + ms(20_000))
                .is_none()
        );
        // Older than the stored one and not within its window of it: kept out, no alert.
        assert!(detector.observe_at(rule, Scope::Global, t0).is_none());
        assert!(
            detector
                .observe_at(rule, Scope::Global, t0 + ms(20_001))
                .is_some()
        );
    }

    #[test]
    fn the_memory_cap_holds_under_a_flood_of_addresses_and_global_rules_still_alert() {
        let window = Duration::from_secs(10);
        let mut thresholds = only(Rule::RateLimitedPerIp, 1, window);
        thresholds.rate_limited_global = 500;
        let max_keys = 50;
        let detector = Detector::new(thresholds, max_keys);
        let t0 = Instant::now();

        let mut per_ip_alerts = 0;
        let mut global_alerts = 0;
        for n in 0..10_000u32 {
            let at = t0 + Duration::from_micros(u64::from(n) * 100);
            if detector
                .observe_at(Rule::RateLimitedPerIp, Scope::Address(ip(n)), at)
                .is_some()
            {
                per_ip_alerts += 1;
            }
            if detector
                .observe_at(Rule::RateLimitedGlobal, Scope::Global, at)
                .is_some()
            {
                global_alerts += 1;
            }
            assert!(detector.tracked() <= max_keys + Rule::ALL.len());
        }
        // The first addresses are tracked (the global key took one slot), the rest are not:
        // all live, none swept.
        assert_eq!(per_ip_alerts, max_keys - 1);
        assert_eq!(detector.tracked(), max_keys);
        // The service-wide rule still saw all 10 000 within one window.
        assert_eq!(global_alerts, 1);

        // Once the tracked addresses are stale and quiet, they are swept and new ones fit.
        let later = t0 + window + Duration::from_secs(2);
        assert!(
            detector
                .observe_at(Rule::RateLimitedPerIp, Scope::Address(ip(1_000_000)), later)
                .is_some()
        );
        // The global key was stale too (its last event over a window ago), so it went as well.
        assert_eq!(detector.tracked(), 1);
    }

    #[test]
    fn a_full_table_is_swept_at_most_once_a_second() {
        let window = Duration::from_secs(10);
        let detector = Detector::new(only(Rule::RateLimitedPerIp, 1, window), 1);
        let t0 = Instant::now();
        let rule = Rule::RateLimitedPerIp;
        assert!(
            detector
                .observe_at(rule, Scope::Address(ip(1)), t0)
                .is_some()
        );
        // Full of a live key: the sweep finds nothing, the newcomer is not tracked.
        assert!(
            detector
                .observe_at(rule, Scope::Address(ip(2)), t0 + window - ms(1))
                .is_none()
        );
        // Stale now, but the last sweep was under a second ago.
        assert!(
            detector
                .observe_at(rule, Scope::Address(ip(3)), t0 + window)
                .is_none()
        );
        assert!(
            detector
                .observe_at(rule, Scope::Address(ip(4)), t0 + window + ms(999))
                .is_some()
        );
        assert_eq!(detector.tracked(), 1);
    }

    // --- AbuseWatch --------------------------------------------------------------------------

    #[derive(Debug, Default)]
    struct Memory {
        events: Mutex<Vec<NewAuditEvent>>,
        /// Refuse every write.
        down: bool,
        /// Refuse only alert rows.
        refuse_alerts: bool,
    }

    impl Memory {
        fn of_type(&self, event_type: &str) -> Vec<NewAuditEvent> {
            self.events
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e.event_type.as_str() == event_type)
                .cloned()
                .collect()
        }
    }

    #[async_trait]
    impl AuditLog for Memory {
        async fn record(&self, event: NewAuditEvent) -> Result<(), AuditError> {
            if self.down || (self.refuse_alerts && event.event_type.as_str() == ALERT_EVENT) {
                return Err(AuditError::Unavailable(Box::new(std::io::Error::other(
                    "down",
                ))));
            }
            self.events.lock().unwrap().push(event);
            Ok(())
        }
    }

    fn watched(memory: Memory, thresholds: Thresholds) -> (AbuseWatch, Arc<Memory>) {
        let memory = Arc::new(memory);
        let watch = AbuseWatch::new(memory.clone(), Detector::new(thresholds, 1000));
        (watch, memory)
    }

    fn event(event_type: &str, outcome: Outcome) -> NewAuditEvent {
        NewAuditEvent::new(EventType::parse(event_type).unwrap(), outcome)
    }

    fn login_failed(account: Option<Uuid>, from: IpAddr) -> NewAuditEvent {
        let e = event(crate::auth::events::LOGIN_FAILED, Outcome::Failure)
            .with_origin(Some(from), Some("test"))
            .with_request_id("req-1");
        match account {
            Some(id) => e.with_subject("user", id),
            None => e,
        }
    }

    fn alerts_of(memory: &Memory, rule: Rule) -> Vec<NewAuditEvent> {
        memory
            .of_type(ALERT_EVENT)
            .into_iter()
            .filter(|e| e.detail.to_json()["rule"] == rule.name())
            .collect()
    }

    fn alert_counts(counts: &Counts) -> Vec<u64> {
        counts.alerts.iter().map(|(_, n)| *n).collect()
    }

    #[test]
    fn the_alert_detail_keys_are_accepted_by_the_audit_detail() {
        for key in ["rule", "count", "window_seconds", "scope"] {
            assert!(
                AuditDetail::new().with(key, AuditValue::Integer(1)).is_ok(),
                "{key}"
            );
        }
        let alert = Alert {
            rule: Rule::LoginFailuresPerIp,
            scope: Scope::Address(ip(9)),
            count: 30,
            window: Duration::from_secs(300),
        };
        // An address-scoped alert names its address, whatever the last request's.
        let event = alert_event(&alert, Some("r-9"), Some(ip(1))).unwrap();
        assert_eq!(event.event_type.as_str(), ALERT_EVENT);
        assert_eq!(event.outcome, Outcome::Denied);
        assert_eq!(event.ip, Some(ip(9)));
        // Any other carries the address of the request that completed it.
        let user = Uuid::from_u128(7);
        let per_user = Alert {
            rule: Rule::RefreshReuse,
            scope: Scope::User(user),
            count: 1,
            window: Duration::from_secs(300),
        };
        let event = alert_event(&per_user, None, Some(ip(1))).unwrap();
        assert_eq!(event.ip, Some(ip(1)));
        assert_eq!(event.subject, Some(("user".to_owned(), user)));
        let event = alert_event(&alert, Some("r-9"), None).unwrap();
        assert_eq!(event.subject, None);
        assert_eq!(event.request_id.as_deref(), Some("r-9"));
        assert_eq!(
            event.detail.to_json(),
            serde_json::json!({
                "rule": "login_failures_per_ip",
                "count": 30,
                "window_seconds": 300,
                "scope": "address",
            })
        );
    }

    #[test]
    fn failed_logins_against_one_account_from_rotating_addresses_alert_once() {
        let (watch, memory) = watched(Memory::default(), Thresholds::default());
        let account = Uuid::new_v4();
        let t0 = Instant::now();
        for n in 0..25u32 {
            let at = t0 + Duration::from_secs(u64::from(n));
            block_on(watch.record_at(login_failed(Some(account), ip(n)), at)).unwrap();
        }
        // Every original event is in the trail.
        assert_eq!(memory.of_type(crate::auth::events::LOGIN_FAILED).len(), 25);
        // Exactly one alert, for the account.
        let alerts = memory.of_type(ALERT_EVENT);
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!(alert.outcome, Outcome::Denied);
        assert_eq!(alert.subject, Some(("user".to_owned(), account)));
        assert_eq!(
            alert.ip,
            Some(ip(9)),
            "the address of the failure that completed it"
        );
        assert_eq!(alert.request_id.as_deref(), Some("req-1"));
        assert_eq!(
            alert.detail.to_json(),
            serde_json::json!({
                "rule": "login_failures_per_account",
                "count": 10,
                "window_seconds": 300,
                "scope": "account",
            })
        );
        let counts = watch.counts();
        assert_eq!(counts.login_failures, 25);
        assert_eq!(counts.mfa_failures, 0);
        assert_eq!(alert_counts(&counts), [0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(
            counts.alerts.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            Rule::ALL
        );
    }

    #[test]
    fn failed_logins_from_one_address_against_unknown_accounts_alert_per_address() {
        let thresholds = only(Rule::LoginFailuresPerIp, 5, Duration::from_secs(60));
        let (watch, memory) = watched(Memory::default(), thresholds);
        let t0 = Instant::now();
        for n in 0..12u64 {
            block_on(watch.record_at(login_failed(None, ip(42)), t0 + ms(n))).unwrap();
        }
        let alerts = alerts_of(&memory, Rule::LoginFailuresPerIp);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].ip, Some(ip(42)));
        assert_eq!(alerts[0].subject, None);
        assert_eq!(alerts[0].user_agent, None);
        assert_eq!(watch.counts().login_failures, 12);
    }

    #[test]
    fn refused_second_factors_count_against_the_account_named_as_actor() {
        let thresholds = only(Rule::LoginFailuresPerAccount, 3, Duration::from_secs(60));
        let (watch, memory) = watched(Memory::default(), thresholds);
        let account = Uuid::new_v4();
        let t0 = Instant::now();
        for n in 0..3u64 {
            let e = event(crate::auth::events::MFA_FAILED, Outcome::Failure).with_actor(account);
            block_on(watch.record_at(e, t0 + ms(n))).unwrap();
        }
        // A dead challenge names nobody: counted, but not against an account.
        let anonymous = event(crate::auth::events::MFA_FAILED, Outcome::Failure);
        block_on(watch.record_at(anonymous, t0 + ms(4))).unwrap();
        let alerts = alerts_of(&memory, Rule::LoginFailuresPerAccount);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].subject, Some(("user".to_owned(), account)));
        let counts = watch.counts();
        assert_eq!((counts.mfa_failures, counts.login_failures), (4, 0));
    }

    #[test]
    fn a_reused_refresh_token_alerts_for_its_user() {
        let (watch, memory) = watched(Memory::default(), Thresholds::default());
        let user = Uuid::new_v4();
        let t0 = Instant::now();
        // As `auth` writes it: the session as subject, the user in the detail.
        let reuse = || {
            event(crate::auth::events::REFRESH_REUSE, Outcome::Denied)
                .with_subject("session", Uuid::new_v4())
                .with_detail(
                    AuditDetail::new()
                        .with("user_id", AuditValue::Text(user.to_string()))
                        .unwrap(),
                )
        };
        block_on(watch.record_at(reuse(), t0)).unwrap();
        block_on(watch.record_at(reuse(), t0 + Duration::from_secs(1))).unwrap();
        let alerts = alerts_of(&memory, Rule::RefreshReuse);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].subject, Some(("user".to_owned(), user)));
        assert_eq!(alerts[0].detail.to_json()["scope"], "user");
        assert_eq!(watch.counts().refresh_reuse, 2);

        // Without any user: one service-wide key.
        let (watch, memory) = watched(Memory::default(), Thresholds::default());
        block_on(watch.record_at(
            event(crate::auth::events::REFRESH_REUSE, Outcome::Denied),
            t0,
        ))
        .unwrap();
        let alerts = alerts_of(&memory, Rule::RefreshReuse);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].subject, None);
        assert_eq!(alerts[0].detail.to_json()["scope"], "global");
    }

    #[test]
    fn document_and_function_denials_add_up_per_user() {
        let thresholds = only(Rule::AccessDenialsPerUser, 4, Duration::from_secs(60));
        let (watch, memory) = watched(Memory::default(), thresholds);
        let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
        let t0 = Instant::now();
        let events = [
            event(crate::documents::events::ACCESS_DENIED, Outcome::Denied)
                .with_actor(user)
                .with_subject("document", Uuid::new_v4()),
            event(AUTHZ_DENIED, Outcome::Denied).with_actor(user),
            event(AUTHZ_DENIED, Outcome::Denied).with_actor(other),
            event(crate::documents::events::ACCESS_DENIED, Outcome::Denied)
                .with_actor(user)
                .with_subject("document", Uuid::new_v4()),
            event(AUTHZ_DENIED, Outcome::Denied).with_actor(user),
        ];
        for (e, n) in events.into_iter().zip(0u64..) {
            block_on(watch.record_at(e, t0 + ms(n))).unwrap();
        }
        let alerts = alerts_of(&memory, Rule::AccessDenialsPerUser);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].subject, Some(("user".to_owned(), user)));
        assert_eq!(watch.counts().access_denials, 5);
    }

    #[test]
    fn a_failing_inner_log_returns_its_error_and_counts_nothing() {
        let memory = Memory {
            down: true,
            ..Memory::default()
        };
        let (watch, memory) = watched(
            memory,
            only(Rule::LoginFailuresGlobal, 1, Duration::from_secs(60)),
        );
        let result =
            block_on(watch.record_at(login_failed(Some(Uuid::new_v4()), ip(1)), Instant::now()));
        assert!(matches!(result, Err(AuditError::Unavailable(_))));
        assert_eq!(
            watch.counts(),
            Counts {
                alerts: Rule::ALL.iter().map(|r| (*r, 0)).collect(),
                ..Counts::default()
            }
        );
        assert!(memory.events.lock().unwrap().is_empty());
        assert_eq!(watch.detector.tracked(), 0);
    }

    #[test]
    fn a_failing_alert_write_does_not_fail_the_event() {
        let memory = Memory {
            refuse_alerts: true,
            ..Memory::default()
        };
        let (watch, memory) = watched(
            memory,
            only(Rule::LoginFailuresGlobal, 1, Duration::from_secs(60)),
        );
        block_on(watch.record_at(login_failed(None, ip(1)), Instant::now())).unwrap();
        assert_eq!(memory.of_type(crate::auth::events::LOGIN_FAILED).len(), 1);
        assert!(memory.of_type(ALERT_EVENT).is_empty());
        // The alert was still raised (counted and logged).
        assert_eq!(alert_counts(&watch.counts()), [1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn rate_limit_storms_alert_once_per_window_per_address_and_globally() {
        let mut thresholds = only(Rule::RateLimitedPerIp, 5, Duration::from_secs(10));
        thresholds.rate_limited_global = 8;
        let (watch, memory) = watched(Memory::default(), thresholds);
        let t0 = Instant::now();
        // 250 refusals 0.1 s apart (25 s) from one address.
        for n in 0..250u64 {
            block_on(watch.rate_limited_at(Some(ip(5)), t0 + ms(n * 100)));
        }
        let per_ip = alerts_of(&memory, Rule::RateLimitedPerIp);
        let global = alerts_of(&memory, Rule::RateLimitedGlobal);
        assert_eq!(per_ip.len(), 3);
        assert_eq!(global.len(), 3);
        assert!(per_ip.iter().all(|e| e.ip == Some(ip(5))));
        assert!(
            global
                .iter()
                .all(|e| e.ip == Some(ip(5)) && e.subject.is_none())
        );
        // Nothing but the alerts was written: refusals are not audited one by one.
        assert_eq!(memory.events.lock().unwrap().len(), 6);
        let counts = watch.counts();
        assert_eq!(counts.rate_limited, 250);
        assert_eq!(alert_counts(&counts), [0, 0, 0, 0, 0, 3, 3]);

        // Without an address, only the global rule counts.
        let (watch, memory) = watched(
            Memory::default(),
            only(Rule::RateLimitedPerIp, 1, Duration::from_secs(10)),
        );
        block_on(watch.rate_limited_at(None, t0));
        assert!(memory.events.lock().unwrap().is_empty());
        assert_eq!(watch.counts().rate_limited, 1);
    }

    #[test]
    fn alerts_and_other_events_are_recorded_but_not_observed() {
        let thresholds = Thresholds {
            window: Duration::from_secs(60),
            ..Thresholds::default()
        };
        let (watch, memory) = watched(Memory::default(), thresholds);
        let t0 = Instant::now();
        let alert = alert_event(
            &Alert {
                rule: Rule::RefreshReuse,
                scope: Scope::Global,
                count: 1,
                window: Duration::from_secs(60),
            },
            None,
            None,
        )
        .unwrap();
        for n in 0..50u64 {
            block_on(watch.record_at(alert.clone(), t0 + ms(n))).unwrap();
            block_on(watch.record_at(event("auth.login", Outcome::Success), t0 + ms(n))).unwrap();
        }
        // Written through, nothing more.
        assert_eq!(memory.events.lock().unwrap().len(), 100);
        assert_eq!(
            watch.counts(),
            Counts {
                alerts: Rule::ALL.iter().map(|r| (*r, 0)).collect(),
                ..Counts::default()
            }
        );
        assert_eq!(watch.detector.tracked(), 0);
    }

    #[test]
    fn the_trait_method_goes_through_the_watch() {
        let thresholds = Thresholds {
            login_failures_per_ip: 5,
            ..only(Rule::LoginFailuresGlobal, 1, Duration::from_secs(60))
        };
        let (watch, memory) = watched(Memory::default(), thresholds);
        let log: &dyn AuditLog = &watch;
        block_on(log.record(login_failed(None, ip(1)))).unwrap();
        assert_eq!(memory.of_type(ALERT_EVENT).len(), 1);
        assert_eq!(watch.counts().login_failures, 1);
        assert_eq!(watch.detector.tracked(), 2);
        assert!(format!("{watch:?}").starts_with("AbuseWatch {"));
        // The detector's Debug shows its settings, never the addresses and ids it tracks.
        let debug = format!("{:?}", watch.detector);
        assert!(debug.contains("max_keys: 1000"), "{debug}");
        assert!(!debug.contains("10.0.0.1"), "{debug}");
    }
}
