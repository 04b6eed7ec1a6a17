//! Cancelling a send that has not gone out: a scheduled follow-up withdrawn with a reason, its
//! event on the feed, its job finding nothing to send; a repeat answers the same; a send in a
//! worker's hands or already finished is refused with 409 and left as it is.

use std::time::Duration;

use mailroom_tests::{TestApp, recipient};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_send_is_withdrawn_and_never_goes_out() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("cancel");
    let mut follow_up = TestApp::send_body(&mailbox, &to, "Follow-up");
    follow_up["send_at"] = json!((chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339());
    let (status, send) = app.send("follow-up", &follow_up).await;
    assert_eq!(status, 201, "{send}");
    let id = send["id"].as_str().unwrap().to_owned();
    let cancel = |body: Option<Value>| {
        let req = app.post(&format!("/v1/sends/{id}/cancel"));
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        req.send()
    };
    let resp = cancel(Some(json!({ "reason": "lead replied" }))).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!((body["state"].as_str(), body["replayed"].as_bool()), (Some("cancelled"), Some(false)), "{body}");
    let again: Value = cancel(None).await.unwrap().json().await.unwrap();
    assert_eq!((again["state"].as_str(), again["replayed"].as_bool()), (Some("cancelled"), Some(true)));
    let events: Value = app.get("/v1/events").send().await.unwrap().json().await.unwrap();
    let cancelled: Vec<&Value> =
        events["events"].as_array().unwrap().iter().filter(|e| e["type"] == "send.cancelled").collect();
    assert_eq!(cancelled.len(), 1, "{events}");
    assert_eq!(cancelled[0]["data"]["reason"], "lead replied");

    // Its job, made due now, finds nothing to send; a later send still goes out.
    let job = "SELECT job_id FROM sends WHERE idempotency_key = 'follow-up'";
    app.execute(&format!("UPDATE apalis.jobs SET run_at = now() WHERE id = ({job})")).await;
    let (_, later) = app.send("later", &TestApp::send_body(&mailbox, &to, "Later")).await;
    app.wait_for_send(later["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    let done = format!("SELECT count(*) FROM apalis.jobs WHERE status = 'Done' AND id = ({job})");
    TestApp::wait_for("the cancelled send's job ran", Duration::from_secs(30), || async {
        app.count(&done).await == 1
    })
    .await;
    assert_eq!(
        app.count("SELECT count(*) FROM sends WHERE idempotency_key = 'follow-up' AND state = 'cancelled'").await,
        1
    );
    let delivered = app.delivered(&to).await;
    assert_eq!(delivered.len(), 1, "only the later send arrived: {delivered:?}");
    assert!(!delivered.iter().any(|m| m.contains(send["message_id"].as_str().unwrap().trim_matches(['<', '>']))));

    // A finished send, one in a worker's hands, an unknown or another workspace's id.
    let later_id = later["id"].as_str().unwrap();
    let resp = app.post(&format!("/v1/sends/{later_id}/cancel")).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "send_finished");
    let (_, held) = app.send("held", &TestApp::send_body(&mailbox, &to, "Held")).await;
    let held_id = held["id"].as_str().unwrap();
    app.wait_for_send(held_id, Duration::from_secs(30), |s| s["state"] == "sent").await;
    app.execute("UPDATE sends SET state = 'sending' WHERE idempotency_key = 'held'").await;
    let resp = app.post(&format!("/v1/sends/{held_id}/cancel")).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "send_in_flight");
    assert_eq!(app.count("SELECT count(*) FROM sends WHERE state = 'sending'").await, 1, "left as it was");
    let missing = mailroom_domain::SendId::new();
    assert_eq!(app.post(&format!("/v1/sends/{missing}/cancel")).send().await.unwrap().status(), 404);
    let other = app.other_workspace_token().await;
    let resp = app.http.post(format!("{}/v1/sends/{id}/cancel", app.base)).bearer_auth(&other).send().await;
    assert_eq!(resp.unwrap().status(), 404);
    let resp = cancel(Some(json!({ "reason": "" }))).await.unwrap();
    assert_eq!(resp.status(), 422);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_cancels_every_waiting_send_it_matches_once() {
    let app = TestApp::spawn_with(mailroom_tests::Options { in_process_worker: false, ..Default::default() }).await;
    let mailbox = app.connect_mailbox().await;
    let later = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let step = |key: &str, sequence: &str, to: &str, campaign: &str| {
        let mut b = TestApp::send_body(&mailbox, to, key);
        b["send_at"] = json!(later);
        b["sequence"] = json!(sequence);
        b["metadata"] = json!({ "campaign": campaign, "step": key });
        (key.to_owned(), b)
    };
    for (key, body) in [
        step("a1", "lead-a", "Ann@Example.test", "spring"),
        step("a2", "lead-a", "ann@example.test", "spring"),
        step("b1", "lead-b", "bob@example.test", "spring"),
        step("c1", "lead-c", "cid@example.test", "autumn"),
    ] {
        let (status, send) = app.send(&key, &body).await;
        assert_eq!((status, send["sequence"].as_str().is_some()), (201, true), "{send}");
    }
    let cancel = |filter: Value| {
        let req = app.post("/v1/sends/cancel").json(&json!({ "filter": filter, "reason": "lead replied" }));
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(cancel(json!({ "sequence": "lead-a" })).await, (200, json!({ "cancelled": 2 })));
    assert_eq!(cancel(json!({ "sequence": "lead-a" })).await, (200, json!({ "cancelled": 0 })), "a repeat");
    assert_eq!(cancel(json!({ "to": "BOB@example.test" })).await, (200, json!({ "cancelled": 1 })));
    let (status, _) = cancel(json!({ "metadata": { "campaign": "spring" }, "mailbox_id": mailbox })).await;
    assert_eq!(status, 200);
    assert_eq!(cancel(json!({ "metadata": { "campaign": "autumn" } })).await, (200, json!({ "cancelled": 1 })));
    let (status, body) = cancel(json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_field")));
    assert_eq!(app.count("SELECT count(*) FROM sends WHERE state = 'cancelled'").await, 4);
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'send.cancelled'").await, 4);
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'sends.cancel'").await, 5, "each bulk cancel");
    app.stop().await;
}
