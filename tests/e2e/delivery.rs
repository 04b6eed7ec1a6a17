//! Sends reach the mailbox exactly once, and every SMTP answer ends where docs/design.md (section 4) says.

use std::{collections::HashSet, time::Duration};

use mailroom_tests::{TestApp, recipient};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_sends_arrive_in_the_mailbox_exactly_once_each() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("bulk");
    let items: Vec<Value> = (0..500)
        .map(|i| {
            let mut body = TestApp::send_body(&mailbox, &to, &format!("Bulk {i}"));
            body["idempotency_key"] = json!(format!("bulk-{i}"));
            body
        })
        .collect();
    let resp = app.post("/v1/sends/batch").json(&json!({ "items": items })).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let results: Value = resp.json().await.unwrap();
    let created = results["results"].as_array().unwrap().iter().filter(|r| r["status"] == "created").count();
    assert_eq!(created, 500);

    let counts = app.wait_for_terminal(500, Duration::from_secs(180)).await;
    assert_eq!(counts, vec![("sent".to_owned(), 500)]);
    let delivered = app.delivered(&to).await;
    let unique: HashSet<&String> = delivered.iter().collect();
    assert_eq!(delivered.len(), 500, "messages in the mailbox");
    assert_eq!(unique.len(), 500, "distinct Message-IDs in the mailbox");
    let ledger = app.count("SELECT count(*) FROM sends WHERE state = 'sent' AND attempts = 1").await;
    assert_eq!(ledger, 500);
    for id in &delivered {
        let sql = format!("SELECT count(*) FROM sends WHERE message_id = '{}'", id.replace('\'', ""));
        assert_eq!(app.count(&sql).await, 1, "{id} is not a ledger Message-ID");
    }
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'send.sent'").await, 500);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_421_pauses_the_mailbox_and_the_send_is_delivered_once() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("tempfail");
    let (status, send) = app.send("throttled-1", &TestApp::send_body(&mailbox, &to, "Throttled")).await;
    assert_eq!(status, 201);
    let id = send["id"].as_str().unwrap();
    let done = app.wait_for_send(id, Duration::from_secs(30), |s| s["state"] == "sent").await;
    // The throttled attempt was given back: only the delivering attempt counts.
    assert_eq!(done["attempts"], 1);
    assert_eq!(app.delivered(&to).await, vec![done["message_id"].as_str().unwrap().to_owned()]);
    let paused = app.count("SELECT count(*) FROM mailboxes WHERE pause_reason LIKE '421%'").await;
    assert_eq!(paused, 1, "the mailbox was paused with the server's answer");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_451_is_retried_with_backoff_and_delivered_once() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("softfail");
    let (_, send) = app.send("soft-1", &TestApp::send_body(&mailbox, &to, "Soft")).await;
    let id = send["id"].as_str().unwrap();
    let done = app.wait_for_send(id, Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert_eq!(done["attempts"], 2);
    assert_eq!(app.delivered(&to).await.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_recipient_fails_with_the_servers_text_and_is_suppressed() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("nouser");
    let (_, send) = app.send("nouser-1", &TestApp::send_body(&mailbox, &to, "Nobody")).await;
    let id = send["id"].as_str().unwrap();
    let done = app.wait_for_send(id, Duration::from_secs(30), |s| s["state"] == "failed").await;
    let reason = done["failure_reason"].as_str().unwrap();
    assert!(reason.contains("550") && reason.contains("5.1.1") && reason.contains("User unknown"), "{reason}");
    assert_eq!(done["attempts"], 1);
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'send.failed'").await, 1);

    let (status, body) = app.send("nouser-2", &TestApp::send_body(&mailbox, &to, "Again")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "recipient_suppressed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_smtp_password_at_connect_is_refused_with_the_servers_answer() {
    let app = TestApp::spawn().await;
    let resp = app.post("/v1/mailboxes").json(&TestApp::mailbox_request("not-the-password")).send().await.unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "smtp_auth_failed");
    assert!(body["error"]["message"].as_str().unwrap().contains("535"), "{body}");
    assert!(!body.to_string().contains("not-the-password"));
    assert_eq!(app.count("SELECT count(*) FROM mailboxes").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM mailbox_secrets").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_password_is_stored_sealed_never_in_clear() {
    let app = TestApp::spawn().await;
    app.connect_mailbox().await;
    let password = &mailroom_tests::peers().info.sender_password;
    let sql =
        format!("SELECT count(*) FROM mailbox_secrets WHERE position(convert_to('{password}', 'UTF8') in sealed) > 0");
    assert_eq!(app.count(&sql).await, 0);
    assert_eq!(app.count("SELECT count(*) FROM mailbox_secrets WHERE field = 'smtp_password'").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_on_implicit_tls_connects_and_delivers() {
    let app = TestApp::spawn().await;
    let mut req = TestApp::mailbox_request(&mailroom_tests::peers().info.sender_password);
    req["smtp"]["port"] = json!(mailroom_tests::peers().info.smtps_port);
    req["smtp"]["tls"] = json!("implicit");
    let resp = app.post("/v1/mailboxes").json(&req).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let mailbox: Value = resp.json().await.unwrap();
    let to = recipient("implicit");
    let (_, send) = app.send("tls-1", &TestApp::send_body(mailbox["id"].as_str().unwrap(), &to, "Implicit")).await;
    let done = app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert_eq!(app.delivered(&to).await, vec![done["message_id"].as_str().unwrap().to_owned()]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_queue_rows_are_pruned_and_ledger_rows_kept() {
    let opts = mailroom_tests::Options { prune_after: Duration::from_secs(1), ..Default::default() };
    let app = TestApp::spawn_with(opts).await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("prune");
    for i in 0..5 {
        app.send(&format!("prune-{i}"), &TestApp::send_body(&mailbox, &to, "Prune")).await;
    }
    app.wait_for_terminal(5, Duration::from_secs(30)).await;
    // The test worker prunes rows finished over a second ago, every half second.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app.count("SELECT count(*) FROM apalis.jobs").await > 0 {
        assert!(std::time::Instant::now() < deadline, "finished jobs were not pruned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM sends WHERE state = 'sent'").await, 5);
    let (status, replay) = app.send("prune-0", &TestApp::send_body(&mailbox, &to, "Prune")).await;
    assert_eq!((status, replay["replayed"].as_bool()), (200, Some(true)), "keys outlive their jobs");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_queue_job_was_lost_is_requeued_by_the_sweeper_and_sent_once() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("orphan");
    let mut body = TestApp::send_body(&mailbox, &to, "Orphan");
    body["send_at"] = json!((chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339());
    let (status, send) = app.send("orphan-1", &body).await;
    assert_eq!(status, 201);
    let lost =
        mailroom_store::admin::execute(&app.pool, "DELETE FROM apalis.jobs WHERE status = 'Pending'").await.unwrap();
    assert_eq!(lost, 1, "the job was still waiting for send_at");
    let done = app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert_eq!(done["attempts"], 1);
    assert_eq!(app.delivered(&to).await.len(), 1);
    app.stop().await;
}
