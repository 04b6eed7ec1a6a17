//! The suppression list and the audit trail as the API shows them.

use chrono::{DateTime, Utc};
use mailroom_store::{audit::AuditRow, suppressions::Suppression};
use serde::Serialize;
use utoipa::ToSchema;

/// One suppressed address.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SuppressionView {
    /// Normalised; an erased address shows only as `erased:<keyed hash>`.
    pub address: String,
    /// `hard_bounce`, `unsubscribe`, `complaint`, `manual` or `erased`.
    pub reason: String,
    /// The provider's answer, the report's status, or a note.
    pub detail: String,
    pub created_at: DateTime<Utc>,
}

impl SuppressionView {
    /// The view of one entry.
    pub(crate) fn of(s: &Suppression) -> Self {
        Self {
            address: s.address.clone(),
            reason: s.reason.as_str().to_owned(),
            detail: s.detail.clone(),
            created_at: s.created_at,
        }
    }
}

/// A page of the list by address: `next` (the last address of a full page) reads the following.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SuppressionPage {
    pub suppressions: Vec<SuppressionView>,
    pub next: Option<String>,
}

/// What an addition or an import did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SuppressionsAdded {
    /// Addresses newly listed.
    pub added: u64,
    /// Addresses that were listed already.
    pub already: u64,
}

/// An address taken off the list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SuppressionRemoved {
    pub address: String,
    pub removed: bool,
}

/// One entry of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEntry {
    /// Its position (the cursor).
    pub position: String,
    pub at: DateTime<Utc>,
    /// `api_key:<id>` (with `of ws_...` through a grant), `admin`, or a service.
    pub actor: String,
    pub role: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// The caller's address.
    pub source: Option<String>,
    pub request_id: Option<String>,
}

impl AuditEntry {
    /// The view of one row.
    pub(crate) fn of(r: &AuditRow) -> Self {
        Self {
            position: r.id.to_string(),
            at: r.created_at,
            actor: r.actor.clone(),
            role: r.role.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            source: r.source.clone(),
            request_id: r.request_id.clone(),
        }
    }
}

/// A page of the audit trail: `next` reads the following one.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next: String,
}
