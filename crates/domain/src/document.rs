//! Documents — the example resource — and who may do what to each one.
//!
//! Types are valid by construction ([`NewDocument`] can only hold a sanitised body, a bounded title,
//! well-formed tags). The object-level rules are in [`DocumentAccess`]: computed once per request
//! from the actor, the document and its shares, and asked by the service for every verb. A caller
//! who may not *read* a document gets `NotFound` whatever it tried (the document's existence is
//! not revealed); a caller who may read but not do the thing gets `Forbidden`.

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::context::Actor;
use crate::policy::{self, Permission};
use crate::user::FieldViolation;

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Largest body after sanitising, in bytes (100 KiB).
pub const MAX_BODY_BYTES: usize = 100 * 1024;
/// Most tags on one document.
pub const MAX_TAGS: usize = 10;
/// Longest tag.
pub const MAX_TAG_CHARS: usize = 32;

/// A title: trimmed, 1..=200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentTitle(String);

impl DocumentTitle {
    /// Parses a title.
    ///
    /// # Errors
    /// A violation on `title`.
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        let title = raw.trim();
        let chars = title.chars().count();
        if chars == 0 {
            return Err(FieldViolation::new(
                "title",
                "required",
                "A title is required.",
            ));
        }
        if chars > MAX_TITLE_CHARS {
            return Err(FieldViolation::new(
                "title",
                "too_long",
                format!("A title has at most {MAX_TITLE_CHARS} characters."),
            ));
        }
        if title.chars().any(char::is_control) {
            return Err(FieldViolation::new(
                "title",
                "invalid_characters",
                "A title cannot contain control characters.",
            ));
        }
        Ok(Self(title.to_owned()))
    }

    /// The title.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Turns untrusted HTML into HTML that only contains allowlisted elements and attributes (the
/// `bulwark-security` adapter uses ammonia).
pub trait HtmlSanitizer: Send + Sync + fmt::Debug {
    /// The sanitised HTML.
    fn sanitize(&self, html: &str) -> String;
}

/// A body: sanitised HTML of at most [`MAX_BODY_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentBody(String);

impl DocumentBody {
    /// Sanitises and bounds a body. The size is checked before sanitising (no work on a huge
    /// input) and after (the stored value is what is bounded).
    ///
    /// # Errors
    /// A violation on `body`.
    pub fn parse(raw: &str, sanitizer: &dyn HtmlSanitizer) -> Result<Self, FieldViolation> {
        let too_large = || {
            FieldViolation::new(
                "body",
                "too_large",
                format!("A body has at most {} KiB.", MAX_BODY_BYTES / 1024),
            )
        };
        if raw.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        let clean = sanitizer.sanitize(raw);
        if clean.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        Ok(Self(clean))
    }

    /// A body read back from the store (it was sanitised on the way in).
    #[must_use]
    pub fn from_stored(body: String) -> Self {
        Self(body)
    }

    /// The HTML.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who can see a document, besides its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// The owner only (shares are kept but grant nothing while private).
    Private,
    /// The owner and the users it is shared with.
    Shared,
    /// Every signed-in user may read it; writing still needs a write share.
    Public,
}

impl Visibility {
    /// The stored and public spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Shared => "shared",
            Self::Public => "public",
        }
    }

    /// Parses the spelling.
    ///
    /// # Errors
    /// A violation on `visibility`.
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        match raw {
            "private" => Ok(Self::Private),
            "shared" => Ok(Self::Shared),
            "public" => Ok(Self::Public),
            _ => Err(FieldViolation::new(
                "visibility",
                "invalid",
                "Visibility is `private`, `shared` or `public`.",
            )),
        }
    }
}

/// A tag: 1..=32 of `[a-z0-9-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Parses a tag.
    ///
    /// # Errors
    /// A violation on `tags`.
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        let ok = (1..=MAX_TAG_CHARS).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldViolation::new(
                "tags",
                "invalid",
                format!("A tag is 1 to {MAX_TAG_CHARS} of a-z, 0-9 and `-`."),
            ))
        }
    }

    /// The tag.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses a tag list: at most [`MAX_TAGS`], each valid; duplicates are merged, order kept.
///
/// # Errors
/// A violation on `tags`.
pub fn parse_tags(raw: &[String]) -> Result<Vec<Tag>, FieldViolation> {
    if raw.len() > MAX_TAGS {
        return Err(FieldViolation::new(
            "tags",
            "too_many",
            format!("A document has at most {MAX_TAGS} tags."),
        ));
    }
    let mut tags: Vec<Tag> = Vec::with_capacity(raw.len());
    for t in raw {
        let tag = Tag::parse(t)?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

/// What a share lets its user do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharePermission {
    /// Read.
    Read,
    /// Read, and change title, body and tags.
    Write,
}

impl SharePermission {
    /// The stored and public spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    /// Parses the spelling.
    ///
    /// # Errors
    /// A violation on `permission`.
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        match raw {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            _ => Err(FieldViolation::new(
                "permission",
                "invalid",
                "Permission is `read` or `write`.",
            )),
        }
    }
}

/// One share of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// With whom.
    pub user_id: Uuid,
    /// What they may do.
    pub permission: SharePermission,
}

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub owner_id: Uuid,
    /// Title.
    pub title: DocumentTitle,
    /// Sanitised body.
    pub body: DocumentBody,
    /// Visibility.
    pub visibility: Visibility,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Bumped by every change (the `ETag`).
    pub version: i32,
}

/// A document with its shares: what access decisions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedDocument {
    /// The document.
    pub document: Document,
    /// Its shares.
    pub shares: Vec<Share>,
}

/// What an actor may do with one document. Computed by [`DocumentAccess::of`]; every verb of the
/// service asks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentAccess {
    /// See it at all (otherwise: 404 on every verb).
    pub read: bool,
    /// Change title, body and tags.
    pub write: bool,
    /// Change visibility, share, delete: the owner's rights.
    pub manage: bool,
    /// See the share list.
    pub see_shares: bool,
}

impl DocumentAccess {
    /// The rules, in one place:
    /// - the owner may do everything;
    /// - an admin (`documents:manage_any`) may do everything;
    /// - a moderator (`documents:read_any`) may read anything;
    /// - a share grants read (and write, for a write share) unless the document is private;
    /// - a public document may be read by anyone signed in.
    #[must_use]
    pub fn of(actor: &Actor, doc: &SharedDocument) -> Self {
        let owner = doc.document.owner_id == actor.user_id;
        let manage_any = policy::allows(actor, Permission::DocumentsManageAny);
        let read_any = policy::allows(actor, Permission::DocumentsReadAny);
        let share = (doc.document.visibility != Visibility::Private)
            .then(|| doc.shares.iter().find(|s| s.user_id == actor.user_id))
            .flatten();
        let manage = owner || manage_any;
        let write = manage || share.is_some_and(|s| s.permission == SharePermission::Write);
        let read =
            write || read_any || share.is_some() || doc.document.visibility == Visibility::Public;
        Self {
            read,
            write,
            manage,
            see_shares: manage,
        }
    }
}

/// An opaque position in a listing: the sort key of the last item seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` of the last item.
    pub created_at: OffsetDateTime,
    /// Its id (the tie-breaker).
    pub id: Uuid,
}

/// A listing request, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentQuery {
    /// Page size, 1..=100.
    pub limit: u32,
    /// Continue after this position.
    pub after: Option<Cursor>,
    /// Case-insensitive substring of the title (matched literally: `%` and `_` are not
    /// wildcards).
    pub q: Option<String>,
    /// Only documents with this tag.
    pub tag: Option<Tag>,
    /// Only documents of this owner (still only those the reader may read).
    pub owner: Option<Uuid>,
}

/// One page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentPage {
    /// The documents, newest first.
    pub items: Vec<Document>,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
}

/// Which documents a listing may return: the reader's own, shared with it (unless private),
/// public ones — or all of them for a reader with `documents:read_any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readable {
    /// The reader.
    pub user_id: Uuid,
    /// Whether it may read every document.
    pub any: bool,
}

/// The changes of an update (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentChanges {
    /// New title.
    pub title: Option<DocumentTitle>,
    /// New body.
    pub body: Option<DocumentBody>,
    /// New visibility.
    pub visibility: Option<Visibility>,
    /// New tags.
    pub tags: Option<Vec<Tag>>,
}

/// A new document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDocument {
    /// Title.
    pub title: DocumentTitle,
    /// Sanitised body.
    pub body: DocumentBody,
    /// Visibility (private by default).
    pub visibility: Visibility,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// Why an update did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UpdateDocumentError {
    /// No such document.
    #[error("no such document")]
    NotFound,
    /// The version is not the current one (someone changed it meanwhile).
    #[error("the document changed meanwhile")]
    Stale,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] DocumentStoreError),
}

/// Why a document was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateDocumentError {
    /// The owner has as many documents as its plan allows.
    #[error("document quota exceeded")]
    QuotaExceeded,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] DocumentStoreError),
}

/// The document store failed; the source says why (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("the document store is unavailable")]
pub struct DocumentStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Storage of documents and their shares.
#[async_trait]
pub trait DocumentRepository: Send + Sync + fmt::Debug {
    /// Stores a new document of `owner_id` (version 1), unless the owner already has as many as its
    /// plan allows: the count and the insert happen in one transaction with the owner's row
    /// locked, so concurrent creates never overshoot.
    ///
    /// # Errors
    /// [`CreateDocumentError::QuotaExceeded`]; `Store` when the store fails (or the owner does not
    /// exist).
    async fn create(
        &self,
        owner_id: Uuid,
        new: NewDocument,
        limits: &crate::quota::PlanLimits,
    ) -> Result<Document, CreateDocumentError>;

    /// The document with its shares.
    ///
    /// # Errors
    /// [`DocumentStoreError`] when the store fails.
    async fn find(&self, id: Uuid) -> Result<Option<SharedDocument>, DocumentStoreError>;

    /// A page of the documents `readable` may read, newest first, filtered by `query`. The
    /// readability rule is the SQL twin of [`DocumentAccess::of`]'s `read`.
    ///
    /// # Errors
    /// [`DocumentStoreError`] when the store fails.
    async fn list(
        &self,
        readable: Readable,
        query: &DocumentQuery,
    ) -> Result<DocumentPage, DocumentStoreError>;

    /// Applies `changes` if the document is still at `expected_version`, bumping the version.
    ///
    /// # Errors
    /// [`UpdateDocumentError`]: `Stale` when the version moved on, `NotFound`, `Store`.
    async fn update(
        &self,
        id: Uuid,
        expected_version: i32,
        changes: DocumentChanges,
    ) -> Result<Document, UpdateDocumentError>;

    /// Deletes the document (and its shares). Returns false when there was none.
    ///
    /// # Errors
    /// [`DocumentStoreError`] when the store fails.
    async fn delete(&self, id: Uuid) -> Result<bool, DocumentStoreError>;

    /// Shares the document with a user (or changes the permission of an existing share). Returns
    /// false when that user does not exist (or is deleted).
    ///
    /// # Errors
    /// [`DocumentStoreError`] when the store fails.
    async fn share(&self, id: Uuid, share: Share) -> Result<bool, DocumentStoreError>;

    /// Removes a share. Returns false when there was none.
    ///
    /// # Errors
    /// [`DocumentStoreError`] when the store fails.
    async fn unshare(&self, id: Uuid, user_id: Uuid) -> Result<bool, DocumentStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::Role;

    fn actor(user: u128, role: Role) -> Actor {
        Actor {
            user_id: Uuid::from_u128(user),
            session_id: Uuid::nil(),
            role,
            authenticated_at: OffsetDateTime::UNIX_EPOCH,
            credential: crate::context::Credential::Session,
            role_withheld: false,
            plan: crate::user::Plan::Free,
        }
    }

    fn doc(visibility: Visibility, shares: Vec<Share>) -> SharedDocument {
        SharedDocument {
            document: Document {
                id: Uuid::nil(),
                owner_id: Uuid::from_u128(1),
                title: DocumentTitle::parse("t").unwrap(),
                body: DocumentBody::from_stored(String::new()),
                visibility,
                tags: Vec::new(),
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
                version: 1,
            },
            shares,
        }
    }

    fn share(user: u128, permission: SharePermission) -> Share {
        Share {
            user_id: Uuid::from_u128(user),
            permission,
        }
    }

    #[test]
    fn the_access_matrix() {
        use Visibility::{Private, Public, Shared};
        let shares = vec![
            share(2, SharePermission::Read),
            share(3, SharePermission::Write),
        ];
        // (who, visibility) → (read, write, manage)
        let cases = [
            (actor(1, Role::User), Private, (true, true, true)),
            (actor(2, Role::User), Private, (false, false, false)),
            (actor(3, Role::User), Private, (false, false, false)),
            (actor(2, Role::User), Shared, (true, false, false)),
            (actor(3, Role::User), Shared, (true, true, false)),
            (actor(4, Role::User), Shared, (false, false, false)),
            (actor(4, Role::User), Public, (true, false, false)),
            (actor(3, Role::User), Public, (true, true, false)),
            (actor(5, Role::Moderator), Private, (true, false, false)),
            (actor(6, Role::Admin), Private, (true, true, true)),
        ];
        for (who, visibility, (read, write, manage)) in cases {
            let access = DocumentAccess::of(&who, &doc(visibility, shares.clone()));
            assert_eq!(
                (access.read, access.write, access.manage),
                (read, write, manage),
                "{:?} on {visibility:?}",
                who.user_id
            );
            assert_eq!(access.see_shares, manage);
        }
    }

    #[test]
    fn titles_tags_and_visibility_are_parsed_strictly() {
        assert!(DocumentTitle::parse("  ").is_err());
        assert!(DocumentTitle::parse(&"x".repeat(201)).is_err());
        assert!(DocumentTitle::parse("a\u{0}b").is_err());
        assert_eq!(DocumentTitle::parse("  Notes ").unwrap().as_str(), "Notes");
        for bad in ["", "UPPER", "with space", "ünï", &"a".repeat(33), "a_b"] {
            assert!(Tag::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Tag::parse("rust-2024").is_ok());
        let many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        assert!(parse_tags(&many).is_err());
        let dup = vec!["a".to_owned(), "a".to_owned(), "b".to_owned()];
        assert_eq!(parse_tags(&dup).unwrap().len(), 2);
        assert!(Visibility::parse("PUBLIC").is_err());
        assert!(SharePermission::parse("admin").is_err());
    }
}
