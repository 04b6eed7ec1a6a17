//! A configuration mistake never hurts a tenant: a worker without the workspace's master key
//! leaves the mailbox active and its sends waiting, and a mailbox made unusable comes back by
//! a re-check once the cause is fixed, its parked sends delivered once each.

use std::{sync::Arc, time::Duration};

use mailroom_tests::{Options, TestApp, WorkerProcess, recipient};
use mailroom_vault::{CacheLimits, LocalProvider, Vault};
use serde_json::Value;

async fn send_some(app: &TestApp, mailbox: &str, to: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = vec![];
    for i in 0..n {
        let (status, body) = app.send(&format!("{prefix}-{i}"), &TestApp::send_body(mailbox, to, "Recheck")).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_the_master_key_leaves_the_mailbox_active_and_the_sends_waiting() {
    // A short lease: a send the killed worker held mid-claim is recovered in seconds.
    let opts = Options { in_process_worker: false, lease: Duration::from_secs(5), ..Options::default() };
    let app = TestApp::spawn_with(opts).await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("foreign");
    send_some(&app, &mailbox, &to, "foreign", 3).await;
    let stranger = Vault::new(Arc::new(LocalProvider::from_bytes([42; 32])), CacheLimits::default());
    let wrong = WorkerProcess::start_with_vault(&app, stranger);
    let waiting = "SELECT count(*) FROM sends WHERE state = 'retry_wait' AND last_response LIKE 'waiting for a worker that holds%'";
    app.wait_until(waiting, 3, Duration::from_secs(30)).await;
    wrong.kill();
    let shown: Value = app.get(&format!("/v1/mailboxes/{mailbox}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["status"], "active", "{shown}");
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'mailbox.unusable'").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM sends WHERE state IN ('failed', 'sent')").await, 0);
    // A worker with the right key delivers every one of them, once.
    let right = WorkerProcess::start(&app);
    app.wait_until("SELECT count(*) FROM sends WHERE state = 'sent'", 3, Duration::from_secs(90)).await;
    right.kill();
    let delivered = app.delivered(&to).await;
    assert_eq!(delivered.len(), 3, "{delivered:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_mailbox_comes_back_by_recheck_and_its_parked_sends_go_out_once() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let ws = app.workspace.as_uuid();
    let hex = format!("SELECT encode(wrapped_key, 'hex') FROM workspace_keys WHERE workspace_id = '{ws}'");
    let original = mailroom_store::admin::scalar_strings(&app.pool, &hex).await.unwrap().remove(0);
    // The wrong key: the stored wrapped key damaged, as a bad deployment would look.
    app.execute(&format!(
        "UPDATE workspace_keys SET wrapped_key = set_byte(wrapped_key, 20, get_byte(wrapped_key, 20) # 1) WHERE workspace_id = '{ws}'"
    ))
    .await;
    app.vault.forget_workspace(app.workspace);
    // One workspace's damaged key does not stop a process: another key of the master proves it.
    app.other_workspace_token().await;
    let uses = mailroom_keyring::check::master_keys(&app.pool, &app.vault).await.unwrap();
    assert_eq!(uses[0].keys, 2, "{uses:?}");
    let to = recipient("recheck");
    let ids = send_some(&app, &mailbox, &to, "recheck", 4).await;
    let parked = "SELECT count(*) FROM sends WHERE state = 'retry_wait' AND next_attempt_at IS NULL";
    app.wait_until(parked, 4, Duration::from_secs(30)).await;

    // Re-checked while still broken: still unusable, with the reason, nothing resumed.
    let resp = app.post(&format!("/v1/mailboxes/{mailbox}/recheck")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let found: Value = resp.json().await.unwrap();
    assert_eq!((found["outcome"].as_str(), found["resumed_sends"].as_u64()), (Some("still_unusable"), Some(0)));
    assert!(found["status_reason"].as_str().unwrap().contains("cannot be opened"), "{found}");
    assert_eq!(app.count(parked).await, 4);

    // Fixed: the whole workspace re-checked; the mailbox is back and its sends resume.
    app.execute(&format!(
        "UPDATE workspace_keys SET wrapped_key = decode('{original}', 'hex') WHERE workspace_id = '{ws}'"
    ))
    .await;
    let all: Value = app.post("/v1/mailboxes/recheck").send().await.unwrap().json().await.unwrap();
    assert_eq!(all["mailboxes"][0]["outcome"], "recovered", "{all}");
    assert_eq!(all["mailboxes"][0]["resumed_sends"], 4, "{all}");
    let again: Value =
        app.post(&format!("/v1/mailboxes/{mailbox}/recheck")).send().await.unwrap().json().await.unwrap();
    assert_eq!(again["outcome"], "not_unusable", "a second re-check changes nothing: {again}");
    for id in &ids {
        app.wait_for_send(id, Duration::from_secs(60), |s| s["state"] == "sent").await;
    }
    let delivered = app.delivered(&to).await;
    assert_eq!(delivered.len(), 4, "each parked send delivered exactly once: {delivered:?}");
    let shown: Value = app.get(&format!("/v1/mailboxes/{mailbox}")).send().await.unwrap().json().await.unwrap();
    assert_eq!((shown["status"].as_str(), shown["status_reason"].as_str()), (Some("active"), None));
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'mailbox.recovered'").await, 1);
    // The two re-checks that looked are audited; the one with nothing to do changed nothing.
    let audited =
        "SELECT count(*) FROM audit_log WHERE action IN ('mailbox.recheck.unusable', 'mailbox.recheck.recovered')
                   AND actor LIKE 'api_key:%' AND source IS NOT NULL";
    assert_eq!(app.count(audited).await, 2);
    let missing = app.post("/v1/mailboxes/mbx_00000000000000000000000000000000/recheck").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    app.stop().await;
}
