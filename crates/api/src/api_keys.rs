//! API keys over the API: `POST /v1/keys` (the token shown once), `GET /v1/keys` (never a
//! secret), `DELETE /v1/keys/{id}` (revoked at the next request, never reactivated). A key is
//! never wider than the key that makes it.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use mailroom_domain::{ApiKeyId, Grant, Role, Scope};
use mailroom_store::api_keys;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState, Code, auth::Auth, json::ApiJson, provision};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = KeyRequest)]
pub(crate) struct CreateRequest {
    name: String,
    role: Option<String>,
    scopes: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
}

fn grant_view(g: &Grant) -> (Option<&'static str>, Vec<&'static str>) {
    match g {
        Grant::Role(r) => (Some(r.as_str()), r.scopes().iter().map(|s| s.as_str()).collect()),
        Grant::Scopes(s) => (None, s.iter().map(|s| s.as_str()).collect()),
    }
}

/// The grant asked for: a role or a scope list, each name known.
fn requested(req: &CreateRequest) -> Result<Grant, ApiError> {
    let bad = |code, message: String| ApiError::new(code, message);
    match (&req.role, &req.scopes) {
        (Some(role), None) => Ok(Grant::Role(role.parse::<Role>().map_err(|e| bad(Code::UnknownRole, e.to_string()))?)),
        (None, Some(names)) if !names.is_empty() => {
            Ok(Grant::Scopes(Scope::parse_list(names).map_err(|e| bad(Code::UnknownScope, e.to_string()))?))
        }
        _ => Err(bad(Code::RoleOrScopes, "give either `role` or a non-empty `scopes` list, not both".into())),
    }
}

/// `POST /v1/keys` `{"name", "role" | "scopes", "expires_at"?}`.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    ApiJson(req): ApiJson<CreateRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.contains('\0') {
        return Err(ApiError::new(Code::InvalidName, "a key's name has 1 to 200 characters"));
    }
    let grant = requested(&req)?;
    if req.expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(ApiError::new(Code::ExpiryInPast, "`expires_at` must be in the future"));
    }
    let wider = grant.beyond(&auth.grant);
    if !wider.is_empty() {
        let names: Vec<String> = wider.iter().map(|s| format!("`{s}`")).collect();
        return Err(ApiError::Refused {
            code: Code::ScopeEscalation,
            message: format!("a key cannot be wider than the key that makes it; this key lacks {}", names.join(", ")),
        });
    }
    let spec = provision::KeySpec { name, grant: &grant, expires_at: req.expires_at, via_grant: auth.via_grant };
    let (id, token) = provision::issue_key(&state.pool, auth.workspace, &spec, auth.actor()).await?;
    let (role, scopes) = grant_view(&grant);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "name": name, "role": role, "scopes": scopes, "expires_at": req.expires_at,
            "token": token.expose_secret() })),
    ))
}

/// `GET /v1/keys`: the workspace's keys, revoked ones included; never a secret.
pub(crate) async fn list(State(state): State<Arc<AppState>>, auth: Auth) -> Result<Json<Value>, ApiError> {
    let mut conn = state.begin(auth.workspace).await?;
    let rows = api_keys::list(&mut conn, auth.workspace).await?;
    let keys: Vec<Value> = rows
        .iter()
        .map(|k| {
            let (role, scopes) = grant_view(&k.grant);
            json!({ "id": k.id, "name": k.name, "role": role, "scopes": scopes, "created_at": k.created_at,
                "created_by": k.created_by, "last_used_at": k.last_used_at, "expires_at": k.expires_at,
                "revoked_at": k.revoked_at })
        })
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

/// `DELETE /v1/keys/{id}`: revoked for good; repeating it is harmless.
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: ApiKeyId = id.parse().map_err(|_| ApiError::NotFound("key"))?;
    let mut tx = state.begin(auth.workspace).await?;
    let revoked = api_keys::revoke(&mut tx, auth.workspace, id).await?.ok_or(ApiError::NotFound("key"))?;
    if revoked {
        mailroom_store::audit::record(
            &mut tx,
            Some(auth.workspace),
            &auth.actor(),
            "api_key.revoke",
            Some(&id.to_string()),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(json!({ "id": id, "revoked": true })))
}
