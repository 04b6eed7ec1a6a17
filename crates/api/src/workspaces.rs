//! Workspaces over the API. The operator (admin token) creates and deletes top-level
//! workspaces, typically agencies; an agency's key creates and deletes client sub-workspaces.
//! Two levels are enough: a client sub-workspace cannot have its own (422). A parent sees its
//! children's names, never what is inside them without a grant; anything else out of reach is
//! the same 404 as a workspace that does not exist.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use mailroom_domain::WorkspaceId;
use mailroom_store::workspaces::{self, WorkspaceRow};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState, Code, auth::Caller, json::ApiJson, provision};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WorkspaceRequest)]
pub(crate) struct CreateRequest {
    name: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteRequest {
    /// The workspace's id again: deleting destroys its keys for good.
    confirm: String,
}

pub(crate) fn view(w: &WorkspaceRow) -> Value {
    json!({ "id": w.workspace(), "name": w.name, "parent_id": w.parent(), "created_at": w.created_at })
}

/// `POST /v1/workspaces`: with the admin token, a top-level workspace and its first Owner key
/// (the token shown once); with a key, a client sub-workspace of the key's workspace.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let actor = caller.actor();
    let parent = match &caller {
        Caller::Admin(_) => None,
        Caller::Key(auth) => {
            let mut conn = state.begin(auth.workspace).await?;
            let here = workspaces::get(&mut conn, auth.workspace).await?.ok_or(ApiError::NotFound("workspace"))?;
            if here.parent_id.is_some() {
                return Err(ApiError::new(
                    Code::NestingTooDeep,
                    "a client sub-workspace cannot have sub-workspaces of its own: two levels (an agency and its clients) are the most",
                ));
            }
            Some(auth.workspace)
        }
    };
    let (id, key) = provision::create_workspace_in(&state.pool, &state.vault, &req.name, parent, true, actor).await?;
    let mut conn = state.begin(id).await?;
    let row = workspaces::get(&mut conn, id).await?.ok_or(ApiError::NotFound("workspace"))?;
    let mut body = json!({ "workspace": view(&row) });
    if let Some((key, token)) = key {
        body["owner_key"] = json!({ "id": key, "role": "owner", "token": token.expose_secret() });
    }
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /v1/workspaces`: every workspace for the operator; for a key, its workspace and the
/// client sub-workspaces it created.
pub(crate) async fn list(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let rows = match &caller {
        Caller::Admin(_) => workspaces::list(&mut *state.pool.acquire().await?, None).await?,
        Caller::Key(auth) => workspaces::list(&mut *state.begin(auth.workspace).await?, Some(auth.workspace)).await?,
    };
    Ok(Json(json!({ "workspaces": rows.iter().map(view).collect::<Vec<_>>() })))
}

/// The workspace `id` if the caller reaches it: any for the operator; for a key, its own or a
/// sub-workspace it created.
async fn reachable(state: &AppState, caller: &Caller, id: &str) -> Result<WorkspaceRow, ApiError> {
    let id: WorkspaceId = id.parse().map_err(|_| ApiError::NotFound("workspace"))?;
    // The operator reaches any workspace: it looks in that one; a key looks from its own.
    let scope = match caller {
        Caller::Admin(_) => id,
        Caller::Key(auth) => auth.workspace,
    };
    let mut conn = state.begin(scope).await?;
    let row = workspaces::get(&mut conn, id).await?.ok_or(ApiError::NotFound("workspace"))?;
    match caller {
        Caller::Admin(_) => Ok(row),
        Caller::Key(auth) if id == auth.workspace || row.parent() == Some(auth.workspace) => Ok(row),
        Caller::Key(_) => Err(ApiError::NotFound("workspace")),
    }
}

/// `GET /v1/workspaces/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&reachable(&state, &caller, &id).await?)))
}

/// `DELETE /v1/workspaces/{id}` `{"confirm": "ws_..."}`: crypto-shreds the workspace (its
/// keys, credentials and API keys; waiting sends cancelled), its sub-workspaces first. A key
/// deletes only sub-workspaces of its own workspace, never the one it belongs to.
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DeleteRequest>,
) -> Result<Json<Value>, ApiError> {
    let row = reachable(&state, &caller, &id).await?;
    let ws = row.workspace();
    if let Caller::Key(auth) = &caller
        && ws == auth.workspace
    {
        return Err(ApiError::new(
            Code::DeletingOwnWorkspace,
            "a key cannot delete the workspace it acts for; the operator (or its agency) deletes it",
        ));
    }
    if req.confirm != ws.to_string() {
        return Err(ApiError::new(Code::ConfirmationMismatch, "`confirm` must repeat the workspace's id"));
    }
    let actor = caller.actor();
    let mut conn = state.begin(ws).await?;
    let children: Vec<WorkspaceId> =
        workspaces::list(&mut conn, Some(ws)).await?.iter().map(WorkspaceRow::workspace).filter(|c| *c != ws).collect();
    drop(conn);
    let mut deleted = vec![];
    for w in children.into_iter().chain(std::iter::once(ws)) {
        let d = mailroom_keyring::shred::delete_workspace(&state.pool, &state.vault, w, &actor).await?;
        deleted.push(json!({ "id": w, "keys_destroyed": d.keys_destroyed, "values_destroyed": d.values_destroyed,
            "mailboxes_disconnected": d.mailboxes_disconnected, "cancelled_sends": d.cancelled_sends }));
    }
    // A client's deletion also shows in its agency's trail, where its creation is.
    if let Some(parent) = row.parent() {
        let mut tx = state.begin(parent).await?;
        mailroom_store::audit::record(&mut tx, Some(parent), &actor, "workspace.delete", Some(&ws.to_string())).await?;
        tx.commit().await?;
    }
    Ok(Json(json!({ "deleted": deleted })))
}
