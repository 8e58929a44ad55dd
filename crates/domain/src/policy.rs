//! Who may do what: roles, their permissions, and the one function that answers "may this actor do
//! this?" for function-level checks.
//!
//! Every transport asks here (through the services, or through the access declared on each REST
//! route, which names a [`Permission`]); no handler compares role names itself. Object-level rules
//! (whose document is this, what is shared) live next to the objects, and call [`allows`] for the
//! role part.

use crate::context::Actor;
use crate::user::Role;

/// A function-level permission. The spelling (`as_str`) is what routes declare as the scope of their
/// `bearer` security requirement in the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// List and search users (admin API).
    UsersRead,
    /// Change a user's role, lock or plan (admin API).
    UsersManage,
    /// Read the audit trail (admin API).
    AuditRead,
    /// Read any document, whatever its visibility (moderators and admins).
    DocumentsReadAny,
    /// Change or delete any document (admins).
    DocumentsManageAny,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Self; 5] = [
        Self::UsersRead,
        Self::UsersManage,
        Self::AuditRead,
        Self::DocumentsReadAny,
        Self::DocumentsManageAny,
    ];

    /// The declared spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UsersRead => "users:read",
            Self::UsersManage => "users:manage",
            Self::AuditRead => "audit:read",
            Self::DocumentsReadAny => "documents:read_any",
            Self::DocumentsManageAny => "documents:manage_any",
        }
    }

    /// Parses the declared spelling.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}

impl Role {
    /// The permissions of the role. Deny by default: a permission not listed here is refused.
    #[must_use]
    pub const fn permissions(self) -> &'static [Permission] {
        match self {
            Self::User => &[],
            // Moderators read what they moderate; they may not manage users or change roles.
            Self::Moderator => &[Permission::DocumentsReadAny],
            Self::Admin => &Permission::ALL,
        }
    }
}

/// Whether the actor's role grants the permission. Administration (users, roles, the audit trail)
/// is never granted to an API key, whatever its owner's role: keys are for integrations, and the
/// admin functions stay behind a person's session (with MFA, when the policy requires it).
#[must_use]
pub fn allows(actor: &Actor, permission: Permission) -> bool {
    let administration = matches!(
        permission,
        Permission::UsersRead | Permission::UsersManage | Permission::AuditRead
    );
    if administration && !actor.is_session() {
        return false;
    }
    actor.role.permissions().contains(&permission)
}

/// Whether the actor may see a user's private profile fields (email, role): the user itself (in a
/// session) and those who may read users.
#[must_use]
pub fn may_see_private_profile(actor: &Actor, user_id: uuid::Uuid) -> bool {
    (actor.user_id == user_id && actor.is_session()) || allows(actor, Permission::UsersRead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_unknown_ones_are_refused() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(Permission::parse("admin"), None);
        assert_eq!(Permission::parse("USERS:READ"), None);
    }

    #[test]
    fn users_have_no_permission_moderators_read_and_admins_everything() {
        assert!(Role::User.permissions().is_empty());
        assert_eq!(
            Role::Moderator.permissions(),
            &[Permission::DocumentsReadAny]
        );
        for p in Permission::ALL {
            assert!(Role::Admin.permissions().contains(&p));
        }
        assert!(
            !Role::Moderator
                .permissions()
                .contains(&Permission::UsersManage)
        );
    }
}
