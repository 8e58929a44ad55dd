//! Per-user quotas by plan: how many documents, attachment bytes, webhooks and API keys one user may
//! have.
//!
//! A quota is checked *inside the transaction that writes*, with the user's row locked, so that
//! concurrent requests at the limit take turns and never overshoot it (a check before the write, in
//! another statement, would let 50 parallel creates all see "one left"). Over quota is a 403 with the
//! problem type `urn:bulwark:problem:quota-exceeded`.

use crate::user::Plan;

/// The limits of one plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Documents owned.
    pub documents: u32,
    /// Total bytes of attachments.
    pub attachment_bytes: u64,
    /// Webhooks registered.
    pub webhooks: u32,
    /// API keys (live ones: revoked keys do not count).
    pub api_keys: u32,
    /// Requests per UTC day, counted once across REST, GraphQL and WebSocket messages (over it:
    /// 429 with the problem type `quota-exceeded`; see `crates/web/src/rate_limit.rs`).
    pub requests_per_day: u32,
}

/// The limits of every plan (from configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// The `free` plan.
    pub free: Limits,
    /// The `pro` plan.
    pub pro: Limits,
}

impl PlanLimits {
    /// The limits of a plan.
    #[must_use]
    pub const fn of(&self, plan: Plan) -> Limits {
        match plan {
            Plan::Free => self.free,
            Plan::Pro => self.pro,
        }
    }
}

impl Default for PlanLimits {
    fn default() -> Self {
        Self {
            free: Limits {
                documents: 100,
                attachment_bytes: 50 * 1024 * 1024,
                webhooks: 5,
                api_keys: 5,
                requests_per_day: 10_000,
            },
            pro: Limits {
                documents: 10_000,
                attachment_bytes: 5 * 1024 * 1024 * 1024,
                webhooks: 50,
                api_keys: 50,
                requests_per_day: 1_000_000,
            },
        }
    }
}

/// Which quota a write would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// Documents owned.
    Documents,
    /// Attachment bytes.
    AttachmentBytes,
    /// Webhooks.
    Webhooks,
    /// API keys.
    ApiKeys,
}

impl QuotaKind {
    /// The public name (in the problem's `detail`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Documents => "documents",
            Self::AttachmentBytes => "attachment bytes",
            Self::Webhooks => "webhooks",
            Self::ApiKeys => "API keys",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_plan_has_its_limits_and_pro_is_never_below_free() {
        let limits = PlanLimits::default();
        assert_eq!(limits.of(Plan::Free), limits.free);
        assert_eq!(limits.of(Plan::Pro), limits.pro);
        assert!(limits.pro.documents >= limits.free.documents);
        assert!(limits.pro.attachment_bytes >= limits.free.attachment_bytes);
        assert!(limits.pro.webhooks >= limits.free.webhooks);
        assert!(limits.pro.api_keys >= limits.free.api_keys);
        assert!(limits.pro.requests_per_day >= limits.free.requests_per_day);
    }
}
