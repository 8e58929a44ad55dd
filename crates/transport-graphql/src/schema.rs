//! The GraphQL schema: the same domain services as REST, with no authorisation logic of its own.
//!
//! Every resolver takes the request's [`Actor`] (if any) and calls a domain service; the service
//! decides (object level: `DocumentAccess`; function level: `policy::allows`; fields:
//! `policy::may_see_private_profile` and `DocumentAccess::see_shares`). A field the caller may not
//! see resolves to `null` with a `FORBIDDEN` error. Errors carry `extensions.code` (`UNAUTHENTICATED`,
//! `FORBIDDEN`, `NOT_FOUND`, `BAD_USER_INPUT`, `RATE_LIMITED`, `SERVICE_UNAVAILABLE`, `INTERNAL`); an unexpected failure is
//! logged with its cause and reaches the client as `INTERNAL` with a fixed message.
//!
//! The schema is recursive on purpose (`Document.owner.documents…`): depth and complexity limits
//! are set where it is built ([`build`]), and every list argument multiplies the cost of what it
//! selects, so a deep or wide query is refused before it runs.

use std::sync::Arc;

use async_graphql::{
    Context, Enum, ErrorExtensions, ID, InputObject, Object, Schema, SimpleObject, Subscription,
};
use bulwark_domain::account::{AccountError, AccountService};
use bulwark_domain::admin::{
    AdminError, AdminService, AuditListRequest, UserListRequest, encode_audit_cursor,
};
use bulwark_domain::context::{Actor, Origin};
use bulwark_domain::document::{Document, Share, SharePermission, Visibility as DomainVisibility};
use bulwark_domain::documents::{
    DocumentError, DocumentInput, DocumentPatch, DocumentService, DocumentView, ListRequest,
    encode_cursor,
};
use bulwark_domain::error::Unexpected;
use bulwark_domain::events::{CREATED, DELETED, Notification, SHARED, Topic, UPDATED};
use bulwark_domain::policy;
use bulwark_domain::user::{FieldViolation, Role as DomainRole, User};
use futures_util::Stream;
use time::format_description::well_known::Rfc3339;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use crate::armour::Limits;

/// The schema type.
pub type BulwarkSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Who is asking, per request (inserted by the HTTP adapter).
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The authenticated caller, if any.
    pub actor: Option<Actor>,
    /// Where the request comes from.
    pub origin: Origin,
}

/// The services the resolvers call.
#[derive(Debug, Clone)]
pub struct Services {
    /// Documents.
    pub documents: DocumentService,
    /// Accounts (profiles).
    pub accounts: AccountService,
    /// Administration.
    pub admin: AdminService,
    /// The live notifications of every instance (the app's fan-out), for subscriptions.
    pub notifications: NotificationSource,
}

/// Where a subscription gets the live notifications from: a new receiver of the fan-out per
/// subscription.
#[derive(Clone)]
pub struct NotificationSource(Arc<dyn Fn() -> broadcast::Receiver<Notification> + Send + Sync>);

impl NotificationSource {
    /// A source calling `subscribe` once per subscription.
    pub fn new(
        subscribe: impl Fn() -> broadcast::Receiver<Notification> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(subscribe))
    }

    fn subscribe(&self) -> broadcast::Receiver<Notification> {
        (self.0)()
    }
}

impl std::fmt::Debug for NotificationSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotificationSource")
    }
}

/// Builds the schema with the limits that the executor enforces (depth, complexity) and, outside
/// development, without introspection or "did you mean" suggestions (which would map the schema
/// for an attacker).
#[must_use]
pub fn build(services: Services, limits: &Limits, development: bool) -> BulwarkSchema {
    let builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(services)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(64)
        .limit_directives(10);
    let builder = if development {
        builder
    } else {
        builder.disable_introspection().disable_suggestions()
    };
    builder.finish()
}

/// The SDL checked in at `openapi/schema.graphql` (a test compares them).
#[must_use]
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .finish()
        .sdl()
}

// --- errors -------------------------------------------------------------------------------------

/// The error codes of the contract.
pub mod codes {
    /// No valid credentials.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// Authenticated, not allowed.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// No such object, or one the caller may not see.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// Invalid arguments.
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    /// Too many requests.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// A dependency (the database) is unreachable right now: retry shortly.
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    /// Anything else; never details.
    pub const INTERNAL: &str = "INTERNAL";
}

fn coded(message: &str, code: &'static str) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

fn unauthenticated() -> async_graphql::Error {
    coded("Authentication required.", codes::UNAUTHENTICATED)
}

fn forbidden() -> async_graphql::Error {
    coded("You are not allowed to do this.", codes::FORBIDDEN)
}

fn not_found() -> async_graphql::Error {
    coded("Not found.", codes::NOT_FOUND)
}

fn internal(error: &Unexpected) -> async_graphql::Error {
    if error.is_unavailable() {
        tracing::error!(error = ?error, "GraphQL resolver: a dependency is unavailable");
        return coded(
            "The service cannot complete this request right now; retry shortly.",
            codes::SERVICE_UNAVAILABLE,
        );
    }
    tracing::error!(error = ?error, "GraphQL resolver failed");
    coded("Internal error.", codes::INTERNAL)
}

fn invalid(violations: Vec<FieldViolation>) -> async_graphql::Error {
    let errors: Vec<async_graphql::Value> = violations
        .iter()
        .map(|v| {
            let mut map = async_graphql::indexmap::IndexMap::new();
            map.insert(
                async_graphql::Name::new("field"),
                async_graphql::Value::from(v.field),
            );
            map.insert(
                async_graphql::Name::new("code"),
                async_graphql::Value::from(v.code),
            );
            map.insert(
                async_graphql::Name::new("message"),
                async_graphql::Value::from(v.message.clone()),
            );
            async_graphql::Value::Object(map)
        })
        .collect();
    async_graphql::Error::new("Invalid input.").extend_with(move |_, e| {
        e.set("code", codes::BAD_USER_INPUT);
        e.set("errors", async_graphql::Value::List(errors.clone()));
    })
}

fn document_error(error: DocumentError) -> async_graphql::Error {
    match error {
        DocumentError::Invalid(violations) => invalid(violations),
        DocumentError::NotFound => not_found(),
        DocumentError::Forbidden => forbidden(),
        DocumentError::Stale => coded(
            "The document changed since you read it; fetch it again and retry.",
            codes::BAD_USER_INPUT,
        ),
        DocumentError::QuotaExceeded(kind) => coded(
            &format!("Your plan allows no more {}.", kind.as_str()),
            codes::FORBIDDEN,
        ),
        DocumentError::RateLimited { .. } => coded(
            "You did this too often lately; retry later.",
            codes::RATE_LIMITED,
        ),
        DocumentError::Unexpected(e) => internal(&e),
    }
}

fn admin_error(error: AdminError) -> async_graphql::Error {
    match error {
        AdminError::Invalid(violations) => invalid(violations),
        AdminError::Forbidden => forbidden(),
        AdminError::NotFound => not_found(),
        AdminError::Unexpected(e) => internal(&e),
    }
}

fn account_error(error: AccountError) -> async_graphql::Error {
    match error {
        AccountError::NotFound => unauthenticated(),
        AccountError::SessionRequired | AccountError::ReauthenticationRequired => forbidden(),
        AccountError::Invalid(violations) => invalid(violations),
        AccountError::Unexpected(e) => internal(&e),
        _ => forbidden(),
    }
}

fn request<'a>(ctx: &'a Context<'_>) -> Result<&'a RequestContext, async_graphql::Error> {
    ctx.data::<RequestContext>()
        .map_err(|_| coded("Internal error.", codes::INTERNAL))
}

fn actor(ctx: &Context<'_>) -> Result<Actor, async_graphql::Error> {
    request(ctx)?.actor.ok_or_else(unauthenticated)
}

fn services<'a>(ctx: &'a Context<'_>) -> Result<&'a Services, async_graphql::Error> {
    ctx.data::<Services>()
        .map_err(|_| coded("Internal error.", codes::INTERNAL))
}

/// An id argument: a malformed one names nothing that exists.
fn object_id(id: &ID) -> Result<Uuid, async_graphql::Error> {
    Uuid::parse_str(id).map_err(|_| not_found())
}

fn timestamp(at: time::OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Page sizes: `first` 1..=100 (default 20), as in REST.
fn page_size(first: Option<i32>) -> Result<Option<u32>, async_graphql::Error> {
    match first {
        None => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| {
            invalid(vec![FieldViolation {
                field: "first",
                code: "out_of_range",
                message: "`first` is between 1 and 100.".to_owned(),
            }])
        }),
    }
}

// --- types --------------------------------------------------------------------------------------

/// Who may see a document.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Visibility {
    /// The owner (and those who manage any document) only.
    Private,
    /// Also the users it is shared with.
    Shared,
    /// Everyone signed in.
    Public,
}

impl From<DomainVisibility> for Visibility {
    fn from(v: DomainVisibility) -> Self {
        match v {
            DomainVisibility::Private => Self::Private,
            DomainVisibility::Shared => Self::Shared,
            DomainVisibility::Public => Self::Public,
        }
    }
}

impl Visibility {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Shared => "shared",
            Self::Public => "public",
        }
    }
}

/// What a share allows.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "SharePermission")]
pub enum Permission {
    /// Read.
    Read,
    /// Read, and change title, body and tags.
    Write,
}

impl From<SharePermission> for Permission {
    fn from(p: SharePermission) -> Self {
        match p {
            SharePermission::Read => Self::Read,
            SharePermission::Write => Self::Write,
        }
    }
}

/// A user's role.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Role {
    /// A user.
    User,
    /// Reads any document.
    Moderator,
    /// Everything.
    Admin,
}

impl From<DomainRole> for Role {
    fn from(r: DomainRole) -> Self {
        match r {
            DomainRole::User => Self::User,
            DomainRole::Moderator => Self::Moderator,
            DomainRole::Admin => Self::Admin,
        }
    }
}

/// One share of a document.
#[derive(SimpleObject, Debug)]
#[graphql(name = "Share")]
pub struct ShareObject {
    /// With whom.
    pub user_id: ID,
    /// What it allows.
    pub permission: Permission,
}

impl From<Share> for ShareObject {
    fn from(share: Share) -> Self {
        Self {
            user_id: ID(share.user_id.to_string()),
            permission: share.permission.into(),
        }
    }
}

/// Relay page information.
#[derive(SimpleObject, Debug)]
pub struct PageInfo {
    /// Whether there is a next page.
    pub has_next_page: bool,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
}

impl PageInfo {
    /// A page that continues after `end_cursor` (none: the last page).
    fn ending_at(end_cursor: Option<String>) -> Self {
        Self {
            has_next_page: end_cursor.is_some(),
            end_cursor,
        }
    }
}

/// A document in a connection.
#[derive(SimpleObject, Debug)]
pub struct DocumentEdge {
    /// The document.
    pub node: DocumentObject,
    /// Its position.
    pub cursor: String,
}

/// A page of documents (Relay connection).
#[derive(SimpleObject, Debug)]
pub struct DocumentConnection {
    /// The documents, newest first.
    pub edges: Vec<DocumentEdge>,
    /// Paging.
    pub page_info: PageInfo,
}

async fn document_page(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
    q: Option<String>,
    tag: Option<String>,
    owner: Option<Uuid>,
) -> Result<DocumentConnection, async_graphql::Error> {
    let actor = actor(ctx)?;
    let page = services(ctx)?
        .documents
        .list(
            &actor,
            &ListRequest {
                limit: page_size(first)?,
                cursor: after,
                q,
                tag,
                owner,
            },
        )
        .await
        .map_err(document_error)?;
    let end_cursor = page.next.as_ref().map(encode_cursor);
    Ok(DocumentConnection {
        edges: page
            .items
            .into_iter()
            .map(|document| DocumentEdge {
                cursor: encode_cursor(&bulwark_domain::document::Cursor {
                    created_at: document.created_at,
                    id: document.id,
                }),
                node: DocumentObject {
                    document,
                    shares: None,
                },
            })
            .collect(),
        page_info: PageInfo::ending_at(end_cursor),
    })
}

/// A document.
#[derive(Debug, Clone)]
pub struct DocumentObject {
    document: Document,
    shares: Option<Vec<Share>>,
}

impl From<DocumentView> for DocumentObject {
    fn from(view: DocumentView) -> Self {
        Self {
            document: view.document,
            shares: view.shares,
        }
    }
}

#[Object(name = "Document")]
impl DocumentObject {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.document.id.to_string())
    }

    /// Title.
    async fn title(&self) -> &str {
        self.document.title.as_str()
    }

    /// Body: HTML sanitised to an allowlist.
    async fn body(&self) -> &str {
        self.document.body.as_str()
    }

    /// Who may see it.
    async fn visibility(&self) -> Visibility {
        self.document.visibility.into()
    }

    /// Tags.
    async fn tags(&self) -> Vec<&str> {
        self.document.tags.iter().map(|t| t.as_str()).collect()
    }

    /// The owner (their public profile).
    async fn owner(&self, ctx: &Context<'_>) -> Result<UserObject, async_graphql::Error> {
        let user = services(ctx)?
            .accounts
            .profile(self.document.owner_id)
            .await
            .map_err(account_error)?
            .ok_or_else(not_found)?;
        Ok(UserObject { user })
    }

    /// Created (RFC 3339).
    async fn created_at(&self) -> String {
        timestamp(self.document.created_at)
    }

    /// Last changed (RFC 3339).
    async fn updated_at(&self) -> String {
        timestamp(self.document.updated_at)
    }

    /// Bumped by every change; pass it to `updateDocument`.
    async fn version(&self) -> i32 {
        self.document.version
    }

    /// Who it is shared with — for its owner and those who manage any document; `null` with a
    /// `FORBIDDEN` error for anyone else (and in listings, where shares are not loaded).
    async fn shares(&self) -> Result<Option<Vec<ShareObject>>, async_graphql::Error> {
        match &self.shares {
            Some(shares) => Ok(Some(
                shares.iter().cloned().map(ShareObject::from).collect(),
            )),
            None => Err(forbidden()),
        }
    }
}

/// A user.
#[derive(Debug, Clone)]
pub struct UserObject {
    user: User,
}

#[Object(name = "User")]
impl UserObject {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.user.id.to_string())
    }

    /// The public name.
    async fn display_name(&self) -> &str {
        self.user.display_name.as_str()
    }

    /// The email — for the user itself and those who may read users; `null` with `FORBIDDEN`
    /// for anyone else.
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<&str>, async_graphql::Error> {
        if policy::may_see_private_profile(&actor(ctx)?, self.user.id) {
            Ok(Some(self.user.email.as_str()))
        } else {
            Err(forbidden())
        }
    }

    /// The role — likewise.
    async fn role(&self, ctx: &Context<'_>) -> Result<Option<Role>, async_graphql::Error> {
        if policy::may_see_private_profile(&actor(ctx)?, self.user.id) {
            Ok(Some(self.user.role.into()))
        } else {
            Err(forbidden())
        }
    }

    /// This user's documents that the *caller* may read, newest first.
    #[graphql(complexity = "first.map_or(20, |n| n.clamp(0, 100) as usize) * child_complexity")]
    async fn documents(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<DocumentConnection, async_graphql::Error> {
        document_page(ctx, first, after, None, None, Some(self.user.id)).await
    }
}

/// An administrator's view of a user.
#[derive(SimpleObject, Debug)]
pub struct AdminUser {
    /// Id.
    pub id: ID,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Locked by an administrator.
    pub locked: bool,
    /// `free` or `pro`.
    pub plan: String,
    /// Whether MFA is on.
    pub mfa_enabled: bool,
    /// Created (RFC 3339).
    pub created_at: String,
}

/// A page of users.
#[derive(SimpleObject, Debug)]
pub struct AdminUserConnection {
    /// The users.
    pub nodes: Vec<AdminUser>,
    /// Paging.
    pub page_info: PageInfo,
}

/// One audit event.
#[derive(SimpleObject, Debug)]
pub struct AuditEvent {
    /// Position in the trail.
    pub id: ID,
    /// When (RFC 3339).
    pub occurred_at: String,
    /// What.
    pub event_type: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// Who acted.
    pub actor_user_id: Option<ID>,
    /// The request id.
    pub request_id: Option<String>,
}

/// A page of audit events.
#[derive(SimpleObject, Debug)]
pub struct AuditEventConnection {
    /// The events, newest first.
    pub nodes: Vec<AuditEvent>,
    /// Paging.
    pub page_info: PageInfo,
}

// --- roots --------------------------------------------------------------------------------------

/// Queries.
#[derive(Debug, Default)]
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The caller.
    async fn me(&self, ctx: &Context<'_>) -> Result<UserObject, async_graphql::Error> {
        let actor = actor(ctx)?;
        let user = services(ctx)?
            .accounts
            .me(&actor)
            .await
            .map_err(account_error)?;
        Ok(UserObject { user })
    }

    /// One document — `null` with `NOT_FOUND` if it does not exist or the caller may not read it.
    async fn document(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<Option<DocumentObject>, async_graphql::Error> {
        let actor = actor(ctx)?;
        let request = request(ctx)?;
        let view = services(ctx)?
            .documents
            .get(&actor, &request.origin, object_id(&id)?)
            .await
            .map_err(document_error)?;
        Ok(Some(view.into()))
    }

    /// The documents the caller may read, newest first.
    #[graphql(complexity = "first.map_or(20, |n| n.clamp(0, 100) as usize) * child_complexity")]
    async fn documents(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        q: Option<String>,
        tag: Option<String>,
    ) -> Result<DocumentConnection, async_graphql::Error> {
        document_page(ctx, first, after, q, tag, None).await
    }

    /// Users (administrators).
    #[graphql(complexity = "first.map_or(20, |n| n.clamp(0, 100) as usize) * child_complexity")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        q: Option<String>,
    ) -> Result<AdminUserConnection, async_graphql::Error> {
        let actor = actor(ctx)?;
        let page = services(ctx)?
            .admin
            .list_users(
                &actor,
                &UserListRequest {
                    limit: page_size(first)?,
                    cursor: after,
                    q,
                },
            )
            .await
            .map_err(admin_error)?;
        let end_cursor = page.next.as_ref().map(encode_cursor);
        Ok(AdminUserConnection {
            nodes: page
                .items
                .into_iter()
                .map(|s| AdminUser {
                    id: ID(s.user.id.to_string()),
                    email: s.user.email.as_str().to_owned(),
                    display_name: s.user.display_name.as_str().to_owned(),
                    role: s.user.role.into(),
                    locked: s.user.locked,
                    plan: s.plan.as_str().to_owned(),
                    mfa_enabled: s.user.mfa_enabled,
                    created_at: timestamp(s.user.created_at),
                })
                .collect(),
            page_info: PageInfo::ending_at(end_cursor),
        })
    }

    /// The audit trail (administrators).
    #[graphql(complexity = "first.map_or(20, |n| n.clamp(0, 100) as usize) * child_complexity")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<AuditEventConnection, async_graphql::Error> {
        let actor = actor(ctx)?;
        let page = services(ctx)?
            .admin
            .audit_events(
                &actor,
                &AuditListRequest {
                    limit: page_size(first)?,
                    cursor: after,
                    ..AuditListRequest::default()
                },
            )
            .await
            .map_err(admin_error)?;
        let end_cursor = page.next_before_id.map(encode_audit_cursor);
        Ok(AuditEventConnection {
            nodes: page
                .items
                .into_iter()
                .map(|e| AuditEvent {
                    id: ID(e.id.to_string()),
                    occurred_at: timestamp(e.occurred_at),
                    event_type: e.event_type,
                    outcome: e.outcome,
                    actor_user_id: e.actor_user_id.map(|u| ID(u.to_string())),
                    request_id: e.request_id,
                })
                .collect(),
            page_info: PageInfo::ending_at(end_cursor),
        })
    }
}

/// A new document.
#[derive(InputObject, Debug)]
pub struct CreateDocumentInput {
    /// 1..=200 characters.
    pub title: String,
    /// HTML, sanitised.
    pub body: String,
    /// Default `PRIVATE`.
    pub visibility: Option<Visibility>,
    /// At most 10 of `[a-z0-9-]{1,32}`.
    pub tags: Option<Vec<String>>,
}

/// Changes to a document (absent: unchanged).
#[derive(InputObject, Debug)]
pub struct UpdateDocumentInput {
    /// Title.
    pub title: Option<String>,
    /// Body.
    pub body: Option<String>,
    /// Visibility (owner and administrators only).
    pub visibility: Option<Visibility>,
    /// Tags (replace the old ones).
    pub tags: Option<Vec<String>>,
}

/// Mutations.
#[derive(Debug, Default)]
pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Creates a document owned by the caller.
    async fn create_document(
        &self,
        ctx: &Context<'_>,
        input: CreateDocumentInput,
    ) -> Result<DocumentObject, async_graphql::Error> {
        let actor = actor(ctx)?;
        let view = services(ctx)?
            .documents
            .create(
                &actor,
                DocumentInput {
                    title: input.title,
                    body: input.body,
                    visibility: input.visibility.map(|v| v.as_str().to_owned()),
                    tags: input.tags,
                },
            )
            .await
            .map_err(document_error)?;
        Ok(view.into())
    }

    /// Changes a document at `version` (a stale version is refused).
    async fn update_document(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
        input: UpdateDocumentInput,
    ) -> Result<DocumentObject, async_graphql::Error> {
        let actor = actor(ctx)?;
        let request = request(ctx)?;
        let view = services(ctx)?
            .documents
            .update(
                &actor,
                &request.origin,
                object_id(&id)?,
                version,
                DocumentPatch {
                    title: input.title,
                    body: input.body,
                    visibility: input.visibility.map(|v| v.as_str().to_owned()),
                    tags: input.tags,
                },
            )
            .await
            .map_err(document_error)?;
        Ok(view.into())
    }

    /// Deletes a document (owner or administrator).
    async fn delete_document(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<bool, async_graphql::Error> {
        let actor = actor(ctx)?;
        let request = request(ctx)?;
        services(ctx)?
            .documents
            .delete(&actor, &request.origin, object_id(&id)?)
            .await
            .map_err(document_error)?;
        Ok(true)
    }

    /// Shares a document with a user (owner or administrator).
    async fn share_document(
        &self,
        ctx: &Context<'_>,
        id: ID,
        user_id: ID,
        permission: Permission,
    ) -> Result<bool, async_graphql::Error> {
        let actor = actor(ctx)?;
        let request = request(ctx)?;
        let user_id = Uuid::parse_str(&user_id).map_err(|_| {
            invalid(vec![FieldViolation {
                field: "userId",
                code: "invalid",
                message: "Not a user id.".to_owned(),
            }])
        })?;
        let permission = match permission {
            Permission::Read => "read",
            Permission::Write => "write",
        };
        services(ctx)?
            .documents
            .share(
                &actor,
                &request.origin,
                object_id(&id)?,
                user_id,
                permission,
            )
            .await
            .map_err(document_error)?;
        Ok(true)
    }
}

// --- subscriptions ------------------------------------------------------------------------------

/// What happened to a document.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum DocumentChangeKind {
    /// It was created.
    Created,
    /// Its title, body, tags or visibility changed.
    Updated,
    /// It was deleted.
    Deleted,
    /// It was shared with someone (or a share's permission changed).
    Shared,
}

impl DocumentChangeKind {
    /// The kind of a notification (`None` for a name this schema does not know, which the
    /// fan-out's decoder already refuses: skipped rather than guessed).
    fn of(notification: &Notification) -> Option<Self> {
        match notification.event.as_str() {
            CREATED => Some(Self::Created),
            UPDATED => Some(Self::Updated),
            DELETED => Some(Self::Deleted),
            SHARED => Some(Self::Shared),
            _ => None,
        }
    }
}

/// A change of a document you subscribed to: ids only. Read the document itself with
/// `document(id)`, through the same policy as every read.
#[derive(SimpleObject, Debug)]
pub struct DocumentEvent {
    /// The document.
    pub document_id: ID,
    /// What happened.
    pub kind: DocumentChangeKind,
    /// Its new version, for updates.
    pub version: Option<i32>,
}

/// Why a notification reached you.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum NotificationReason {
    /// The document is yours.
    Owner,
    /// The document was just shared with you.
    SharedWithYou,
}

/// Something that happened to one of your documents, or a document shared with you: ids only.
#[derive(SimpleObject, Debug)]
#[graphql(name = "Notification")]
pub struct NotificationObject {
    /// The document.
    pub document_id: ID,
    /// What happened.
    pub kind: DocumentChangeKind,
    /// Its new version, for updates.
    pub version: Option<i32>,
    /// Why you hear of it.
    pub reason: NotificationReason,
}

fn too_slow() -> async_graphql::Error {
    coded(
        "This subscription fell behind the events and was ended; subscribe again.",
        codes::RATE_LIMITED,
    )
}

/// The live notifications of a receiver that `decide` lets through, as a subscription stream.
///
/// `decide` runs for every notification (the policy is asked again for each event). A receiver
/// that lags (the client reads more slowly than events arrive) ends the stream with one
/// `RATE_LIMITED` error instead of buffering: memory per subscription stays bounded.
fn live<T, F, Fut>(
    receiver: broadcast::Receiver<Notification>,
    decide: F,
) -> impl Stream<Item = async_graphql::Result<T>> + Send + 'static
where
    T: Send + 'static,
    F: FnMut(Notification) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<T>> + Send,
{
    futures_util::stream::unfold(Some((receiver, decide)), |state| async move {
        let (mut receiver, mut decide) = state?;
        loop {
            match receiver.recv().await {
                Ok(notification) => {
                    if let Some(item) = decide(notification).await {
                        return Some((Ok(item), Some((receiver, decide))));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "GraphQL subscription too slow; ended");
                    return Some((Err(too_slow()), None));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

/// The subscription root.
#[derive(Debug, Default)]
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// The changes of one document you may read: ids only (`document(id)` reads it). Refused
    /// with `NOT_FOUND` when you may not read it, like `document(id)`; afterwards every event is
    /// checked again, so losing access (unshared, made private) stops the events without a word.
    /// A deletion reaches the owner and those who may read every document.
    async fn document_changed(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<DocumentEvent>> + use<>>
    {
        let actor = actor(ctx)?;
        let services = services(ctx)?.clone();
        let origin = request(ctx)?.origin.clone();
        let id = object_id(&id)?;
        // Subscribed before the check, so no event between the two is missed.
        let receiver = services.notifications.subscribe();
        // The same decision (and the same audit of a refusal) as `document(id)` and REST.
        services
            .documents
            .get(&actor, &origin, id)
            .await
            .map_err(document_error)?;
        let documents = services.documents;
        Ok(live(receiver, move |notification: Notification| {
            let documents = documents.clone();
            async move {
                // Its creation predates the subscription (see `Notification::is_creation`).
                if notification.topic != Topic::Document(id)
                    || notification.is_creation()
                    || !documents.may_hear(&actor, &notification).await
                {
                    return None;
                }
                Some(DocumentEvent {
                    document_id: ID(id.to_string()),
                    kind: DocumentChangeKind::of(&notification)?,
                    version: notification.version,
                })
            }
        }))
    }

    /// Your feed: every change of a document you own, and every document shared with you, each
    /// checked against the policy before it is delivered. Ids only.
    async fn my_notifications(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<NotificationObject>> + use<>>
    {
        let actor = actor(ctx)?;
        let services = services(ctx)?.clone();
        // A key without `documents:read` could never be told anything: refused now, not silently.
        if !actor.has_scope(bulwark_domain::api_key::Scope::DocumentsRead) {
            return Err(forbidden());
        }
        let receiver = services.notifications.subscribe();
        let documents = services.documents;
        Ok(live(receiver, move |notification: Notification| {
            let documents = documents.clone();
            async move {
                if !notification.concerns(actor.user_id)
                    || !documents.may_hear(&actor, &notification).await
                {
                    return None;
                }
                let Topic::Document(id) = notification.topic;
                let reason = if notification.owner_id == actor.user_id {
                    NotificationReason::Owner
                } else {
                    NotificationReason::SharedWithYou
                };
                Some(NotificationObject {
                    document_id: ID(id.to_string()),
                    kind: DocumentChangeKind::of(&notification)?,
                    version: notification.version,
                    reason,
                })
            }
        }))
    }
}
