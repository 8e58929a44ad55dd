//! The document use cases: every verb asks [`DocumentAccess`] first, and the answer decides between
//! doing it, `Forbidden` (the caller may see the document but not do this) and `NotFound` (the
//! caller may not see it — the same answer as for an id that does not exist).
//!
//! Denials are audited (`document.access_denied`): probing other people's ids is exactly what the
//! audit trail is for (ASVS 16.3.2).

use std::sync::Arc;

use uuid::Uuid;

use crate::api_key::Scope;
use crate::attachment::{
    Attachment, AttachmentRepository, CreateAttachmentError, NewAttachment, check_upload,
    sanitize_filename,
};
use crate::audit::{AuditDetail, AuditLog, AuditValue, NewAuditEvent, Outcome};
use crate::auth::{event, reason};
use crate::context::{Actor, Origin};
use crate::document::{
    CreateDocumentError, Document, DocumentAccess, DocumentBody, DocumentChanges, DocumentPage,
    DocumentQuery, DocumentRepository, DocumentTitle, HtmlSanitizer, NewDocument, Readable, Share,
    SharePermission, Tag, UpdateDocumentError, Visibility, parse_tags,
};
use crate::error::{OrUnexpected, Unexpected};
use crate::events::{DocumentChange, DocumentEvent, DocumentEvents, Notification, Topic};
use crate::flow::{Flow, FlowCaps, FlowLimiter};
use crate::policy::{self, Permission};
use crate::quota::{PlanLimits, QuotaKind};
use crate::user::FieldViolation;

/// The audit event types this module writes.
pub mod events {
    /// A document was shared (or a share's permission changed).
    pub const SHARED: &str = "document.shared";
    /// A share was removed.
    pub const UNSHARED: &str = "document.unshared";
    /// A document's visibility changed.
    pub const VISIBILITY_CHANGED: &str = "document.visibility_changed";
    /// A document was deleted.
    pub const DELETED: &str = "document.deleted";
    /// A caller was refused (a document it may not see, or may not change).
    pub const ACCESS_DENIED: &str = "document.access_denied";

    /// Every type above (a unit test parses them all).
    pub const ALL: [&str; 5] = [SHARED, UNSHARED, VISIBILITY_CHANGED, DELETED, ACCESS_DENIED];
}

use crate::listing;
pub use crate::listing::{DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY_CHARS, decode_cursor, encode_cursor};

/// A document as one caller sees it: the shares only for those who manage it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentView {
    /// The document.
    pub document: Document,
    /// Its shares, when the caller may see them.
    pub shares: Option<Vec<Share>>,
}

/// A new document as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct DocumentInput {
    /// Title.
    pub title: String,
    /// Body (HTML; sanitised).
    pub body: String,
    /// `private` (default), `shared` or `public`.
    pub visibility: Option<String>,
    /// Tags.
    pub tags: Option<Vec<String>>,
}

/// An update as the client sent it (absent fields stay as they are).
#[derive(Debug, Clone, Default)]
pub struct DocumentPatch {
    /// Title.
    pub title: Option<String>,
    /// Body.
    pub body: Option<String>,
    /// Visibility (owner and admins only).
    pub visibility: Option<String>,
    /// Tags.
    pub tags: Option<Vec<String>>,
}

/// A listing as the client asked for it.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Page size (1..=100; default 20).
    pub limit: Option<u32>,
    /// The opaque cursor of the previous page.
    pub cursor: Option<String>,
    /// Search in titles.
    pub q: Option<String>,
    /// Only this tag.
    pub tag: Option<String>,
    /// Only this owner's documents (GraphQL's `User.documents`).
    pub owner: Option<Uuid>,
}

/// Why a document operation failed, as far as the client may know.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Field errors, every one of them.
    #[error("invalid input")]
    Invalid(Vec<FieldViolation>),
    /// No such document, or one the caller may not see.
    #[error("no such document")]
    NotFound,
    /// The caller may see the document but not do this.
    #[error("not allowed")]
    Forbidden,
    /// The version given is not the current one.
    #[error("the document changed meanwhile")]
    Stale,
    /// The actor's plan allows no more of this.
    #[error("quota exceeded: {}", .0.as_str())]
    QuotaExceeded(QuotaKind),
    /// The actor did this too often lately (a sensitive flow's cap).
    #[error("too many requests")]
    RateLimited {
        /// How long until another is accepted.
        retry_after: std::time::Duration,
    },
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// Parses the listing parameters, reporting every bad one.
///
/// # Errors
/// The violations.
pub fn parse_list_request(request: &ListRequest) -> Result<DocumentQuery, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let limit = listing::limit(request.limit, &mut violations);
    let after = listing::cursor(request.cursor.as_deref(), &mut violations);
    let q = listing::search(request.q.as_deref(), &mut violations);
    let tag = match request.tag.as_deref() {
        None => None,
        Some(raw) => Tag::parse(raw)
            .map_err(|mut v| {
                v.field = "tag";
                violations.push(v);
            })
            .ok(),
    };
    if violations.is_empty() {
        Ok(DocumentQuery {
            limit,
            after,
            q,
            tag,
            owner: request.owner,
        })
    } else {
        Err(violations)
    }
}

/// `Forbidden` unless the actor may use `scope` (an API key without it; sessions have every
/// scope). Checked before anything is read, so it says nothing about any document.
fn require_scope(actor: &Actor, scope: Scope) -> Result<(), DocumentError> {
    if actor.has_scope(scope) {
        Ok(())
    } else {
        Err(DocumentError::Forbidden)
    }
}

/// The value, or `None` with its violation recorded.
fn keep<T>(violations: &mut Vec<FieldViolation>, result: Result<T, FieldViolation>) -> Option<T> {
    result.map_err(|v| violations.push(v)).ok()
}

/// The ports of the document service.
#[derive(Debug, Clone)]
pub struct DocumentPorts {
    /// Documents and shares.
    pub documents: Arc<dyn DocumentRepository>,
    /// The HTML allowlist.
    pub sanitizer: Arc<dyn HtmlSanitizer>,
    /// The audit trail.
    pub audit: Arc<dyn AuditLog>,
    /// Attachments.
    pub attachments: Arc<dyn AttachmentRepository>,
    /// Quotas by plan.
    pub limits: PlanLimits,
    /// Flow counters (the cap on sharing).
    pub flows: Arc<dyn FlowLimiter>,
    /// Flow caps.
    pub flow_caps: FlowCaps,
    /// Where changes are told (webhooks, and later the live fan-out).
    pub events: Arc<dyn DocumentEvents>,
}

/// Documents: create, read, list, update, delete, share.
#[derive(Debug, Clone)]
pub struct DocumentService {
    ports: DocumentPorts,
}

impl DocumentService {
    /// A service over these ports.
    #[must_use]
    pub fn new(ports: DocumentPorts) -> Self {
        Self { ports }
    }

    async fn record(&self, event: NewAuditEvent) -> Result<(), Unexpected> {
        self.ports.audit.record(event).await.or_unexpected("audit")
    }

    /// The document and what the actor may do with it; `NotFound` (audited when the document
    /// exists) unless the actor may read it.
    async fn load(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        attempted: &'static str,
    ) -> Result<(crate::document::SharedDocument, DocumentAccess), DocumentError> {
        let Some(doc) = self
            .ports
            .documents
            .find(id)
            .await
            .or_unexpected("document lookup")?
        else {
            return Err(DocumentError::NotFound);
        };
        let access = DocumentAccess::of(actor, &doc);
        if !access.read {
            self.deny(actor, origin, id, attempted).await?;
            return Err(DocumentError::NotFound);
        }
        Ok((doc, access))
    }

    async fn deny(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        attempted: &'static str,
    ) -> Result<(), Unexpected> {
        self.record(
            event(origin, events::ACCESS_DENIED, Outcome::Denied)?
                .with_actor(actor.user_id)
                .with_subject("document", id)
                .with_detail(reason(attempted)?),
        )
        .await
    }

    async fn publish(&self, document_id: Uuid, owner_id: Uuid, change: DocumentChange) {
        self.ports
            .events
            .publish(DocumentEvent {
                document_id,
                owner_id,
                change,
                occurred_at: time::OffsetDateTime::now_utc(),
            })
            .await;
    }

    fn view(access: DocumentAccess, doc: crate::document::SharedDocument) -> DocumentView {
        DocumentView {
            shares: access.see_shares.then_some(doc.shares),
            document: doc.document,
        }
    }

    /// Creates a document owned by the actor.
    ///
    /// # Errors
    /// `Invalid` listing every bad field; `QuotaExceeded`; `Unexpected`.
    pub async fn create(
        &self,
        actor: &Actor,
        input: DocumentInput,
    ) -> Result<DocumentView, DocumentError> {
        require_scope(actor, Scope::DocumentsWrite)?;
        let title = DocumentTitle::parse(&input.title);
        let body = DocumentBody::parse(&input.body, self.ports.sanitizer.as_ref());
        let visibility = input
            .visibility
            .as_deref()
            .map_or(Ok(Visibility::Private), Visibility::parse);
        let tags = parse_tags(input.tags.as_deref().unwrap_or_default());
        let (Ok(title), Ok(body), Ok(visibility), Ok(tags)) = (&title, &body, &visibility, &tags)
        else {
            let violations = [title.err(), body.err(), visibility.err(), tags.err()]
                .into_iter()
                .flatten()
                .collect();
            return Err(DocumentError::Invalid(violations));
        };
        let document = self
            .ports
            .documents
            .create(
                actor.user_id,
                NewDocument {
                    title: title.clone(),
                    body: body.clone(),
                    visibility: *visibility,
                    tags: tags.clone(),
                },
                &self.ports.limits,
            )
            .await
            .map_err(|e| match e {
                CreateDocumentError::QuotaExceeded => {
                    DocumentError::QuotaExceeded(QuotaKind::Documents)
                }
                CreateDocumentError::Store(e) => Unexpected::new("document create", e).into(),
            })?;
        self.publish(document.id, document.owner_id, DocumentChange::Created)
            .await;
        Ok(DocumentView {
            document,
            shares: Some(Vec::new()),
        })
    }

    /// One document.
    ///
    /// # Errors
    /// `NotFound` unless the actor may read it; `Unexpected`.
    pub async fn get(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
    ) -> Result<DocumentView, DocumentError> {
        require_scope(actor, Scope::DocumentsRead)?;
        let (doc, access) = self.load(actor, origin, id, "read").await?;
        Ok(Self::view(access, doc))
    }

    /// Whether the actor may be told of a live notification, decided now, through the same
    /// policy as a read. Live transports ask this before *every* event they deliver, so access
    /// lost after subscribing (unshared, made private, demoted, key scope) stops the events.
    ///
    /// Two differences from [`get`](Self::get), both deliberate:
    /// - A refusal is not audited. The client asked for nothing; an audit row per dropped event
    ///   would let one busy document fill the log.
    /// - A deletion cannot be re-read (the document and its shares are gone), so it is told only
    ///   to whom a deleted document would still answer: its owner, and those who may read every
    ///   document. Others who could read it learn it from their next read (404), which is what
    ///   they would see had access been withdrawn instead. Deny when unsure.
    ///
    /// Never fails: a lookup error is logged and answers no.
    pub async fn may_hear(&self, actor: &Actor, notification: &Notification) -> bool {
        if !actor.has_scope(Scope::DocumentsRead) {
            return false;
        }
        let Topic::Document(id) = notification.topic;
        if notification.is_deletion() {
            return actor.user_id == notification.owner_id
                || policy::allows(actor, Permission::DocumentsReadAny);
        }
        match self.ports.documents.find(id).await {
            Ok(Some(doc)) => DocumentAccess::of(actor, &doc).read,
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(error = ?error, "live event check failed; event dropped");
                false
            }
        }
    }

    /// A page of the documents the actor may read.
    ///
    /// # Errors
    /// `Invalid` for bad parameters; `Unexpected`.
    pub async fn list(
        &self,
        actor: &Actor,
        request: &ListRequest,
    ) -> Result<DocumentPage, DocumentError> {
        require_scope(actor, Scope::DocumentsRead)?;
        let query = parse_list_request(request).map_err(DocumentError::Invalid)?;
        let readable = Readable {
            user_id: actor.user_id,
            any: policy::allows(actor, Permission::DocumentsReadAny),
        };
        Ok(self
            .ports
            .documents
            .list(readable, &query)
            .await
            .or_unexpected("document list")?)
    }

    /// Changes a document at `version`. Title, body and tags need write access; visibility needs
    /// the owner's (or an admin's).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, `Invalid`, `Stale`, `Unexpected`.
    pub async fn update(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        version: i32,
        patch: DocumentPatch,
    ) -> Result<DocumentView, DocumentError> {
        require_scope(actor, Scope::DocumentsWrite)?;
        let (doc, access) = self.load(actor, origin, id, "update").await?;
        let allowed = access.write && (patch.visibility.is_none() || access.manage);
        if !allowed {
            self.deny(actor, origin, id, "update").await?;
            return Err(DocumentError::Forbidden);
        }
        let mut violations = Vec::new();
        let v = &mut violations;
        let sanitizer = self.ports.sanitizer.as_ref();
        let changes = DocumentChanges {
            title: patch
                .title
                .as_deref()
                .and_then(|t| keep(v, DocumentTitle::parse(t))),
            body: patch
                .body
                .as_deref()
                .and_then(|b| keep(v, DocumentBody::parse(b, sanitizer))),
            visibility: patch
                .visibility
                .as_deref()
                .and_then(|x| keep(v, Visibility::parse(x))),
            tags: patch.tags.as_deref().and_then(|t| keep(v, parse_tags(t))),
        };
        if !violations.is_empty() {
            return Err(DocumentError::Invalid(violations));
        }
        let visibility_changed = changes
            .visibility
            .is_some_and(|v| v != doc.document.visibility);
        let updated = self
            .ports
            .documents
            .update(id, version, changes)
            .await
            .map_err(|e| match e {
                UpdateDocumentError::NotFound => DocumentError::NotFound,
                UpdateDocumentError::Stale => DocumentError::Stale,
                UpdateDocumentError::Store(e) => Unexpected::new("document update", e).into(),
            })?;
        if visibility_changed {
            let detail = AuditDetail::new()
                .with(
                    "visibility",
                    AuditValue::Text(updated.visibility.as_str().to_owned()),
                )
                .or_unexpected("audit detail")?;
            self.record(
                event(origin, events::VISIBILITY_CHANGED, Outcome::Success)?
                    .with_actor(actor.user_id)
                    .with_subject("document", id)
                    .with_detail(detail),
            )
            .await?;
        }
        self.publish(
            id,
            updated.owner_id,
            DocumentChange::Updated {
                version: updated.version,
            },
        )
        .await;
        Ok(DocumentView {
            document: updated,
            shares: access.see_shares.then_some(doc.shares),
        })
    }

    /// Deletes a document (owner or admin).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, `Unexpected`.
    pub async fn delete(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
    ) -> Result<(), DocumentError> {
        require_scope(actor, Scope::DocumentsWrite)?;
        let (doc, access) = self.load(actor, origin, id, "delete").await?;
        if !access.manage {
            self.deny(actor, origin, id, "delete").await?;
            return Err(DocumentError::Forbidden);
        }
        if !self
            .ports
            .documents
            .delete(id)
            .await
            .or_unexpected("document delete")?
        {
            return Err(DocumentError::NotFound);
        }
        self.record(
            event(origin, events::DELETED, Outcome::Success)?
                .with_actor(actor.user_id)
                .with_subject("document", id),
        )
        .await?;
        self.publish(id, doc.document.owner_id, DocumentChange::Deleted)
            .await;
        Ok(())
    }

    /// Shares a document with a user (owner or admin).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, `Invalid` (unknown user, the owner itself, bad permission),
    /// `RateLimited` past the per-user cap on shares, `Unexpected`.
    pub async fn share(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        user_id: Uuid,
        permission: &str,
    ) -> Result<Share, DocumentError> {
        require_scope(actor, Scope::DocumentsWrite)?;
        let (doc, access) = self.load(actor, origin, id, "share").await?;
        if !access.manage {
            self.deny(actor, origin, id, "share").await?;
            return Err(DocumentError::Forbidden);
        }
        let permission =
            SharePermission::parse(permission).map_err(|v| DocumentError::Invalid(vec![v]))?;
        let unknown_user = || {
            DocumentError::Invalid(vec![FieldViolation::new(
                "user_id",
                "unknown_user",
                "There is no user with this id (or it is the document's owner).",
            )])
        };
        if user_id == doc.document.owner_id {
            return Err(unknown_user());
        }
        // Sharing grants someone access without asking them: capped per user (OWASP API6).
        if let Err(retry_after) = self
            .ports
            .flows
            .try_record(actor.user_id, Flow::Share, self.ports.flow_caps.share)
            .await
            .or_unexpected("flow cap")?
        {
            return Err(DocumentError::RateLimited { retry_after });
        }
        let share = Share {
            user_id,
            permission,
        };
        if !self
            .ports
            .documents
            .share(id, share.clone())
            .await
            .or_unexpected("document share")?
        {
            return Err(unknown_user());
        }
        let detail = AuditDetail::new()
            .with("with_user", AuditValue::Text(user_id.to_string()))
            .and_then(|d| {
                d.with(
                    "permission",
                    AuditValue::Text(permission.as_str().to_owned()),
                )
            })
            .or_unexpected("audit detail")?;
        self.record(
            event(origin, events::SHARED, Outcome::Success)?
                .with_actor(actor.user_id)
                .with_subject("document", id)
                .with_detail(detail),
        )
        .await?;
        self.publish(
            id,
            doc.document.owner_id,
            DocumentChange::Shared {
                user_id,
                permission,
            },
        )
        .await;
        Ok(share)
    }

    /// Removes a share (owner or admin).
    ///
    /// # Errors
    /// `NotFound` (also when there is no such share), `Forbidden`, `Unexpected`.
    pub async fn unshare(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        user_id: Uuid,
    ) -> Result<(), DocumentError> {
        require_scope(actor, Scope::DocumentsWrite)?;
        let (_, access) = self.load(actor, origin, id, "unshare").await?;
        if !access.manage {
            self.deny(actor, origin, id, "unshare").await?;
            return Err(DocumentError::Forbidden);
        }
        if !self
            .ports
            .documents
            .unshare(id, user_id)
            .await
            .or_unexpected("document unshare")?
        {
            return Err(DocumentError::NotFound);
        }
        let detail = AuditDetail::new()
            .with("with_user", AuditValue::Text(user_id.to_string()))
            .or_unexpected("audit detail")?;
        self.record(
            event(origin, events::UNSHARED, Outcome::Success)?
                .with_actor(actor.user_id)
                .with_subject("document", id)
                .with_detail(detail),
        )
        .await?;
        Ok(())
    }

    /// Whether the actor may attach files to the document — asked before an upload is read, so a
    /// stranger's upload is refused without its body ever being buffered.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, `Unexpected`.
    pub async fn authorize_attach(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
    ) -> Result<(), DocumentError> {
        require_scope(actor, Scope::DocumentsWrite)?;
        let (_, access) = self.load(actor, origin, id, "attach").await?;
        if !access.write {
            self.deny(actor, origin, id, "attach").await?;
            return Err(DocumentError::Forbidden);
        }
        Ok(())
    }

    /// Attaches a file (writers: the owner, a write share, an admin). The type is sniffed from the
    /// bytes; the name is sanitised; the bytes count against the document owner's quota.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, `Invalid` (empty, too large, type not allowed), `QuotaExceeded`,
    /// `Unexpected`.
    pub async fn attach(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        filename: &str,
        content: Vec<u8>,
    ) -> Result<Attachment, DocumentError> {
        require_scope(actor, Scope::DocumentsWrite)?;
        let (doc, access) = self.load(actor, origin, id, "attach").await?;
        if !access.write {
            self.deny(actor, origin, id, "attach").await?;
            return Err(DocumentError::Forbidden);
        }
        let content_type = check_upload(&content).map_err(|v| DocumentError::Invalid(vec![v]))?;
        self.ports
            .attachments
            .create(
                NewAttachment {
                    document_id: id,
                    owner_id: doc.document.owner_id,
                    filename: sanitize_filename(filename),
                    content_type,
                    content,
                },
                &self.ports.limits,
            )
            .await
            .map_err(|e| match e {
                CreateAttachmentError::QuotaExceeded => {
                    DocumentError::QuotaExceeded(QuotaKind::AttachmentBytes)
                }
                CreateAttachmentError::Store(e) => Unexpected::new("attachment create", e).into(),
            })
    }

    /// An attachment with its bytes, for anyone who may read the document.
    ///
    /// # Errors
    /// `NotFound` (no such document or attachment, or not readable), `Unexpected`.
    pub async fn attachment(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        attachment_id: Uuid,
    ) -> Result<(Attachment, Vec<u8>), DocumentError> {
        require_scope(actor, Scope::DocumentsRead)?;
        self.load(actor, origin, id, "download").await?;
        self.ports
            .attachments
            .find(id, attachment_id)
            .await
            .or_unexpected("attachment lookup")?
            .ok_or(DocumentError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventType;
    use crate::document::Cursor;

    #[test]
    fn every_event_type_parses() {
        for name in events::ALL {
            assert!(EventType::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn cursors_round_trip_and_anything_else_is_refused() {
        let cursor = Cursor {
            created_at: time::OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_456_789)
                .unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor)).unwrap(), cursor);
        for bad in [
            "",
            "c1",
            "c1.1.2",
            "c2.1.00000000000000000000000000000000",
            "c1.x.00000000000000000000000000000000",
            "c1.1.00000000000000000000000000000000.extra",
            "' OR 1=1--",
            "c1.99999999999999999999999999999999999.00000000000000000000000000000000",
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn list_parameters_are_checked_together() {
        let ok = parse_list_request(&ListRequest::default()).unwrap();
        assert_eq!(ok.limit, DEFAULT_LIMIT);
        let bad = parse_list_request(&ListRequest {
            limit: Some(101),
            cursor: Some("nope".into()),
            q: Some("a\u{0}b".into()),
            tag: Some("Not A Tag".into()),
            owner: None,
        })
        .unwrap_err();
        let fields: Vec<&str> = bad.iter().map(|v| v.field).collect();
        assert_eq!(fields, vec!["limit", "cursor", "q", "tag"]);
        let literal = parse_list_request(&ListRequest {
            q: Some("100%_\\' OR 1=1--".into()),
            ..ListRequest::default()
        })
        .unwrap();
        assert_eq!(literal.q.as_deref(), Some("100%_\\' OR 1=1--"));
    }
}
