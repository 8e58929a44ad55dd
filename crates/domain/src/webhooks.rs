//! The webhook use cases: registering a URL to be told about one's documents, listing and removing
//! webhooks, reading their delivery log — and working the delivery queue.
//!
//! Registration runs both halves of the SSRF policy's first checkpoint: the URL as written
//! ([`WebhookUrl::parse`]) and the addresses its host resolves to right now
//! ([`WebhookTransport::vet`]). Delivery runs the second checkpoint inside the transport, on the
//! addresses actually dialled (see [`crate::webhook_target`]). A refusal at either is audited:
//! pointing a webhook at 169.254.169.254 is an attack, not a typo.
//!
//! The signing secret is minted here from the CSPRNG behind [`OpaqueTokens`], shown to the owner
//! once, and stored sealed under a context naming the webhook, so only the worker can open it and
//! only for that webhook.
//!
//! Webhooks belong to their owner alone — no role reads or deletes another user's webhooks: a
//! webhook is a channel out of the system, and its log says what happened to the owner's
//! documents. Another user's webhook answers 404, like one that does not exist.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use crate::api_key::Scope;
use crate::audit::{AuditDetail, AuditLog, AuditValue, NewAuditEvent, Outcome};
use crate::auth::{event, reason};
use crate::context::{Actor, Origin};
use crate::error::{OrUnexpected, Unexpected};
use crate::events::{DocumentChange, DocumentEvent, DocumentEvents};
use crate::flow::{Flow, FlowCaps, FlowLimiter};
use crate::listing;
use crate::opaque::{OpaqueTokens, TokenKind};
use crate::quota::{PlanLimits, QuotaKind};
use crate::sealing::Sealer;
use crate::user::FieldViolation;
use crate::webhook::{
    ClaimedDelivery, CreateWebhookError, Delivery, DeliveryOutcome, NewWebhook, OutboundDelivery,
    SendOutcome, Webhook, WebhookEvent, WebhookRepository, WebhookTransport, secret_context,
};
use crate::webhook_target::WebhookUrl;

/// The audit event types this module writes.
pub mod events {
    /// A webhook was registered.
    pub const CREATED: &str = "webhook.created";
    /// A webhook was removed.
    pub const DELETED: &str = "webhook.deleted";
    /// A registration named a forbidden target (an internal name or address): an SSRF attempt.
    pub const TARGET_REFUSED: &str = "webhook.target_refused";
    /// A delivery was refused because the host resolved to a forbidden address (DNS rebinding, or
    /// a name repointed since registration).
    pub const DELIVERY_REFUSED: &str = "webhook.delivery_refused";

    /// Every type above (a unit test parses them all).
    pub const ALL: [&str; 4] = [CREATED, DELETED, TARGET_REFUSED, DELIVERY_REFUSED];
}

/// Most events one webhook may list (there are three; a longer list can only hold duplicates).
const MAX_EVENTS: usize = WebhookEvent::ALL.len();

/// A registration as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    /// Where to deliver.
    pub url: String,
    /// What to deliver (`document.created`, `document.updated`, `document.deleted`,
    /// `document.shared`).
    pub events: Vec<String>,
}

/// A webhook just registered, with its signing secret — the only time the secret is shown.
pub struct CreatedWebhook {
    /// The webhook.
    pub webhook: Webhook,
    /// Its signing secret (`bwhs_…`).
    pub secret: SecretString,
}

impl std::fmt::Debug for CreatedWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedWebhook")
            .field("webhook", &self.webhook)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// Why a webhook operation failed, as far as the client may know.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Field errors, every one of them.
    #[error("invalid input")]
    Invalid(Vec<FieldViolation>),
    /// No such webhook, or another user's.
    #[error("no such webhook")]
    NotFound,
    /// An API key without the scope this needs.
    #[error("not allowed")]
    Forbidden,
    /// The actor's plan allows no more webhooks.
    #[error("quota exceeded: {}", .0.as_str())]
    QuotaExceeded(QuotaKind),
    /// The actor registered webhooks too often lately (the flow cap).
    #[error("too many requests")]
    RateLimited {
        /// How long until another is accepted.
        retry_after: Duration,
    },
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// How deliveries are made and retried (from configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Whether plain `http` URLs may be registered (development only).
    pub allow_http: bool,
    /// Attempts per delivery, the first included; after the last failure it is given up.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub retry_base: Duration,
    /// The longest wait between attempts.
    pub retry_max: Duration,
    /// How long a claimed delivery stays with its worker before it is due again (longer than a
    /// whole attempt: the transport's total timeout plus margin).
    pub lease: Duration,
    /// How many deliveries one worker round claims (and sends concurrently).
    pub batch: u32,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            allow_http: false,
            max_attempts: 6,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(60 * 60),
            lease: Duration::from_secs(60),
            batch: 8,
        }
    }
}

impl DeliveryPolicy {
    /// The wait before attempt `made + 1`, after `made` failed attempts: `retry_base` doubled per
    /// earlier failure, capped at `retry_max`, plus up to a quarter more, spread by the delivery
    /// id so that deliveries which failed together (a receiver that was down) do not all come back
    /// in the same second. The spread needs no randomness: ids are random already.
    #[must_use]
    pub fn backoff(&self, made: u32, delivery_id: Uuid) -> Duration {
        let doublings = made.saturating_sub(1).min(30);
        let wait = self
            .retry_base
            .saturating_mul(1 << doublings)
            .min(self.retry_max);
        let spread = f64::from(delivery_id.as_bytes()[15]) / 255.0 / 4.0;
        wait.saturating_add(wait.mul_f64(spread))
    }
}

/// The ports of the webhook service.
#[derive(Debug, Clone)]
pub struct WebhookPorts {
    /// Webhooks and their delivery queue.
    pub webhooks: Arc<dyn WebhookRepository>,
    /// Resolving, checking and sending.
    pub transport: Arc<dyn WebhookTransport>,
    /// Seals the signing secrets.
    pub sealer: Arc<dyn Sealer>,
    /// Mints the signing secrets.
    pub tokens: Arc<dyn OpaqueTokens>,
    /// The audit trail.
    pub audit: Arc<dyn AuditLog>,
    /// Flow counters (the cap on registrations).
    pub flows: Arc<dyn FlowLimiter>,
    /// Flow caps.
    pub flow_caps: FlowCaps,
    /// Quotas by plan.
    pub limits: PlanLimits,
}

/// Webhooks: register, list, delete, read the log; queue and deliver events.
#[derive(Debug, Clone)]
pub struct WebhookService {
    ports: WebhookPorts,
    policy: DeliveryPolicy,
}

impl WebhookService {
    /// A service over these ports.
    #[must_use]
    pub fn new(ports: WebhookPorts, policy: DeliveryPolicy) -> Self {
        Self { ports, policy }
    }

    async fn record(&self, event: NewAuditEvent) -> Result<(), Unexpected> {
        self.ports.audit.record(event).await.or_unexpected("audit")
    }

    /// Registers a webhook for the actor.
    ///
    /// # Errors
    /// `Invalid` listing every bad field (an SSRF target is a violation on `url`, and is audited);
    /// `RateLimited` past the per-user cap on registrations; `QuotaExceeded`; `Unexpected`.
    pub async fn create(
        &self,
        actor: &Actor,
        origin: &Origin,
        input: WebhookInput,
    ) -> Result<CreatedWebhook, WebhookError> {
        require_scope(actor, Scope::WebhooksWrite)?;
        let url = WebhookUrl::parse(&input.url, self.policy.allow_http);
        let events = parse_events(&input.events);
        let (url, events) = match (url, events) {
            (Ok(url), Ok(events)) => (url, events),
            (url, events) => {
                if let Err(v) = &url {
                    self.refused_target(actor, origin, v).await?;
                }
                let violations = [url.err(), events.err()].into_iter().flatten().collect();
                return Err(WebhookError::Invalid(violations));
            }
        };
        // Before the resolver is asked anything: registration is the step an attacker repeats to
        // probe names and addresses, so the cap comes first (OWASP API6).
        if let Err(retry_after) = self
            .ports
            .flows
            .try_record(
                actor.user_id,
                Flow::WebhookCreate,
                self.ports.flow_caps.webhook_create,
            )
            .await
            .or_unexpected("flow cap")?
        {
            return Err(WebhookError::RateLimited { retry_after });
        }
        if let Err(v) = self.ports.transport.vet(&url).await {
            self.refused_target(actor, origin, &v).await?;
            return Err(WebhookError::Invalid(vec![v]));
        }
        let id = Uuid::new_v4();
        let secret = self
            .ports
            .tokens
            .mint(TokenKind::WebhookSecret)
            .or_unexpected("webhook secret")?
            .secret;
        let sealed_secret = self
            .ports
            .sealer
            .seal(secret.expose_secret().as_bytes(), &secret_context(id))
            .or_unexpected("seal webhook secret")?;
        let webhook = self
            .ports
            .webhooks
            .create(
                NewWebhook {
                    id,
                    owner_id: actor.user_id,
                    url,
                    events,
                    sealed_secret,
                },
                &self.ports.limits,
            )
            .await
            .map_err(|e| match e {
                CreateWebhookError::QuotaExceeded => {
                    WebhookError::QuotaExceeded(QuotaKind::Webhooks)
                }
                CreateWebhookError::Store(e) => Unexpected::new("webhook create", e).into(),
            })?;
        let detail = target_detail(&webhook.url)?;
        self.record(
            event(origin, events::CREATED, Outcome::Success)?
                .with_actor(actor.user_id)
                .with_subject("webhook", webhook.id)
                .with_detail(detail),
        )
        .await?;
        Ok(CreatedWebhook { webhook, secret })
    }

    /// Audits a registration refused for naming a forbidden target; other violations (a missing
    /// scheme, a typo) are not security events.
    async fn refused_target(
        &self,
        actor: &Actor,
        origin: &Origin,
        violation: &FieldViolation,
    ) -> Result<(), Unexpected> {
        let code = match violation.code {
            c @ ("forbidden_address" | "forbidden_host" | "credentials_in_url"
            | "scheme_not_allowed") => c,
            _ => return Ok(()),
        };
        self.record(
            event(origin, events::TARGET_REFUSED, Outcome::Denied)?
                .with_actor(actor.user_id)
                .with_detail(reason(code)?),
        )
        .await
    }

    /// The actor's webhooks, newest first.
    ///
    /// # Errors
    /// `Unexpected`.
    pub async fn list(&self, actor: &Actor) -> Result<Vec<Webhook>, WebhookError> {
        require_scope(actor, Scope::WebhooksRead)?;
        Ok(self
            .ports
            .webhooks
            .list(actor.user_id)
            .await
            .or_unexpected("webhook list")?)
    }

    /// Removes one of the actor's webhooks, with its queue and log.
    ///
    /// # Errors
    /// `NotFound` (also for another user's); `Unexpected`.
    pub async fn delete(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
    ) -> Result<(), WebhookError> {
        require_scope(actor, Scope::WebhooksWrite)?;
        if !self
            .ports
            .webhooks
            .delete(actor.user_id, id)
            .await
            .or_unexpected("webhook delete")?
        {
            return Err(WebhookError::NotFound);
        }
        self.record(
            event(origin, events::DELETED, Outcome::Success)?
                .with_actor(actor.user_id)
                .with_subject("webhook", id),
        )
        .await?;
        Ok(())
    }

    /// The delivery log of one of the actor's webhooks, newest first.
    ///
    /// # Errors
    /// `Invalid` for a bad `limit` (1..=100, default 20); `NotFound`; `Unexpected`.
    pub async fn deliveries(
        &self,
        actor: &Actor,
        id: Uuid,
        limit: Option<u32>,
    ) -> Result<Vec<Delivery>, WebhookError> {
        require_scope(actor, Scope::WebhooksRead)?;
        let mut violations = Vec::new();
        let limit = listing::limit(limit, &mut violations);
        if !violations.is_empty() {
            return Err(WebhookError::Invalid(violations));
        }
        if self
            .ports
            .webhooks
            .find(actor.user_id, id)
            .await
            .or_unexpected("webhook lookup")?
            .is_none()
        {
            return Err(WebhookError::NotFound);
        }
        Ok(self
            .ports
            .webhooks
            .deliveries(actor.user_id, id, limit)
            .await
            .or_unexpected("webhook deliveries")?)
    }

    /// One round of the delivery worker: claims due deliveries, sends them concurrently, records
    /// each outcome. Returns how many were claimed (zero: nothing is due, wait a little).
    ///
    /// # Errors
    /// `Unexpected` when the queue cannot be read; a failure to *record* one outcome is logged
    /// and leaves that delivery to come back when its lease runs out.
    pub async fn deliver_due(&self) -> Result<usize, Unexpected> {
        let claimed = self
            .ports
            .webhooks
            .claim(self.policy.batch, self.policy.lease)
            .await
            .or_unexpected("webhook claim")?;
        let count = claimed.len();
        join_all(claimed.into_iter().map(|d| self.attempt(d))).await;
        Ok(count)
    }

    #[tracing::instrument(name = "webhooks.deliver", skip_all, fields(delivery_id = %delivery.id, webhook_id = %delivery.webhook_id, attempt = delivery.attempts + 1))]
    async fn attempt(&self, delivery: ClaimedDelivery) {
        let outcome = self.send(&delivery).await;
        match &outcome {
            DeliveryOutcome::Delivered { status } => tracing::info!(status, "webhook delivered"),
            DeliveryOutcome::Retry { after, error, .. } => {
                tracing::info!(
                    retry_in_s = after.as_secs(),
                    error,
                    "webhook attempt failed"
                );
            }
            DeliveryOutcome::GiveUp { error, .. } => {
                tracing::warn!(error, "webhook delivery given up");
            }
            DeliveryOutcome::Refused { error } => {
                tracing::warn!(error, "webhook delivery refused by the SSRF policy");
                let audited = async {
                    self.record(
                        event(
                            &Origin::default(),
                            events::DELIVERY_REFUSED,
                            Outcome::Denied,
                        )?
                        .with_subject("webhook", delivery.webhook_id)
                        .with_detail(target_detail(&delivery.url)?),
                    )
                    .await
                };
                if let Err(e) = audited.await {
                    tracing::error!(error = ?e, "could not audit a refused webhook delivery");
                }
            }
        }
        if let Err(e) = self.ports.webhooks.record(delivery.id, outcome).await {
            tracing::error!(error = ?e, "could not record a webhook delivery's outcome; it comes back when its lease ends");
        }
    }

    async fn send(&self, delivery: &ClaimedDelivery) -> DeliveryOutcome {
        let secret = match self.ports.sealer.open(
            &delivery.sealed_secret,
            &secret_context(delivery.webhook_id),
        ) {
            Ok(secret) => secret,
            Err(e) => {
                // A missing key or a tampered row: retrying cannot help, and sending unsigned
                // would teach receivers to accept unsigned deliveries.
                tracing::error!(error = ?e, "a webhook's signing secret does not open");
                return DeliveryOutcome::GiveUp {
                    status: None,
                    error: "the signing secret could not be opened".to_owned(),
                };
            }
        };
        let body = match serde_json::to_vec(&delivery.payload) {
            Ok(body) => body,
            Err(_) => {
                return DeliveryOutcome::GiveUp {
                    status: None,
                    error: "the payload could not be serialised".to_owned(),
                };
            }
        };
        let sent = self
            .ports
            .transport
            .send(OutboundDelivery {
                delivery_id: delivery.id,
                event: delivery.event,
                url: &delivery.url,
                body: &body,
                secret: &secret,
            })
            .await;
        match sent {
            SendOutcome::Answered { status } if (200..300).contains(&status) => {
                DeliveryOutcome::Delivered { status }
            }
            SendOutcome::Answered { status } => self.failed(
                delivery,
                Some(status),
                format!("the receiver answered {status}"),
            ),
            SendOutcome::Refused { reason } => DeliveryOutcome::Refused { error: reason },
            SendOutcome::Failed { reason } => self.failed(delivery, None, reason),
        }
    }

    /// A failed attempt: retry later, or give up after the last.
    fn failed(
        &self,
        delivery: &ClaimedDelivery,
        status: Option<u16>,
        error: String,
    ) -> DeliveryOutcome {
        let made = delivery.attempts.saturating_add(1);
        if made >= self.policy.max_attempts {
            DeliveryOutcome::GiveUp { status, error }
        } else {
            DeliveryOutcome::Retry {
                after: self.policy.backoff(made, delivery.id),
                status,
                error,
            }
        }
    }
}

/// The document events webhooks subscribe to, queued for the document owner's webhooks. The body
/// carries ids only: the receiver reads the document through the API, as whoever it is.
#[async_trait::async_trait]
impl DocumentEvents for WebhookService {
    async fn publish(&self, event: DocumentEvent) {
        let (kind, data) = match &event.change {
            DocumentChange::Created => (
                WebhookEvent::DocumentCreated,
                json!({ "document_id": event.document_id, "version": 1 }),
            ),
            DocumentChange::Updated { version } => (
                WebhookEvent::DocumentUpdated,
                json!({ "document_id": event.document_id, "version": version }),
            ),
            DocumentChange::Deleted => (
                WebhookEvent::DocumentDeleted,
                json!({ "document_id": event.document_id }),
            ),
            DocumentChange::Shared {
                user_id,
                permission,
            } => (
                WebhookEvent::DocumentShared,
                json!({
                    "document_id": event.document_id,
                    "user_id": user_id,
                    "permission": permission.as_str(),
                }),
            ),
        };
        let occurred_at = event
            .occurred_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let payload = json!({
            "event": kind.as_str(),
            "occurred_at": occurred_at,
            "data": data,
        });
        if let Err(e) = self
            .ports
            .webhooks
            .enqueue(event.owner_id, kind, payload)
            .await
        {
            // The change is committed; see `crate::events` for why this is a log line and not an
            // error for the client.
            tracing::error!(
                error = ?e,
                document_id = %event.document_id,
                event = kind.as_str(),
                "could not queue webhook deliveries for a document event"
            );
        }
    }
}

/// `Forbidden` unless the actor may use `scope` (sessions have every scope).
fn require_scope(actor: &Actor, scope: Scope) -> Result<(), WebhookError> {
    if actor.has_scope(scope) {
        Ok(())
    } else {
        Err(WebhookError::Forbidden)
    }
}

/// Parses the event list: at least one, each known, none twice.
fn parse_events(raw: &[String]) -> Result<Vec<WebhookEvent>, FieldViolation> {
    if raw.is_empty() {
        return Err(FieldViolation::new(
            "events",
            "required",
            "Subscribe to at least one event.",
        ));
    }
    if raw.len() > MAX_EVENTS {
        return Err(FieldViolation::new(
            "events",
            "too_many",
            "List each event at most once.",
        ));
    }
    let mut events = Vec::with_capacity(raw.len());
    for r in raw {
        let e = WebhookEvent::parse(r)?;
        if events.contains(&e) {
            return Err(FieldViolation::new(
                "events",
                "duplicate",
                "List each event at most once.",
            ));
        }
        events.push(e);
    }
    Ok(events)
}

/// The audit detail naming a webhook's target: its origin only (the path and query may hold a
/// capability of the receiver's).
fn target_detail(url: &WebhookUrl) -> Result<AuditDetail, Unexpected> {
    AuditDetail::new()
        .with(
            "target",
            AuditValue::Text(format!("{}:{}", url.host_str(), url.port_or_default())),
        )
        .or_unexpected("audit detail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventType;

    #[test]
    fn every_audit_event_type_parses() {
        for name in events::ALL {
            assert!(EventType::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn events_must_be_known_listed_once_and_not_empty() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_events(&s(&["document.updated", "document.shared"])).unwrap(),
            vec![WebhookEvent::DocumentUpdated, WebhookEvent::DocumentShared]
        );
        assert_eq!(parse_events(&[]).unwrap_err().code, "required");
        assert_eq!(
            parse_events(&s(&["document.updated", "document.updated"]))
                .unwrap_err()
                .code,
            "duplicate"
        );
        assert_eq!(
            parse_events(&s(&["document.updated"; 5])).unwrap_err().code,
            "too_many"
        );
        assert_eq!(
            parse_events(&s(&[
                "document.created",
                "document.updated",
                "document.deleted",
                "document.shared"
            ]))
            .unwrap()
            .len(),
            4
        );
        assert_eq!(
            parse_events(&s(&["user.deleted"])).unwrap_err().code,
            "invalid"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_spreads_by_at_most_a_quarter() {
        let policy = DeliveryPolicy {
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(60),
            ..DeliveryPolicy::default()
        };
        let low = Uuid::from_bytes([0; 16]);
        let high = Uuid::from_bytes([0xff; 16]);
        assert_eq!(policy.backoff(1, low), Duration::from_secs(10));
        assert_eq!(policy.backoff(2, low), Duration::from_secs(20));
        assert_eq!(policy.backoff(3, low), Duration::from_secs(40));
        assert_eq!(policy.backoff(4, low), Duration::from_secs(60));
        assert_eq!(policy.backoff(u32::MAX, low), Duration::from_secs(60));
        assert_eq!(policy.backoff(1, high), Duration::from_millis(12_500));
    }
}
