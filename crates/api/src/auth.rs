//! Who is calling: an API key (`Authorization: Bearer mr_<key id>_<secret>_<checksum>`) or
//! the operator's admin token (`mra_...`), never one where the other is expected.
//!
//! Only a SHA-256 hash of a key's secret is stored; it is compared in constant time. Unknown,
//! revoked, expired and malformed keys all get the same 401, so the answer tells an attacker
//! nothing; a token whose checksum does not match says so (that is visible offline anyway).
//! A key may act in a client sub-workspace of its own workspace by naming it in
//! `Mailroom-Workspace`, within the child's grant; anything out of reach is a 404.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, request::Parts},
};
use chrono::Utc;
use mailroom_domain::{ApiKeyId, Grant, GrantId, Scope, WorkspaceId};
use mailroom_store::audit::Actor;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::{ApiError, AppState, admin_token::looks_like_admin_token};

/// The header naming the sub-workspace a parent's key acts in.
pub const WORKSPACE_HEADER: &str = "mailroom-workspace";

/// Where a request came from, for the audit log.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The peer address, or the configured trusted proxy's header.
    pub source: String,
    /// The request's id (`Mailroom-Request-Id`).
    pub request_id: String,
}

/// A request authenticated by an API key: the workspace it acts in and what it may do there.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    /// The workspace acted in (the key's own, or a child it reaches through a grant).
    pub workspace: WorkspaceId,
    /// The key's own workspace.
    pub home: WorkspaceId,
    /// The key.
    pub key: ApiKeyId,
    /// What the key may do here (in a child: what both the key and the grant hold).
    pub grant: Grant,
    /// The grant acted through, in a child.
    pub via_grant: Option<GrantId>,
    /// The key's role (`scopes` for an explicit list), for the audit log.
    role: &'static str,
    /// The actor's name: `api_key:<id>`, with `of ws_...` when acting through a grant.
    name: String,
    /// Where the request came from.
    origin: Origin,
}

impl Auth {
    /// The actor for the audit log.
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            name: &self.name,
            role: Some(self.role),
            source: Some(&self.origin.source),
            request_id: Some(&self.origin.request_id),
        }
    }
}

/// Who called an operator-or-key route.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// The operator, with the admin token.
    Admin(Origin),
    /// A workspace's key.
    Key(Auth),
}

impl Caller {
    /// The actor for the audit log.
    pub fn actor(&self) -> Actor<'_> {
        match self {
            Caller::Admin(o) => {
                Actor { name: "admin", role: Some("admin"), source: Some(&o.source), request_id: Some(&o.request_id) }
            }
            Caller::Key(auth) => auth.actor(),
        }
    }
}

/// Length of the checksum that ends a key's token.
const CHECKSUM_LEN: usize = 6;

/// The checksum of `mr_<id>_<secret>`: the first hex digits of its SHA-256, so a scanner can
/// tell a real Mailroom key from a look-alike without asking the server.
pub(crate) fn checksum(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))[..CHECKSUM_LEN].to_owned()
}

/// A new key's token: `mr_<32 hex id>_<64 hex secret>_<6 hex checksum>`.
pub(crate) fn token(id: ApiKeyId, secret: &str) -> String {
    let body = format!("mr_{}_{secret}", id.as_uuid().simple());
    let sum = checksum(&body);
    format!("{body}_{sum}")
}

/// Splits a key's token into its id and secret. Tokens made before checksums existed
/// (`mr_<id>_<secret>`) still parse.
pub(crate) fn parse_token(token: &str) -> Result<(ApiKeyId, &str), ApiError> {
    let rest = token.strip_prefix("mr_").ok_or(ApiError::Unauthorized)?;
    let mut parts = rest.split('_');
    let (id, secret, sum) = (parts.next(), parts.next(), parts.next());
    let (Some(id), Some(secret), None) = (id, secret, parts.next()) else { return Err(ApiError::Unauthorized) };
    let uuid = Uuid::try_parse(id).ok().filter(|_| id.len() == 32).ok_or(ApiError::Unauthorized)?;
    if !(secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(ApiError::Unauthorized);
    }
    if let Some(sum) = sum {
        let body = &token[..token.len() - sum.len() - 1];
        if sum.len() != CHECKSUM_LEN || sum != checksum(body) {
            return Err(ApiError::BadChecksum);
        }
    }
    Ok((ApiKeyId::from_uuid(uuid), secret))
}

/// The stored form of a key's secret.
pub(crate) fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The bearer token of a request.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let header = headers.get(axum::http::header::AUTHORIZATION).ok_or(ApiError::Unauthorized)?;
    let token = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")).ok_or(ApiError::Unauthorized)?;
    Ok(token.trim())
}

/// Authenticates a key and resolves the workspace it acts in, for a route needing `scope`.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    scope: Scope,
    origin: Origin,
) -> Result<Auth, ApiError> {
    let token = bearer(headers)?;
    if looks_like_admin_token(token) {
        return Err(ApiError::Unauthorized); // the operator's token is no workspace key
    }
    let (id, secret) = parse_token(token)?;
    // The key names its workspace: the lookup is the one read across workspaces.
    let row =
        mailroom_store::api_keys::find(&mut *state.pool.acquire().await?, id).await?.ok_or(ApiError::Unauthorized)?;
    let matches: bool = row.secret_hash.ct_eq(&hash_secret(secret)).into();
    let live = row.revoked_at.is_none() && row.expires_at.is_none_or(|e| e > Utc::now());
    if !(matches && live) {
        return Err(ApiError::Unauthorized);
    }
    let home = row.workspace;
    let named = match headers.get(WORKSPACE_HEADER) {
        None => None,
        Some(v) => {
            Some(v.to_str().ok().and_then(|v| v.parse::<WorkspaceId>().ok()).ok_or(ApiError::NotFound("workspace"))?)
        }
    };
    let child = named.filter(|c| *c != home);
    let stale = row.last_used_at.is_none_or(|t| t < Utc::now() - chrono::Duration::minutes(1));
    // The rest looks from the key's own workspace, and only when there is something to look at.
    let mut tx = match row.via_grant.is_some() || stale || child.is_some() {
        true => Some(state.begin(home).await?),
        false => None,
    };
    // A key an agency made in a client through a grant dies with the grant.
    if let (Some(g), Some(tx)) = (row.via_grant, tx.as_mut())
        && !mailroom_store::grants::is_live(tx, g).await?
    {
        return Err(ApiError::Unauthorized);
    }
    let role = match &row.grant {
        Grant::Role(r) => r.as_str(),
        Grant::Scopes(_) => "scopes",
    };
    let (workspace, grant, via_grant) = match (child, tx.as_mut()) {
        (Some(child), Some(tx)) => {
            // Only a live grant of a live child this workspace created reaches it.
            let (through, scopes) =
                mailroom_store::grants::reach(tx, home, child).await?.ok_or(ApiError::NotFound("workspace"))?;
            (child, row.grant.intersect(&scopes), Some(through))
        }
        _ => (home, row.grant, None),
    };
    if let Some(mut tx) = tx {
        if stale {
            mailroom_store::api_keys::touch(&mut tx, id).await?;
        }
        tx.commit().await?;
    }
    if !grant.allows(scope) {
        return Err(ApiError::MissingScope(scope));
    }
    let name = if workspace == home { format!("api_key:{id}") } else { format!("api_key:{id} of {home}") };
    Ok(Auth { workspace, home, key: id, grant, via_grant, role, name, origin })
}

/// Admits at most one failed-authentication record per source address and minute from this
/// process, before the database is asked: a flood of bad tokens costs no connection.
#[derive(Debug, Default)]
pub struct FailedAuthLimiter(std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl FailedAuthLimiter {
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
    const MAX_SOURCES: usize = 10_000;

    fn admit(&self, source: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if seen.len() >= Self::MAX_SOURCES {
            seen.retain(|_, at| now.duration_since(*at) < Self::WINDOW);
            if seen.len() >= Self::MAX_SOURCES {
                return false; // a flood from many addresses: the database is spared
            }
        }
        match seen.get(source) {
            Some(at) if now.duration_since(*at) < Self::WINDOW => false,
            _ => {
                seen.insert(source.to_owned(), now);
                true
            }
        }
    }
}

/// Records a failed authentication in the audit log: at most once a minute per source, by
/// this process's limiter and, across processes, by the store. A failure to record is logged
/// and never changes the 401.
pub(crate) async fn record_failure(state: &AppState, headers: &HeaderMap, origin: &Origin, why: &str) {
    if !state.failed_auth.admit(&origin.source) {
        return;
    }
    let key = bearer(headers).ok().and_then(|t| parse_token(t).ok()).map(|(id, _)| id);
    let name = key.map_or_else(|| "unknown".to_owned(), |k| format!("api_key:{k}"));
    let actor = Actor { name: &name, role: None, source: Some(&origin.source), request_id: Some(&origin.request_id) };
    let recorded = async {
        let mut conn = state.pool.acquire().await?;
        mailroom_store::audit::failed_auth(&mut conn, key, &actor, why).await
    };
    if let Err(e) = recorded.await {
        tracing::warn!(error = %e, "a failed authentication could not be recorded");
    }
}

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        // Put there by the access layer; a public route has no key.
        match parts.extensions.get::<Caller>() {
            Some(Caller::Key(auth)) => Ok(auth.clone()),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_parse_and_a_wrong_checksum_says_so() {
        let id = ApiKeyId::new();
        let secret = "ab".repeat(32);
        let old = format!("mr_{}_{secret}", id.as_uuid().simple());
        assert_eq!(parse_token(&old).map(|(i, _)| i).ok(), Some(id), "keys made before checksums still parse");
        let new = token(id, &secret);
        assert_eq!(parse_token(&new).map(|(i, _)| i).ok(), Some(id));
        let mut typo = new.clone();
        typo.replace_range(10..11, if &new[10..11] == "0" { "1" } else { "0" });
        assert!(matches!(parse_token(&typo), Err(ApiError::BadChecksum)));
        assert!(matches!(parse_token("mr_short_abc"), Err(ApiError::Unauthorized)));
        assert!(parse_token(&old.replace("mr_", "xx_")).is_err());
        assert!(parse_token(&format!("{old}0")).is_err());
    }
}
