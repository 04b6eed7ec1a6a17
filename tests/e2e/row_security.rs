//! Row-level security under the application's own filters: with the API's role, a query that
//! names no workspace at all still sees and writes only the rows of the workspace its
//! transaction works in, nothing without one, and a pooled connection carries no workspace
//! from one transaction to the next.

use mailroom_domain::WorkspaceId;
use mailroom_store::{PgPool, admin, roles::ServiceRole, scope};
use mailroom_tests::{TestApp, peers, recipient};

/// Every table with a `workspace_id` column, from the catalog (so a table added later is
/// covered without touching this test).
async fn tenant_tables(app: &TestApp) -> Vec<String> {
    let sql = "SELECT c.relname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE a.attname = 'workspace_id' AND c.relkind = 'r' AND n.nspname = 'public' ORDER BY 1";
    admin::scalar_strings(&app.pool, sql).await.unwrap()
}

/// What the API's role counts with `sql` in a transaction working in `ws`.
async fn count_in(api: &PgPool, ws: WorkspaceId, sql: &str) -> i64 {
    let mut tx = scope::begin(api, ws).await.unwrap();
    admin::scalar_count_on(&mut tx, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The start of the database's refusal of a statement, if it refused.
fn refused(done: Result<u64, mailroom_store::StoreError>) -> Option<String> {
    let Err(mailroom_store::StoreError::Database(e)) = done else { return None };
    Some(e.as_database_error()?.message().chars().take(35).collect())
}

/// Connects a mailbox and accepts one send in the workspace of `token`.
async fn populate(app: &TestApp, token: &str, key: &str) {
    let req = TestApp::mailbox_request(&peers().info.sender_password);
    let resp = app.http.post(format!("{}/v1/mailboxes", app.base)).bearer_auth(token).json(&req).send().await.unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let mailbox: serde_json::Value = resp.json().await.unwrap();
    let body = TestApp::send_body(mailbox["id"].as_str().unwrap(), &recipient("rls"), "Walls");
    let resp = app
        .http
        .post(format!("{}/v1/sends", app.base))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_role_sees_only_its_workspace_whatever_a_query_names() {
    let app = TestApp::spawn().await;
    let other = app.other_workspace_token().await;
    populate(&app, &app.token.clone(), "a-1").await;
    populate(&app, &other, "b-1").await;
    let a = app.workspace;
    let api = app.role_pool(ServiceRole::Api).await;

    // Every tenant table has the wall, and the API's role has a policy on it.
    let tables = tenant_tables(&app).await;
    assert!(tables.len() >= 15, "{tables:?}");
    for t in tables.iter().map(String::as_str).chain(["workspaces"]) {
        let walled = format!(
            "SELECT count(*) FROM pg_class c WHERE c.relname = '{t}' AND c.relrowsecurity
               AND EXISTS (SELECT 1 FROM pg_policy p JOIN pg_roles r ON r.oid = ANY (p.polroles)
                           WHERE p.polrelid = c.oid AND r.rolname = 'mailroom_api')"
        );
        assert_eq!(app.count(&walled).await, 1, "{t} has no row-level security for the API");
    }

    // The application's filter left out: only the transaction's workspace answers, though the
    // owner sees the other workspace's rows in the same tables.
    for t in &tables {
        let readable = format!("SELECT count(*) WHERE has_table_privilege('mailroom_api', '{t}', 'SELECT')");
        if app.count(&readable).await == 0 {
            continue; // the API's grants keep it out altogether (inbound messages)
        }
        let theirs = format!("SELECT count(*) FROM {t} WHERE workspace_id IS DISTINCT FROM '{}'", a.as_uuid());
        let ours = format!("SELECT count(*) FROM {t} WHERE workspace_id = '{}'", a.as_uuid());
        assert_eq!(count_in(&api, a, &theirs).await, 0, "{t}: another workspace's rows");
        assert_eq!(count_in(&api, a, &format!("SELECT count(*) FROM {t}")).await, app.count(&ours).await, "{t}");
    }
    for t in ["sends", "mailboxes", "mailbox_secrets", "api_keys", "workspace_keys", "audit_log"] {
        let theirs = format!("SELECT count(*) FROM {t} WHERE workspace_id <> '{}'", a.as_uuid());
        assert!(app.count(&theirs).await > 0, "{t}: the other workspace has rows the wall must hide");
        assert!(count_in(&api, a, &format!("SELECT count(*) FROM {t}")).await > 0, "{t}: our own rows show");
    }
    assert_eq!(count_in(&api, a, "SELECT count(*) FROM workspaces").await, 1);

    // No workspace, no rows; and none is left behind on a pooled connection.
    let one = mailroom_store::roles::connect_as(&app.database_url(), 1, ServiceRole::Api).await.unwrap();
    let mut tx = scope::begin(&one, a).await.unwrap();
    assert!(admin::scalar_count_on(&mut tx, "SELECT count(*) FROM sends").await.unwrap() > 0);
    tx.commit().await.unwrap();
    for t in ["sends", "mailboxes", "api_keys", "workspaces", "events"] {
        let sql = format!("SELECT count(*) FROM {t}");
        assert_eq!(admin::scalar_count(&one, &sql).await.unwrap(), 0, "{t} without a workspace");
    }

    // Writes into another workspace are refused or touch nothing.
    let b: String = admin::scalar_strings(
        &app.pool,
        &format!("SELECT workspace_id::text FROM sends WHERE workspace_id <> '{}'", a.as_uuid()),
    )
    .await
    .unwrap()
    .remove(0);
    let mut tx = scope::begin(&api, a).await.unwrap();
    let moved = format!("UPDATE sends SET state = 'cancelled' WHERE workspace_id = '{b}'");
    assert_eq!(admin::execute_on(&mut tx, &moved).await.unwrap(), 0);
    let planted = format!("INSERT INTO audit_log (workspace_id, actor, action) VALUES ('{b}', 'x', 'planted')");
    assert_eq!(
        refused(admin::execute_on(&mut tx, &planted).await).as_deref(),
        Some("new row violates row-level security")
    );
    drop(tx);
    let mut tx = scope::begin(&api, a).await.unwrap();
    let stolen = format!("UPDATE sends SET workspace_id = '{b}' WHERE workspace_id = '{}'", a.as_uuid());
    assert_eq!(
        refused(admin::execute_on(&mut tx, &stolen).await).as_deref(),
        Some("new row violates row-level security")
    );
    drop(tx);
    let waiting = format!("SELECT count(*) FROM sends WHERE workspace_id = '{b}' AND state <> 'cancelled'");
    assert_eq!(app.count(&waiting).await, 1);
    app.stop().await;
}
