//! Roles and scopes, deny by default: every route of the route table, called by a key of
//! every role, answers 403 naming the missing scope exactly when the role lacks it, and 401
//! without a key; the audit log refuses TRUNCATE, UPDATE and DELETE.

use mailroom_api::routes::{Access, route_table};
use mailroom_domain::{Grant, Role, Scope};
use mailroom_tests::{Options, TestApp};
use serde_json::{Value, json};

fn request(app: &TestApp, method: &str, path: &str) -> reqwest::RequestBuilder {
    let path = path.replace("{id}", "x_00000000000000000000000000000000").replace("{provider}", "google");
    let url = format!("{}{path}", app.base);
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    app.http.request(method, url).json(&json!({}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_lets_exactly_the_roles_holding_its_scope_through() {
    let app = TestApp::spawn_with(Options { in_process_worker: false, ..Options::default() }).await;
    let mut keys = vec![];
    for role in Role::ALL {
        keys.push((Grant::Role(*role), app.key_with(Grant::Role(*role)).await));
    }
    keys.push((Grant::Scopes(vec![Scope::SendsRead]), app.key_with(Grant::Scopes(vec![Scope::SendsRead])).await));
    let (mut calls, mut denied) = (0, 0);
    for spec in route_table() {
        let anonymous = request(&app, spec.method, spec.path).send().await.unwrap().status().as_u16();
        let Access::Key(scope) = spec.access else {
            assert!(![401, 403].contains(&anonymous) && anonymous < 500, "{} {}: {anonymous}", spec.method, spec.path);
            continue;
        };
        assert_eq!(anonymous, 401, "{} {} without a key", spec.method, spec.path);
        for (grant, token) in &keys {
            let resp = request(&app, spec.method, spec.path).bearer_auth(token).send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            calls += 1;
            assert!(status < 500, "{} {} as {grant:?}: {status} {body}", spec.method, spec.path);
            if grant.allows(scope) {
                assert!(![401, 403].contains(&status), "{} {} as {grant:?}: {status} {body}", spec.method, spec.path);
            } else {
                denied += 1;
                assert_eq!(status, 403, "{} {} as {grant:?}: {body}", spec.method, spec.path);
                assert_eq!(body["error"]["code"], "missing_scope", "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(message.contains(&format!("`{scope}`")), "the answer names the scope: {message}");
            }
        }
    }
    let keyed = route_table().iter().filter(|r| r.access != Access::Public).count();
    assert_eq!(calls, keyed * keys.len(), "every keyed route × every key");
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
