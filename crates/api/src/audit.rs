//! `GET /v1/audit?after=&limit=`: the workspace's audit trail, oldest first, by cursor. An
//! agency reads a client's trail by naming it in `Mailroom-Workspace` within a grant that
//! holds `audit:read`.

use std::sync::Arc;

use axum::{Json, extract::State};

use crate::{
    ApiError, AppState,
    auth::Auth,
    page::Page,
    views::{AuditEntry, AuditPage},
};

/// `GET /v1/audit`.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    crate::json::ApiQuery(page): crate::json::ApiQuery<Page>,
) -> Result<Json<AuditPage>, ApiError> {
    let (after, limit) = page.bounds()?;
    let mut conn = state.begin(auth.workspace).await?;
    let rows = mailroom_store::audit::page(&mut conn, auth.workspace, after, limit).await?;
    let next = rows.last().map_or(after, |r| r.id);
    Ok(Json(AuditPage { entries: rows.iter().map(view).collect(), next: next.to_string() }))
}

/// One entry as the API shows it.
pub(crate) fn view(r: &mailroom_store::audit::AuditRow) -> AuditEntry {
    AuditEntry::of(r)
}
