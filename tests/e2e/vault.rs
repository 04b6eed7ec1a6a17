//! The vault in the running engine: rotation while sends flow, crypto-shredding of a mailbox
//! and of a workspace, KMS outages that delay but drop nothing, and credentials that will
//! never open marking their mailbox unusable.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use mailroom_devkit::kms::KmsMode;
use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_keyring::{OpenError, open_secret};
use mailroom_store::{audit::Actor, keys, secrets};
use mailroom_tests::{Options, TestApp, TestKms, peers, recipient};
use mailroom_vault::{Field, KeyContext, SealContext, WrappedKey};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

async fn batch(app: &TestApp, mailbox: &str, to: &str, from: usize, n: usize) {
    let items: Vec<Value> = (from..from + n)
        .map(|i| {
            let mut body = TestApp::send_body(mailbox, to, "Rotating");
            body["idempotency_key"] = json!(format!("rot-{i}"));
            body
        })
        .collect();
    let resp = app.post("/v1/sends/batch").json(&json!({ "items": items })).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let results: Value = resp.json().await.unwrap();
    let created = results["results"].as_array().unwrap().iter().filter(|r| r["status"] == "created").count();
    assert_eq!(created, n, "{results}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_while_sends_flow_fails_none_and_destroys_the_old_version() {
    let app = TestApp::spawn().await;
    let mailboxes = [app.connect_mailbox_with_imap("provider").await, app.connect_mailbox().await];
    let to = recipient("rotation");
    batch(&app, &mailboxes[0], &to, 0, 50).await;
    // An erased address: its hash key is sealed under version 1 too, and must move.
    let gone = recipient("gone");
    let erase = app.post("/v1/contacts/erase").json(&json!({ "address": gone })).send().await.unwrap();
    assert_eq!(erase.status(), 200);
    let resp = app.post("/v1/data-keys/rotate").send().await.unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.json::<Value>().await.unwrap()["version"], 2);
    let again = app.post("/v1/data-keys/rotate").send().await.unwrap();
    assert_eq!(again.status(), 409, "one rotation at a time");
    // Sends, and a connect, keep going through every step of the rotation.
    for i in 1..6 {
        batch(&app, &mailboxes[i % 2], &to, i * 50, 50).await;
    }
    let third = app.connect_mailbox().await;
    batch(&app, &third, &to, 300, 50).await;
    let done = "SELECT count(*) FROM workspace_keys WHERE (version, state) IN ((1, 'destroyed'), (2, 'active'))";
    app.wait_until(done, 2, Duration::from_secs(60)).await;
    let counts = app.wait_for_terminal(350, Duration::from_secs(120)).await;
    assert_eq!(counts, vec![("sent".to_owned(), 350)], "no send failed during the rotation");
    assert_eq!(app.count("SELECT count(*) FROM mailbox_secrets WHERE key_version <> 2").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM mailbox_secrets").await, 4);
    assert_eq!(app.count("SELECT count(*) FROM workspace_secrets WHERE key_version = 2").await, 1);
    let (status, refused) = app.send("gone-1", &TestApp::send_body(&mailboxes[1], &gone, "Hi")).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("recipient_suppressed")), "{refused}");
    assert_eq!(app.count("SELECT count(*) FROM workspace_keys WHERE wrapped_key IS NOT NULL").await, 1);
    // Re-sealed values open under version 2.
    for m in &mailboxes {
        let mbx: MailboxId = m.parse().unwrap();
        let pw = open_secret(&app.pool, &app.vault, app.workspace, mbx, Field::SmtpPassword).await.unwrap();
        assert_eq!(pw.expose_secret(), peers().info.sender_password);
    }
    let keys: Value = app.get("/v1/data-keys").send().await.unwrap().json().await.unwrap();
    assert_eq!(keys["keys"][0]["state"], "destroyed", "{keys}");
    assert_eq!(keys["keys"][1]["sealed_values"], 4, "{keys}");
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action LIKE 'key.%'").await, 3);
    // The key cache's counters, for metrics: a handful of unwraps for 350 sends and a rotation.
    let metrics = app.http.get(format!("{}/metrics", app.base)).bearer_auth(&app.admin_token).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let calls = app.vault.stats().provider_calls;
    assert!(
        metrics.contains(&format!("mailroom_vault_provider_calls_total{{provider=\"local\"}} {calls}")),
        "{metrics}"
    );
    assert!(calls <= 4, "{calls} key-provider calls");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnecting_a_mailbox_destroys_its_credentials_and_cancels_its_waiting_sends() {
    let app = TestApp::spawn().await;
    let mut req = TestApp::mailbox_request(&peers().info.sender_password);
    req["pacing"] = json!({ "daily_cap": null, "min_gap_secs": 3600, "jitter_secs": 0, "max_sessions": 1 });
    let resp = app.post("/v1/mailboxes").json(&req).send().await.unwrap();
    let mailbox = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let to = recipient("shred");
    for i in 0..5 {
        app.send(&format!("shred-{i}"), &TestApp::send_body(&mailbox, &to, "Waiting")).await;
    }
    // One goes out; the rest wait an hour for their slots.
    app.wait_until("SELECT count(*) FROM sends WHERE state = 'sent'", 1, Duration::from_secs(30)).await;
    let other = app.other_workspace_token().await;
    let foreign = app.http.delete(format!("{}/v1/mailboxes/{mailbox}", app.base)).bearer_auth(other).send().await;
    assert_eq!(foreign.unwrap().status(), 404);

    let resp = app.http.delete(format!("{}/v1/mailboxes/{mailbox}", app.base)).bearer_auth(&app.token).send().await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["destroyed"], json!(["smtp_password"]), "{body}");
    assert_eq!(body["cancelled_sends"], 4, "{body}");
    assert!(body["provider_grant"].as_str().unwrap().starts_with("none"), "{body}");
    assert_eq!(app.count("SELECT count(*) FROM mailbox_secrets").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM sends WHERE state = 'cancelled'").await, 4);
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'send.cancelled'").await, 4);
    let shown: Value = app.get(&format!("/v1/mailboxes/{mailbox}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["status"], "disconnected");
    let (status, body) = app.send("shred-new", &TestApp::send_body(&mailbox, &to, "Too late")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("mailbox_disconnected")));
    let (status, _) = app.send("shred-0", &TestApp::send_body(&mailbox, &to, "Waiting")).await;
    assert_eq!(status, 200, "a replay still answers");
    let again = app.http.delete(format!("{}/v1/mailboxes/{mailbox}", app.base)).bearer_auth(&app.token).send().await;
    let again: Value = again.unwrap().json().await.unwrap();
    assert_eq!((again["destroyed"].clone(), again["cancelled_sends"].clone()), (json!([]), json!(0)));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_workspace_is_deleted_none_of_its_ciphertexts_opens_by_any_means() {
    let app = TestApp::spawn().await;
    let mailbox: MailboxId = app.connect_mailbox_with_imap("provider").await.parse().unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    let sealed = secrets::of_workspace(&mut conn, app.workspace).await.unwrap();
    assert_eq!(sealed.len(), 2);
    let deleted =
        mailroom_keyring::shred::delete_workspace(&app.pool, &app.vault, app.workspace, &Actor::local("test")).await;
    let deleted = deleted.unwrap();
    assert_eq!((deleted.keys_destroyed, deleted.values_destroyed), (1, 2));

    // Every key row the database still has for the workspace, and every other workspace's key:
    // none opens a value sealed before the delete (the rows were copied out, as a backup would).
    let mut candidates: Vec<WrappedKey> = vec![];
    let all = keys::status(&mut conn, None).await.unwrap();
    for k in &all {
        let ws = WorkspaceId::from_uuid(k.workspace_id);
        if let Some(row) = keys::version(&mut conn, ws, k.version).await.unwrap() {
            candidates.extend(mailroom_keyring::wrapped_key(ws, row));
        }
    }
    assert!(all.iter().any(|k| k.workspace_id == app.workspace.as_uuid() && k.state == "destroyed"));
    assert!(candidates.iter().all(|k| k.context.workspace != app.workspace), "a key of the deleted workspace survived");
    for value in &sealed {
        let field = Field::parse(&value.field).unwrap();
        let ctx = SealContext { workspace: app.workspace, mailbox, field };
        for key in &candidates {
            assert!(app.vault.open(key, &ctx, &value.sealed).await.is_err());
            let moved = WrappedKey { context: KeyContext { workspace: app.workspace, ..key.context }, ..key.clone() };
            assert!(app.vault.open(&moved, &ctx, &value.sealed).await.is_err());
        }
    }
    let opened = open_secret(&app.pool, &app.vault, app.workspace, mailbox, Field::SmtpPassword).await;
    assert!(matches!(opened, Err(OpenError::Unusable { .. })));
    let resp = app.get(&format!("/v1/mailboxes/{mailbox}")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "the workspace's API keys are revoked");
    drop(conn);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_wait_out_a_kms_outage_and_all_go_out_when_it_returns() {
    let kms = TestKms::start().await;
    let opts = Options { provider: Some(Arc::new(kms.provider())), ..Options::default() };
    let app = TestApp::spawn_with(opts).await;
    for (round, (mode, prefix)) in
        [(KmsMode::Down, "kmsdown"), (KmsMode::Throttle, "kmsthrottle")].into_iter().enumerate()
    {
        // A mailbox of its own each round: no pooled SMTP session lets a send skip its credential.
        let mailbox = app.connect_mailbox().await;
        app.vault.forget_workspace(app.workspace);
        kms.proxy.set(mode);
        let to = recipient(prefix);
        for i in 0..10 {
            app.send(&format!("{prefix}-{i}"), &TestApp::send_body(&mailbox, &to, "Through an outage")).await;
        }
        let mbx = mailbox.parse::<MailboxId>().unwrap().as_uuid();
        let waiting = format!(
            "SELECT count(*) FROM sends WHERE last_response = 'waiting for the key provider' AND attempts = 0
             AND mailbox_id = '{mbx}'"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while app.count(&waiting).await == 0 {
            assert!(Instant::now() < deadline, "no send waited for the key provider");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let settled = format!(
            "SELECT count(*) FROM sends WHERE state IN ('sent', 'failed', 'ambiguous') AND mailbox_id = '{mbx}'"
        );
        assert_eq!(app.count(&settled).await, 0, "every send of the outage waits");
        assert_eq!(
            app.count("SELECT count(*) FROM mailboxes WHERE status <> 'active'").await,
            0,
            "not the mailbox's fault"
        );
        kms.proxy.set(KmsMode::Up);
        let n = 10 * (round as i64 + 1);
        let counts = app.wait_for_terminal(n, Duration::from_secs(60)).await;
        assert_eq!(counts, vec![("sent".to_owned(), n)], "{mode:?}");
        assert_eq!(app.delivered(&to).await.len(), 10);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_wrapped_key_makes_the_mailbox_unusable_loudly_and_without_a_retry_storm() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    app.execute("UPDATE workspace_keys SET wrapped_key = set_byte(wrapped_key, 20, get_byte(wrapped_key, 20) # 1)")
        .await;
    app.vault.forget_workspace(app.workspace);
    let calls_before = app.vault.stats().provider_calls;
    let to = recipient("tampered");
    for i in 0..5 {
        app.send(&format!("tamper-{i}"), &TestApp::send_body(&mailbox, &to, "Never opens")).await;
    }
    app.wait_until(
        "SELECT count(*) FROM sends WHERE state = 'retry_wait' AND next_attempt_at IS NULL",
        5,
        Duration::from_secs(30),
    )
    .await;
    let shown: Value = app.get(&format!("/v1/mailboxes/{mailbox}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["status"], "unusable", "{shown}");
    let reason = shown["status_reason"].as_str().unwrap();
    assert!(reason.contains(&app.workspace.to_string()), "the reason names the workspace: {reason}");
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'mailbox.unusable'").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM sends WHERE attempts > 0").await, 0, "no attempt was burnt");
    let calls = app.vault.stats().provider_calls - calls_before;
    assert!(calls <= 5, "{calls} unwrap calls for 5 sends");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_master_key_takes_over_after_rewrap_all_and_the_old_one_can_go() {
    use mailroom_vault::{CacheLimits, LocalProvider, Vault};
    let old = [7u8; 32];
    let opts = Options { provider: Some(Arc::new(LocalProvider::from_bytes(old))), ..Options::default() };
    let app = TestApp::spawn_with(opts).await;
    let mailbox: MailboxId = app.connect_mailbox_with_imap("provider").await.parse().unwrap();
    app.other_workspace_token().await;
    let both = LocalProvider::from_bytes([8; 32]).with_previous(LocalProvider::from_bytes(old));
    let during = Vault::new(Arc::new(both), CacheLimits::default());
    let done = mailroom_keyring::rewrap::rewrap_all(&app.pool, &during, &Actor::local("test")).await.unwrap();
    assert_eq!((done.rewrapped, done.already, done.raced), (2, 0, 0));
    let again = mailroom_keyring::rewrap::rewrap_all(&app.pool, &during, &Actor::local("test")).await.unwrap();
    assert_eq!((again.rewrapped, again.already), (0, 2), "a second run has nothing left to do");
    // Only the new master key from here on: the credential opens, the sealed value unchanged.
    let after = Vault::new(Arc::new(LocalProvider::from_bytes([8; 32])), CacheLimits::default());
    let pw = open_secret(&app.pool, &after, app.workspace, mailbox, Field::ImapPassword).await.unwrap();
    assert_eq!(pw.expose_secret(), peers().info.sender_password);
    let stale = Vault::new(Arc::new(LocalProvider::from_bytes(old)), CacheLimits::default());
    assert!(open_secret(&app.pool, &stale, app.workspace, mailbox, Field::ImapPassword).await.is_err());
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'key.rewrap'").await, 2);
    app.stop().await;
}
