//! Grants: `POST/GET /v1/workspaces/{child}/grants`, `DELETE .../grants/{id}`. A client
//! sub-workspace lets its agency act in it within a set of scopes. The grant is made by the
//! child's own key, or by the agency's key for a child it created (recorded as such); revoking
//! is instant. A key of any other workspace gets the same 404 as for a missing one.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use mailroom_domain::{GrantId, Scope, WorkspaceId};
use mailroom_store::{
    grants::{self, GrantRow},
    workspaces,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState, Code, auth::Auth, json::ApiJson};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantRequest {
    scopes: Vec<String>,
}

/// How the caller stands to the child.
enum Standing {
    /// The child's own key.
    Own { parent: WorkspaceId },
    /// The agency that created the child.
    Agency,
}

/// The child and the caller's standing to it. The caller's own workspace decides, never the
/// one it acts in through a grant: a grant cannot widen itself.
async fn standing(state: &AppState, auth: &Auth, child: &str) -> Result<(WorkspaceId, Standing), ApiError> {
    let child: WorkspaceId = child.parse().map_err(|_| ApiError::NotFound("workspace"))?;
    let mut conn = state.begin(auth.home).await?;
    let row = workspaces::get(&mut conn, child).await?.ok_or(ApiError::NotFound("workspace"))?;
    match row.parent() {
        Some(parent) if child == auth.home => Ok((child, Standing::Own { parent })),
        Some(parent) if parent == auth.home => Ok((child, Standing::Agency)),
        None if child == auth.home => {
            Err(ApiError::new(Code::NoParent, "a top-level workspace has no agency to grant access to"))
        }
        _ => Err(ApiError::NotFound("workspace")),
    }
}

fn view(g: &GrantRow) -> Value {
    json!({ "id": g.id, "workspace_id": g.workspace, "grantee_id": g.grantee,
        "scopes": g.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "created_by": g.created_by, "created_at": g.created_at, "revoked_at": g.revoked_at })
}

/// `POST /v1/workspaces/{child}/grants` `{"scopes": [...]}`: replaces the live grant.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(child): Path<String>,
    ApiJson(req): ApiJson<GrantRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (child, standing) = standing(&state, &auth, &child).await?;
    let scopes = parse_scopes(&req.scopes)?;
    let actor = auth.actor();
    let (grantee, created_by) = match standing {
        Standing::Own { parent } => (parent, format!("{} (the workspace's own key)", actor.name)),
        Standing::Agency => (auth.home, format!("{} (the agency, for a client it created)", actor.name)),
    };
    let mut tx = state.begin(child).await?;
    let grant = grants::replace(&mut tx, child, grantee, &scopes, &created_by).await?;
    let audited = mailroom_store::audit::Actor { name: &created_by, ..actor };
    mailroom_store::audit::record(&mut tx, Some(child), &audited, "grant.create", Some(&grant.id.to_string())).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view(&grant))))
}

fn parse_scopes(names: &[String]) -> Result<Vec<Scope>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::new(Code::NoScopes, "a grant needs at least one scope"));
    }
    Scope::parse_list(names).map_err(|e| ApiError::new(Code::UnknownScope, e.to_string()))
}

/// `GET /v1/workspaces/{child}/grants`: every grant of the child, revoked ones included.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(child): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (child, _) = standing(&state, &auth, &child).await?;
    let mut conn = state.begin(child).await?;
    let rows = grants::list(&mut conn, child).await?;
    Ok(Json(json!({ "grants": rows.iter().map(view).collect::<Vec<_>>() })))
}

/// `DELETE /v1/workspaces/{child}/grants/{grant}`: revoked at once; repeating it is harmless.
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((child, grant)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (child, _) = standing(&state, &auth, &child).await?;
    let grant: GrantId = grant.parse().map_err(|_| ApiError::NotFound("grant"))?;
    let mut tx = state.begin(child).await?;
    if grants::revoke(&mut tx, child, grant).await?.ok_or(ApiError::NotFound("grant"))? {
        mailroom_store::audit::record(&mut tx, Some(child), &auth.actor(), "grant.revoke", Some(&grant.to_string()))
            .await?;
    }
    tx.commit().await?;
    Ok(Json(json!({ "id": grant, "revoked": true })))
}
