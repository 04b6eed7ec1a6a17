//! The route table: every route with the one thing it needs to be called, in one place. The
//! router is built from this table, so no route can exist without a declared access rule, and
//! the access layer authenticates the key and checks the scope before any handler runs: deny
//! by default. The README publishes the same table (route × role).

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::Response,
    routing::{MethodRouter, delete, get, post, put},
};
use mailroom_domain::Scope;

use crate::{ApiError, AppState, auth, events, keys, mailboxes, oauth, operator, pacing, recheck, sends, webhooks};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the health check, and the OAuth callback (its single-use state authenticates it).
    Public,
    /// An API key of the workspace whose role or scopes include this scope.
    Key(Scope),
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
    use Access::{Key, Public};
    use Scope::*;
    let r = |method, path, access, handler: Handler| (RouteSpec { method, path, access }, handler);
    vec![
        r("GET", "/health", Public, get(crate::health)),
        r("GET", "/metrics", Public, get(crate::metrics)),
        r("POST", "/v1/mailboxes", Key(MailboxesWrite), post(mailboxes::connect)),
        r("GET", "/v1/mailboxes/{id}", Key(MailboxesRead), get(mailboxes::show)),
        r("DELETE", "/v1/mailboxes/{id}", Key(MailboxesWrite), delete(mailboxes::disconnect)),
        r("PUT", "/v1/mailboxes/{id}/pacing", Key(MailboxesWrite), put(pacing::put)),
        r("POST", "/v1/mailboxes/recheck", Key(MailboxesWrite), post(recheck::all)),
        r("POST", "/v1/mailboxes/{id}/recheck", Key(MailboxesWrite), post(recheck::one)),
        r("POST", "/v1/mailboxes/oauth/{provider}/start", Key(MailboxesWrite), post(oauth::start)),
        r("GET", "/v1/oauth/callback", Public, get(oauth::callback)),
        r("POST", "/v1/sends", Key(SendsWrite), post(sends::create)),
        r("POST", "/v1/sends/batch", Key(SendsWrite), post(sends::create_batch)),
        r("GET", "/v1/sends", Key(SendsRead), get(operator::list)),
        r("GET", "/v1/sends/{id}", Key(SendsRead), get(sends::show)),
        r("POST", "/v1/sends/{id}/resolve", Key(SendsResolve), post(operator::resolve)),
        r("GET", "/v1/events", Key(EventsRead), get(events::list)),
        r("POST", "/v1/webhooks", Key(WebhooksWrite), post(webhooks::create)),
        r("GET", "/v1/webhooks", Key(WebhooksRead), get(webhooks::list)),
        r("DELETE", "/v1/webhooks/{id}", Key(WebhooksWrite), delete(webhooks::delete)),
        r("GET", "/v1/webhooks/{id}/deliveries", Key(WebhooksRead), get(webhooks::deliveries)),
        r("GET", "/v1/data-keys", Key(VaultRead), get(keys::status)),
        r("POST", "/v1/data-keys/rotate", Key(VaultRotate), post(keys::rotate)),
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
            Access::Key(scope) => handler.route_layer(middleware::from_fn_with_state((state.clone(), scope), require)),
        };
        let merged = match by_path.remove(spec.path) {
            Some(other) => other.merge(handler),
            None => handler,
        };
        by_path.insert(spec.path, merged);
    }
    by_path.into_iter().fold(Router::new(), |router, (path, handler)| router.route(path, handler))
}

/// The access layer: a live key of the workspace (401 otherwise), holding the route's scope
/// (403 naming it otherwise). The handler finds the authenticated key in the request.
async fn require(
    State((state, scope)): State<(Arc<AppState>, Scope)>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = auth::authenticate(&state, req.headers()).await?;
    if !key.grant.allows(scope) {
        return Err(ApiError::MissingScope(scope));
    }
    req.extensions_mut().insert(key);
    Ok(next.run(req).await)
}
