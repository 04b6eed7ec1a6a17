//! Least privilege between services, tested with each role itself: the reply worker cannot
//! read SMTP passwords, the send worker cannot write inbound messages, nothing but the API
//! writes API keys, the audit log takes inserts only, and no service role owns a table or
//! bypasses row-level security. (Every other end-to-end test runs the API and the workers on
//! their roles too, so the grants are shown to be enough.)

use mailroom_store::{PgPool, admin, roles::ServiceRole};
use mailroom_tests::{Options, TestApp, peers};
use serde_json::json;

/// Runs `sql` on `pool`; returns the SQLSTATE of its error, if any.
async fn refusal(pool: &PgPool, sql: &str) -> Option<String> {
    let e = admin::execute(pool, sql).await.err()?;
    let code = match &e {
        mailroom_store::StoreError::Database(d) => d.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()),
        _ => None,
    };
    Some(code.unwrap_or_else(|| format!("{e}")))
}

const DENIED: Option<&str> = Some("42501");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_role_holds_exactly_what_its_service_needs() {
    let app = TestApp::spawn_with(Options { in_process_worker: false, ..Options::default() }).await;
    let p = &peers().info;
    let mut req = TestApp::mailbox_request(&p.sender_password);
    req["imap"] = json!({ "host": "127.0.0.1", "port": p.imap_port, "tls": "none",
        "username": p.sender, "password": p.sender_password });
    let resp = app.post("/v1/mailboxes").json(&req).send().await.unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let (api, send, reply) = (
        app.role_pool(ServiceRole::Api).await,
        app.role_pool(ServiceRole::SendWorker).await,
        app.role_pool(ServiceRole::ReplyWorker).await,
    );
    let count = |pool: &PgPool, sql: &'static str| {
        let pool = pool.clone();
        async move { admin::scalar_count(&pool, sql).await.unwrap() }
    };

    // The reply worker sees the IMAP password, never the SMTP one; the send worker sees both.
    let smtp = "SELECT count(*) FROM mailbox_secrets WHERE field = 'smtp_password'";
    let imap = "SELECT count(*) FROM mailbox_secrets WHERE field = 'imap_password'";
    assert_eq!((count(&send, smtp).await, count(&reply, smtp).await, count(&reply, imap).await), (1, 0, 1));
    let overwrite = "UPDATE mailbox_secrets SET sealed = sealed WHERE field = 'smtp_password'";
    assert_eq!(admin::execute(&reply, overwrite).await.unwrap(), 0, "not even blindly");

    // Inbound messages are the reply worker's to write.
    let inbound = "INSERT INTO inbound_messages (workspace_id, mailbox_id, dedupe_key, kind)
                   SELECT workspace_id, id, 'x', 'reply' FROM mailboxes";
    assert_eq!(refusal(&send, inbound).await.as_deref(), DENIED);
    assert_eq!(refusal(&api, inbound).await.as_deref(), DENIED);
    assert_eq!(refusal(&reply, inbound).await, None);

    // API keys are the API's to write.
    let new_key = "INSERT INTO api_keys (id, workspace_id, name, secret_hash)
                   SELECT gen_random_uuid(), workspace_id, 'x', '\\x00' FROM api_keys LIMIT 1";
    let revoke = "UPDATE api_keys SET revoked_at = now() WHERE false";
    for pool in [&send, &reply] {
        assert_eq!(refusal(pool, new_key).await.as_deref(), DENIED);
        assert_eq!(refusal(pool, revoke).await.as_deref(), DENIED);
    }
    assert_eq!(refusal(&api, revoke).await, None);

    // Where a mailbox connects is the API's to change: a worker that could would send the
    // credentials anywhere.
    for pool in [&send, &reply] {
        let redirect = "UPDATE mailboxes SET smtp_host = 'attacker.example' WHERE false";
        assert_eq!(refusal(pool, redirect).await.as_deref(), DENIED);
    }

    // The reply worker stops sequences through one function, and touches sends no other way.
    assert_eq!(refusal(&reply, "UPDATE sends SET state = 'sent' WHERE false").await.as_deref(), DENIED);
    assert_eq!(refusal(&send, "SELECT stop_sequence(gen_random_uuid(), 'x', 'reply', 'x')").await.as_deref(), DENIED);

    // The audit log: inserts only, for everyone (the API also reads it for GET /v1/audit).
    for pool in [&api, &send, &reply] {
        for sql in ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"] {
            assert_eq!(refusal(pool, sql).await.as_deref(), DENIED, "{sql}");
        }
    }
    assert_eq!(refusal(&send, "SELECT count(*) FROM audit_log").await.as_deref(), DENIED);
    assert_eq!(refusal(&reply, "INSERT INTO audit_log (action, actor) VALUES ('x', 'y')").await.as_deref(), DENIED);

    // No service role owns a table or may bypass row-level security.
    let ours = "('mailroom_api', 'mailroom_send', 'mailroom_reply')";
    let powers = format!("SELECT count(*) FROM pg_roles WHERE rolname IN {ours} AND (rolsuper OR rolbypassrls)");
    assert_eq!(app.count(&powers).await, 0);
    let owned = format!("SELECT count(*) FROM pg_tables WHERE tableowner IN {ours}");
    assert_eq!(app.count(&owned).await, 0);
    app.stop().await;
}
