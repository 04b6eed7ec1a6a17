//! Roles and scopes, deny by default, across workspaces: every route of the route table,
//! called by a key of every role, in its own workspace, in a client sub-workspace with a grant,
//! in one without, and from another agency; the admin token only where the operator is
//! expected; the audit log refuses TRUNCATE, UPDATE and DELETE.

use mailroom_api::{
    provision::{self, Actor},
    routes::{Access, RouteSpec, route_table},
};
use mailroom_domain::{Grant, Role, Scope, WorkspaceId};
use mailroom_tests::{Options, TestApp};
use serde_json::{Value, json};

fn request(
    app: &TestApp,
    spec: &RouteSpec,
    token: Option<&str>,
    acting_in: Option<WorkspaceId>,
) -> reqwest::RequestBuilder {
    let path = spec
        .path
        .replace("{id}", "x_00000000000000000000000000000000")
        .replace("{grant}", "x_00000000000000000000000000000000")
        .replace("{provider}", "google");
    let method = reqwest::Method::from_bytes(spec.method.as_bytes()).unwrap();
    let mut req = app.http.request(method, format!("{}{path}", app.base)).json(&json!({}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ws) = acting_in {
        req = req.header("Mailroom-Workspace", ws.to_string());
    }
    req
}

async fn call(app: &TestApp, spec: &RouteSpec, token: Option<&str>, acting_in: Option<WorkspaceId>) -> (u16, Value) {
    let resp = request(app, spec, token, acting_in).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn scope_of(spec: &RouteSpec) -> Option<Scope> {
    match spec.access {
        Access::Public | Access::Admin => None,
        Access::Key(s) | Access::AdminOrKey(s) => Some(s),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_lets_exactly_the_roles_holding_its_scope_through_in_every_workspace_it_reaches() {
    let app = TestApp::spawn_with(Options { in_process_worker: false, ..Options::default() }).await;
    let agency = app.workspace;
    let local = Actor::local("test");
    let granted =
        provision::create_workspace_in(&app.pool, &app.vault, "client a", Some(agency), false, local).await.unwrap().0;
    let ungranted =
        provision::create_workspace_in(&app.pool, &app.vault, "client b", Some(agency), false, local).await.unwrap().0;
    let mut conn = app.pool.acquire().await.unwrap();
    mailroom_store::grants::replace(&mut conn, granted, agency, Scope::ALL, "test").await.unwrap();
    drop(conn);
    let other_agency = app.other_workspace_token().await;
    let missing = WorkspaceId::new();

    let mut keys = vec![];
    for role in Role::ALL {
        keys.push((Grant::Role(*role), app.key_with(Grant::Role(*role)).await));
    }
    keys.push((Grant::Scopes(vec![Scope::SendsRead]), app.key_with(Grant::Scopes(vec![Scope::SendsRead])).await));
    let (mut calls, mut denied) = (0, 0);
    for spec in route_table() {
        let what = format!("{} {}", spec.method, spec.path);
        let (anonymous, _) = call(&app, &spec, None, None).await;
        let (as_admin, _) = call(&app, &spec, Some(&app.admin_token), None).await;
        if spec.access == Access::Admin {
            assert_eq!((anonymous, as_admin), (401, 200), "{what}: the operator's route");
            for (grant, token) in &keys {
                let (status, body) = call(&app, &spec, Some(token), None).await;
                let code = body["error"]["code"].as_str();
                assert_eq!((status, code), (401, Some("admin_token_required")), "{what} as {grant:?}");
            }
            continue;
        }
        let Some(scope) = scope_of(&spec) else {
            assert!(![401, 403].contains(&anonymous) && anonymous < 500, "{what}: {anonymous}");
            continue;
        };
        assert_eq!(anonymous, 401, "{what} without a key");
        match spec.access {
            Access::AdminOrKey(_) => assert!(![401, 403].contains(&as_admin) && as_admin < 500, "{what}: {as_admin}"),
            _ => assert_eq!(as_admin, 401, "{what}: the admin token is no workspace key"),
        }
        // The answer for a workspace out of reach, byte for byte.
        let (status, nowhere) = call(&app, &spec, Some(&keys[0].1), Some(missing)).await;
        assert_eq!(status, 404, "{what}");
        for (grant, token) in &keys {
            for acting_in in [None, Some(granted)] {
                let (status, body) = call(&app, &spec, Some(token), acting_in).await;
                calls += 1;
                let case = format!("{what} as {grant:?} in {acting_in:?}: {status} {body}");
                assert!(status < 500, "{case}");
                if grant.allows(scope) {
                    assert!(![401, 403].contains(&status), "{case}");
                } else {
                    denied += 1;
                    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("missing_scope")), "{case}");
                    let message = body["error"]["message"].as_str().unwrap();
                    assert!(message.contains(&format!("`{scope}`")), "the answer names the scope: {message}");
                }
            }
            let (status, body) = call(&app, &spec, Some(token), Some(ungranted)).await;
            calls += 1;
            assert_eq!((status, &body), (404, &nowhere), "{what} as {grant:?} in a child without a grant");
        }
        let (status, body) = call(&app, &spec, Some(&other_agency), Some(granted)).await;
        calls += 1;
        assert_eq!((status, &body), (404, &nowhere), "{what} from another agency");
    }
    let keyed = route_table().iter().filter(|r| matches!(r.access, Access::Key(_) | Access::AdminOrKey(_))).count();
    assert_eq!(calls, keyed * (keys.len() * 3 + 1), "every keyed route × every key × every case");
    assert!(denied > keyed, "most roles are refused most routes: {denied}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_refuses_truncate_update_and_delete() {
    let app = TestApp::spawn_with(Options { in_process_worker: false, ..Options::default() }).await;
    let before = app.count("SELECT count(*) FROM audit_log").await;
    assert!(before > 0);
    for sql in ["TRUNCATE audit_log", "UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"] {
        let refused = mailroom_store::admin::execute(&app.pool, sql).await;
        assert!(refused.is_err(), "{sql} went through");
    }
    assert_eq!(app.count("SELECT count(*) FROM audit_log").await, before);
    app.stop().await;
}
