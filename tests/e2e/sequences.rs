//! Stop-on-reply inside the engine: a lead's reply to any step of its sequence cancels the
//! sequence's waiting steps in the transaction that records the reply, each with a
//! `send.cancelled` event naming why; another lead's sequence goes on; a step that opted out
//! waits on; an automatic reply stops only the steps that asked for it.

use std::time::Duration;

use mailroom_tests::{Options, TestApp, recipient};
use serde_json::{Value, json};

use crate::replies::{deliver_to_sender, reply};

/// Enqueues one step of `sequence`; `send_at` an hour away unless `now`.
async fn step(app: &TestApp, mailbox: &str, key: &str, sequence: &str, now: bool, stop_on: Option<Value>) -> Value {
    let mut body = TestApp::send_body(mailbox, &recipient(sequence), key);
    body["sequence"] = json!(sequence);
    if !now {
        body["send_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
    }
    if let Some(s) = stop_on {
        body["stop_on"] = s;
    }
    let (status, send) = app.send(key, &body).await;
    assert_eq!(status, 201, "{send}");
    send
}

async fn state_of(app: &TestApp, send: &Value) -> (String, Option<String>) {
    let s: Value =
        app.get(&format!("/v1/sends/{}", send["id"].as_str().unwrap())).send().await.unwrap().json().await.unwrap();
    (s["state"].as_str().unwrap().to_owned(), s["failure_reason"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_stops_the_rest_of_its_sequence_and_nothing_else() {
    let app = TestApp::spawn_with(Options { reply_worker: true, ..Options::default() }).await;
    let mailbox = app.connect_mailbox_with_imap("provider").await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let (a, b) = (format!("seq-a-{}", &tag[..8]), format!("seq-b-{}", &tag[..8]));
    let a1 = step(&app, &mailbox, "a1", &a, true, None).await;
    let b1 = step(&app, &mailbox, "b1", &b, true, None).await;
    let (a2, a3) =
        (step(&app, &mailbox, "a2", &a, false, None).await, step(&app, &mailbox, "a3", &a, false, None).await);
    let a_kept = step(&app, &mailbox, "a-kept", &a, false, Some(json!([]))).await;
    let b2 = step(&app, &mailbox, "b2", &b, false, None).await;
    let b3 = step(&app, &mailbox, "b3", &b, false, Some(json!(["reply", "auto_reply"]))).await;
    let mut ids = vec![];
    for first in [&a1, &b1] {
        let sent =
            app.wait_for_send(first["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
        ids.push(sent["message_id"].as_str().unwrap().to_owned());
    }

    // The lead of A replies; B's lead is out of office.
    deliver_to_sender(reply(&format!("{tag}-a"), &format!("In-Reply-To: {}", ids[0]), "Re: a1", "Yes, call me.")).await;
    let ooo = format!("In-Reply-To: {}\r\nAuto-Submitted: auto-replied", ids[1]);
    deliver_to_sender(reply(&format!("{tag}-b"), &ooo, "Out of office", "Back Monday")).await;
    let cancelled = "SELECT count(*) FROM sends WHERE state = 'cancelled'";
    TestApp::wait_for("three steps cancelled", Duration::from_secs(60), || async { app.count(cancelled).await == 3 })
        .await;

    for s in [&a2, &a3] {
        assert_eq!(state_of(&app, s).await, ("cancelled".to_owned(), Some("reply_received".to_owned())));
    }
    assert_eq!(state_of(&app, &b3).await, ("cancelled".to_owned(), Some("auto_reply_received".to_owned())));
    assert_eq!(state_of(&app, &a_kept).await.0, "queued", "a step that opted out waits on");
    assert_eq!(state_of(&app, &b2).await.0, "queued", "an out-of-office does not stop a sequence by default");
    let events: Value = app.get("/v1/events?limit=1000").send().await.unwrap().json().await.unwrap();
    let reasons: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "send.cancelled")
        .map(|e| e["data"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.iter().filter(|r| **r == "reply_received").count(), 2, "{reasons:?}");
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    // The reply was recorded in the same transaction: its event and the cancellations agree.
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'reply.received'").await, 1);

    // The sequence stays stopped: a step the scheduler enqueues afterwards is cancelled by the
    // worker before it is tried (cancelled is final: it is never sent).
    let late = step(&app, &mailbox, "a-late", &a, true, None).await;
    let id = late["id"].as_str().unwrap();
    let settled = app.wait_for_send(id, Duration::from_secs(30), |s| s["state"] != "queued").await;
    assert_eq!(
        (settled["state"].as_str(), settled["failure_reason"].as_str()),
        (Some("cancelled"), Some("reply_received"))
    );
    assert_eq!(app.count("SELECT count(*) FROM sends WHERE idempotency_key = 'a-late' AND attempts = 0").await, 1);
    app.stop().await;
}
