//! Threads: follow-ups name the send they answer, and arrive threaded (`In-Reply-To`,
//! `References` and the subject checked over IMAP at the recipient's mailbox).

use std::time::Duration;

use mailroom_tests::{TestApp, recipient};
use serde_json::{Value, json};

/// Enqueues `body` under `key`; the answer's status and body.
async fn enqueue(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    let resp = app.post("/v1/sends").header("Idempotency-Key", key).json(body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn follow_up(mailbox: &str, to: &str, parent: &Value) -> Value {
    json!({ "mailbox_id": mailbox, "to": [to], "text": "Following up", "in_reply_to": parent["id"] })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_steps_arrive_as_one_thread() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let lead = recipient("thread");
    // Every step enqueued at once, as a scheduler does: the follow-ups wait for their turn.
    let (status, first) = enqueue(&app, "step-1", &TestApp::send_body(&mailbox, &lead, "Intro")).await;
    assert_eq!(status, 201, "{first}");
    let later = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let mut body = follow_up(&mailbox, &lead, &first);
    body["send_at"] = json!(later);
    let (status, second) = enqueue(&app, "step-2", &body).await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["in_reply_to"], first["id"]);
    let mut body = follow_up(&mailbox, &lead, &second);
    body["send_at"] = json!((chrono::Utc::now() + chrono::Duration::seconds(4)).to_rfc3339());
    let (status, third) = enqueue(&app, "step-3", &body).await;
    assert_eq!(status, 201, "{third}");
    // The same follow-up again is a replay, not a second send.
    assert_eq!(enqueue(&app, "step-3", &body).await.0, 200);

    app.wait_until("SELECT count(*) FROM sends WHERE state = 'sent'", 3, Duration::from_secs(60)).await;
    let arrived = app.delivered_headers(&lead).await;
    assert_eq!(arrived.len(), 3);
    let by_id = |send: &Value| {
        let id = send["message_id"].as_str().unwrap().to_owned();
        arrived.iter().find(|h| h.get("message-id") == Some(&id)).unwrap_or_else(|| panic!("{id} arrived")).clone()
    };
    let (m1, m2, m3) = (by_id(&first), by_id(&second), by_id(&third));
    let id = |s: &Value| s["message_id"].as_str().unwrap().to_owned();
    assert_eq!(m1.get("in-reply-to"), None);
    assert_eq!(m2.get("in-reply-to"), Some(&id(&first)));
    assert_eq!(m2.get("references"), Some(&id(&first)));
    assert_eq!(m2.get("subject").map(String::as_str), Some("Re: Intro"));
    assert_eq!(m3.get("in-reply-to"), Some(&id(&second)));
    assert_eq!(m3.get("references"), Some(&format!("{} {}", id(&first), id(&second))));
    assert_eq!(m3.get("subject").map(String::as_str), Some("Re: Intro"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_that_cannot_thread_is_refused_and_nothing_is_recorded() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let other_mailbox = app.connect_mailbox_with_imap("provider").await;
    let lead = recipient("nothread");
    let mut first = TestApp::send_body(&mailbox, &lead, "Intro");
    first["send_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
    let (_, first) = enqueue(&app, "first", &first).await;
    let cases = [
        // Another mailbox cannot continue the thread.
        (follow_up(&other_mailbox, &lead, &first), "thread_mailbox_mismatch"),
        // An unknown parent.
        (
            follow_up(&mailbox, &lead, &json!({ "id": "snd_00000000000000000000000000000000" })),
            "thread_parent_not_found",
        ),
        // Headers the engine writes.
        (
            {
                let mut b = follow_up(&mailbox, &lead, &first);
                b["headers"] = json!({ "References": "<x@y>" });
                b
            },
            "invalid_field",
        ),
        // No subject and nothing to take it from.
        (json!({ "mailbox_id": mailbox, "to": [lead], "text": "Hi" }), "invalid_field"),
    ];
    for (i, (body, code)) in cases.iter().enumerate() {
        let (status, answer) = enqueue(&app, &format!("refused-{i}"), body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some(*code)), "{answer}");
    }
    // A cancelled parent will never arrive: its follow-up is refused.
    let resp = app.post(&format!("/v1/sends/{}/cancel", first["id"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (status, answer) = enqueue(&app, "after-cancel", &follow_up(&mailbox, &lead, &first)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("thread_parent_not_sent")), "{answer}");
    assert_eq!(app.count("SELECT count(*) FROM sends").await, 1);
    app.stop().await;
}
