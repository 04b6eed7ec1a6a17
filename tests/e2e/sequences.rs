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

/// The race: each lead replies while its next step comes due (the steps staggered 400 ms apart
/// around the reply). Every follow-up ends cancelled and never delivered, or sent (handed over
/// before the reply committed) and delivered exactly once; never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_racing_a_due_follow_up_leaves_it_cancelled_or_sent_never_both() {
    const LEADS: usize = 10;
    let app = TestApp::spawn_with(Options { reply_worker: true, ..Options::default() }).await;
    let mailbox = app.connect_mailbox_with_imap("provider").await;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let sequences: Vec<String> = (0..LEADS).map(|i| format!("race-{tag}-{i}")).collect();
    let mut firsts = vec![];
    for s in &sequences {
        let first = step(&app, &mailbox, &format!("{s}-1"), s, true, None).await;
        let sent = app.wait_for_send(first["id"].as_str().unwrap(), Duration::from_secs(30), |x| x["state"] == "sent");
        firsts.push(sent.await["message_id"].as_str().unwrap().to_owned());
    }
    // Every follow-up due around the moment the replies land, to one recipient per lead.
    let leads: Vec<String> = sequences.iter().map(|s| recipient(s)).collect();
    let start = chrono::Utc::now();
    let mut follow_ups = vec![];
    for (i, s) in sequences.iter().enumerate() {
        let mut body = TestApp::send_body(&mailbox, &leads[i], "Following up");
        body["sequence"] = json!(s);
        body["send_at"] = json!((start + chrono::Duration::milliseconds(400 * i as i64)).to_rfc3339());
        let (status, send) = app.send(&format!("{s}-2"), &body).await;
        assert_eq!(status, 201, "{send}");
        follow_ups.push(send);
    }
    for (i, id) in firsts.iter().enumerate() {
        deliver_to_sender(reply(&format!("{tag}-{i}"), &format!("In-Reply-To: {id}"), "Re: hi", "Call me")).await;
    }
    let replies = "SELECT count(*) FROM events WHERE kind = 'reply.received'";
    app.wait_until(replies, LEADS as i64, Duration::from_secs(60)).await;
    let open = format!(
        "SELECT count(*) FROM sends WHERE idempotency_key LIKE 'race-{tag}-%-2' AND state NOT IN ('sent', 'cancelled')"
    );
    app.wait_until(&open, 0, Duration::from_secs(60)).await;

    let (mut sent, mut cancelled) = (0, 0);
    for (i, f) in follow_ups.iter().enumerate() {
        let (state, reason) = state_of(&app, f).await;
        let arrived = app.delivered(&leads[i]).await;
        let id = f["message_id"].as_str().unwrap().to_owned();
        match state.as_str() {
            "sent" => {
                sent += 1;
                assert_eq!(arrived, vec![id], "a sent follow-up arrives exactly once");
            }
            "cancelled" => {
                cancelled += 1;
                assert_eq!(reason.as_deref(), Some("reply_received"));
                assert!(arrived.is_empty(), "a cancelled follow-up never arrives: {arrived:?}");
            }
            other => panic!("follow-up {i} ended {other}"),
        }
    }
    assert_eq!(sent + cancelled, LEADS);
    // A follow-up due after every reply was recorded (plus the claim's second of tolerance)
    // is always cancelled: the race is only for those due while the replies came in.
    let late = format!(
        "SELECT count(*) FROM sends WHERE idempotency_key LIKE 'race-{tag}-%-2' AND state <> 'cancelled'
           AND send_at > (SELECT max(created_at) FROM events WHERE kind = 'reply.received') + interval '1 second'"
    );
    assert_eq!(app.count(&late).await, 0, "a follow-up due after the reply went out");
    let tried = format!(
        "SELECT count(*) FROM sends WHERE idempotency_key LIKE 'race-{tag}-%-2' AND state = 'cancelled' AND attempts > 0"
    );
    assert_eq!(app.count(&tried).await, 0, "no cancelled follow-up was ever attempted");
    app.stop().await;
}
