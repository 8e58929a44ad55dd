//! The lock every per-user quota check takes.
//!
//! Documents, attachment bytes and webhooks are each counted and inserted in one transaction that
//! first locks the owner's `users` row (`for no key update`): concurrent writes of one user take
//! turns, each counting after the previous one's row is in, so no quota is ever overshot. One lock
//! for all quotas of a user keeps the rule in one place and cannot deadlock between them.

use bulwark_domain::user::Plan;
use sqlx::PgConnection;
use uuid::Uuid;

/// Why the owner's row could not be locked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OwnerLockError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// No undeleted user with a plan the domain knows: a bug of the caller, for the log.
    #[error("no (undeleted) user {0} with a known plan")]
    NoSuchOwner(Uuid),
}

/// Locks the owner's row until the transaction ends and returns its plan.
pub(crate) async fn lock_owner(
    tx: &mut PgConnection,
    owner_id: Uuid,
) -> Result<Plan, OwnerLockError> {
    let plan = sqlx::query_scalar!(
        "select plan from users where id = $1 and deleted_at is null for no key update",
        owner_id,
    )
    .fetch_optional(tx)
    .await?;
    plan.as_deref()
        .and_then(Plan::parse)
        .ok_or(OwnerLockError::NoSuchOwner(owner_id))
}
