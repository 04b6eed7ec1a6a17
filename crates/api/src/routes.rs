//! The route table: every route with the one thing it needs to be called, in one place. The
//! router is built from this table, so no route can exist without a declared access rule, and
//! the access layer authenticates the key and checks the scope before any handler runs: deny
//! by default. The README publishes the same table (route × role).

use std::{collections::BTreeMap, sync::Arc};

use std::net::SocketAddr;

use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    middleware::{self, Next},
    response::Response,
    routing::{MethodRouter, delete, get, patch, post, put},
};
use mailroom_domain::Scope;

use crate::{
    ApiError, AppState, api_keys, audit, auth,
    auth::{Caller, Origin},
    cancel, contacts, events, export, grants, keys, limits,
    limits::RouteClass,
    mailbox_patch, mailbox_state, mailboxes, oauth, oauth_reauth, operator, pacing, recheck, reconnect, sends,
    suppressions, usage, webhook_deliveries, webhooks, workspaces,
};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the health check, and the OAuth callback (its single-use state authenticates it).
    Public,
    /// The operator's admin token only: the operator's surface (metrics).
    Admin,
    /// An API key whose role or scopes include this scope (in a child: the grant's too).
    Key(Scope),
    /// The operator's admin token, or a key with this scope (workspaces: top-level ones by the
    /// operator, client sub-workspaces by an agency's key).
    AdminOrKey(Scope),
}

/// One route as published: method, path and access rule.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path, with `{param}` placeholders.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

type Handler = MethodRouter<Arc<AppState>>;

fn table() -> Vec<(RouteSpec, Handler)> {
    use Access::{Admin, AdminOrKey, Key, Public};
    use Scope::*;
    let r = |method, path, access, handler: Handler| (RouteSpec { method, path, access }, handler);
    vec![
        r("GET", "/health", Public, get(crate::health)),
        r("GET", "/metrics", Admin, get(crate::metrics)),
        r("GET", "/v1/openapi.json", Public, get(crate::openapi::serve)),
        r("POST", "/v1/mailboxes", Key(MailboxesWrite), post(mailboxes::connect)),
        r("GET", "/v1/mailboxes", Key(MailboxesRead), get(mailbox_state::list)),
        r("GET", "/v1/mailboxes/{id}", Key(MailboxesRead), get(mailboxes::show)),
        r("PATCH", "/v1/mailboxes/{id}", Key(MailboxesWrite), patch(mailbox_patch::patch)),
        r("PUT", "/v1/mailboxes/{id}/credentials", Key(MailboxesWrite), put(reconnect::put)),
        r("POST", "/v1/mailboxes/{id}/pause", Key(MailboxesWrite), post(mailbox_state::pause)),
        r("POST", "/v1/mailboxes/{id}/resume", Key(MailboxesWrite), post(mailbox_state::resume)),
        r("DELETE", "/v1/mailboxes/{id}", Key(MailboxesWrite), delete(mailboxes::disconnect)),
        r("PUT", "/v1/mailboxes/{id}/pacing", Key(MailboxesWrite), put(pacing::put)),
        r("POST", "/v1/mailboxes/recheck", Key(MailboxesWrite), post(recheck::all)),
        r("POST", "/v1/mailboxes/{id}/recheck", Key(MailboxesWrite), post(recheck::one)),
        r("POST", "/v1/mailboxes/oauth/{provider}/start", Key(MailboxesWrite), post(oauth::start)),
        r("POST", "/v1/mailboxes/{id}/oauth/start", Key(MailboxesWrite), post(oauth_reauth::restart)),
        r("GET", "/v1/oauth/callback", Public, get(oauth::callback)),
        r("POST", "/v1/sends", Key(SendsWrite), post(sends::create)),
        r("POST", "/v1/sends/batch", Key(SendsWrite), post(sends::create_batch)),
        r("GET", "/v1/sends", Key(SendsRead), get(operator::list)),
        r("GET", "/v1/sends/{id}", Key(SendsRead), get(sends::show)),
        r("POST", "/v1/sends/cancel", Key(SendsWrite), post(cancel::many)),
        r("POST", "/v1/sends/{id}/cancel", Key(SendsWrite), post(cancel::one)),
        r("POST", "/v1/sends/{id}/resolve", Key(SendsResolve), post(operator::resolve)),
        r("GET", "/v1/events", Key(EventsRead), get(events::list)),
        r("POST", "/v1/webhooks", Key(WebhooksWrite), post(webhooks::create)),
        r("GET", "/v1/webhooks", Key(WebhooksRead), get(webhooks::list)),
        r("DELETE", "/v1/webhooks/{id}", Key(WebhooksWrite), delete(webhooks::delete)),
        r("PATCH", "/v1/webhooks/{id}", Key(WebhooksWrite), patch(webhooks::patch)),
        r("POST", "/v1/webhooks/{id}/rotate-secret", Key(WebhooksWrite), post(webhooks::rotate_secret)),
        r("POST", "/v1/webhooks/{id}/test", Key(WebhooksWrite), post(webhook_deliveries::test)),
        r("GET", "/v1/webhooks/{id}/deliveries", Key(WebhooksRead), get(webhook_deliveries::list)),
        r(
            "POST",
            "/v1/webhooks/{id}/deliveries/{event_id}/replay",
            Key(WebhooksWrite),
            post(webhook_deliveries::replay),
        ),
        r("GET", "/v1/data-keys", Key(VaultRead), get(keys::status)),
        r("POST", "/v1/data-keys/rotate", Key(VaultRotate), post(keys::rotate)),
        r("POST", "/v1/workspaces", AdminOrKey(WorkspacesWrite), post(workspaces::create)),
        r("GET", "/v1/workspaces", AdminOrKey(WorkspacesRead), get(workspaces::list)),
        r("GET", "/v1/workspaces/{id}", AdminOrKey(WorkspacesRead), get(workspaces::show)),
        r("DELETE", "/v1/workspaces/{id}", AdminOrKey(WorkspacesWrite), delete(workspaces::delete)),
        r("POST", "/v1/workspaces/{id}/grants", Key(GrantsWrite), post(grants::create)),
        r("GET", "/v1/workspaces/{id}/grants", Key(WorkspacesRead), get(grants::list)),
        r("DELETE", "/v1/workspaces/{id}/grants/{grant}", Key(GrantsWrite), delete(grants::revoke)),
        r("POST", "/v1/keys", Key(KeysWrite), post(api_keys::create)),
        r("GET", "/v1/keys", Key(KeysRead), get(api_keys::list)),
        r("DELETE", "/v1/keys/{id}", Key(KeysWrite), delete(api_keys::revoke)),
        r("GET", "/v1/suppressions", Key(SuppressionsRead), get(suppressions::list)),
        r("POST", "/v1/suppressions", Key(SuppressionsWrite), post(suppressions::add)),
        r("POST", "/v1/suppressions/import", Key(SuppressionsWrite), post(suppressions::import)),
        r("DELETE", "/v1/suppressions/{address}", Key(SuppressionsWrite), delete(suppressions::remove)),
        r("POST", "/v1/contacts/erase", Key(ContactsErase), post(contacts::erase)),
        r("GET", "/v1/export", Key(ExportRead), get(export::export)),
        r("GET", "/v1/audit", Key(AuditRead), get(audit::list)),
        r("GET", "/v1/usage", Key(UsageRead), get(usage::get)),
    ]
}

/// Every route and its access rule (tests walk it; the README publishes it).
pub fn route_table() -> Vec<RouteSpec> {
    table().into_iter().map(|(spec, _)| spec).collect()
}

/// The routes, each keyed route behind the access layer for its scope.
pub(crate) fn build(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let mut by_path: BTreeMap<&'static str, Handler> = BTreeMap::new();
    for (spec, handler) in table() {
        let handler = match spec.access {
            Access::Public => handler,
            access => {
                let class = RouteClass::of(spec.method, spec.path);
                handler.route_layer(middleware::from_fn_with_state((state.clone(), access, class), require))
            }
        };
        let merged = match by_path.remove(spec.path) {
            Some(other) => other.merge(handler),
            None => handler,
        };
        by_path.insert(spec.path, merged);
    }
    by_path.into_iter().fold(Router::new(), |router, (path, handler)| router.route(path, handler))
}

/// The access layer: the admin token where the route takes it, otherwise a live key (401)
/// that reaches the workspace it names (404) and holds the route's scope there (403 naming
/// it). The handler finds the caller in the request.
async fn require(
    State((state, access, class)): State<(Arc<AppState>, Access, RouteClass)>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let origin = origin(&state, &req);
    let presents_admin_token = auth::bearer(req.headers()).is_ok_and(crate::admin_token::looks_like_admin_token);
    let caller = match (access, presents_admin_token) {
        (Access::Public, _) => return Ok(next.run(req).await),
        (Access::Admin, _) | (Access::AdminOrKey(_), true) => {
            if !auth::bearer(req.headers()).is_ok_and(|t| state.admin.verify(t)) {
                // Only a wrong admin token is a failed authentication; an API key (or nothing)
                // at the operator's route is simply the wrong credential for it.
                if presents_admin_token {
                    auth::record_failure(&state, req.headers(), &origin, "a wrong admin token").await;
                    limits::failed_auth(&state, &origin.source).await?;
                }
                return Err(if access == Access::Admin { ApiError::AdminOnly } else { ApiError::Unauthorized });
            }
            Caller::Admin(origin)
        }
        (Access::Key(scope) | Access::AdminOrKey(scope), _) => {
            match auth::authenticate(&state, req.headers(), scope, origin.clone()).await {
                Ok(auth) => Caller::Key(auth),
                Err(e @ (ApiError::Unauthorized | ApiError::BadChecksum)) => {
                    auth::record_failure(&state, req.headers(), &origin, &e.to_string()).await;
                    // Past the source's limit on failures the answer is 429; a valid key from
                    // the same address is never refused for them.
                    limits::failed_auth(&state, &origin.source).await?;
                    return Err(e);
                }
                // A valid key refused here (a scope it lacks, a workspace out of its reach)
                // still draws on its own bucket: probing is limited like any other call.
                Err(e) => {
                    if let Some(key) = auth::bearer(req.headers()).ok().and_then(|t| auth::parse_token(t).ok()) {
                        limits::admit_key(&state, key.0, class).await?;
                    }
                    return Err(e);
                }
            }
        }
    };
    let (who, standing) = match &caller {
        Caller::Admin(_) => ("admin".to_owned(), None),
        Caller::Key(auth) => (auth.key.to_string(), limits::admit(&state, auth, class).await?),
    };
    req.extensions_mut().insert(caller);
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(crate::edge::AccessKey(who));
    if let Some(s) = standing {
        s.write_headers(&mut resp, false);
    }
    Ok(resp)
}

/// Where the request came from: the configured trusted proxy's header when set and present
/// (its last address: the one the proxy itself appended; earlier ones are the client's
/// word), the peer address otherwise; and the request's id.
fn origin(state: &AppState, req: &Request) -> Origin {
    let proxied = state
        .trusted_proxy_header
        .as_ref()
        .and_then(|h| req.headers().get(h.as_str()))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().chars().take(100).collect::<String>())
        .filter(|v| !v.is_empty());
    let peer = || {
        req.extensions().get::<ConnectInfo<SocketAddr>>().map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
    };
    let request_id = req.extensions().get::<crate::edge::RequestId>().map_or_else(String::new, |r| r.0.clone());
    Origin { source: proxied.unwrap_or_else(peer), request_id }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_publishes_every_route_with_what_it_needs() {
        let readme = include_str!("../../../README.md");
        for spec in route_table() {
            let needle = format!("| `{} {}` |", spec.method, spec.path);
            let row = readme.lines().find(|l| l.starts_with(&needle));
            let row = row.unwrap_or_else(|| panic!("the README's route table lacks {needle}"));
            let needs = match spec.access {
                Access::Public => "—".to_owned(),
                Access::Admin => "admin token".to_owned(),
                Access::Key(s) => format!("| `{s}` |"),
                Access::AdminOrKey(s) => format!("admin token or `{s}`"),
            };
            assert!(row.contains(&needs), "{row} should say {needs}");
            // The role columns: Owner, Admin, Operator, Analyst, Billing.
            let cells: Vec<&str> = row.split('|').map(str::trim).filter(|c| !c.is_empty()).skip(2).collect();
            for (role, cell) in mailroom_domain::Role::ALL.iter().zip(&cells) {
                let want = match spec.access {
                    Access::Public => "open",
                    Access::Admin => "401",
                    Access::Key(s) | Access::AdminOrKey(s) if role.scopes().contains(&s) => "✓",
                    _ => "403",
                };
                assert_eq!(*cell, want, "{needle} for {role}");
            }
            assert_eq!(cells.len(), mailroom_domain::Role::ALL.len(), "{row}");
        }
    }
}
