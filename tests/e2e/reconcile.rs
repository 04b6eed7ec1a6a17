//! The dangerous window: a connection lost after the message was handed over is never resent
//! blindly. The Sent folder decides; without one, the send is ambiguous.

use std::time::Duration;

use mailroom_tests::{TestApp, recipient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_lost_after_data_but_delivered_is_found_in_sent_and_not_resent() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox_with_imap("provider").await;
    let to = recipient("dropdeliver");
    let (_, send) = app.send("lost-1", &TestApp::send_body(&mailbox, &to, "Lost but delivered")).await;
    let done = app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert_eq!(done["attempts"], 1);
    assert!(done["last_response"].as_str().unwrap().contains("found in the Sent folder"), "{done}");
    assert_eq!(app.delivered(&to).await.len(), 1, "delivered exactly once");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_lost_after_data_and_absent_from_sent_is_sent_again_once() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox_with_imap("provider").await;
    let to = recipient("droplose");
    let (_, send) = app.send("lost-2", &TestApp::send_body(&mailbox, &to, "Lost for real")).await;
    let done = app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(app.delivered(&to).await.len(), 1, "delivered exactly once");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_proof_from_sent_a_lost_message_is_ambiguous_and_never_resent() {
    let app = TestApp::spawn().await;
    let plain = app.connect_mailbox().await;
    let appended = app.connect_mailbox_with_imap("append").await;
    for (key, mailbox, prefix) in [("amb-1", &plain, "dropdeliver"), ("amb-2", &appended, "droplose")] {
        let to = recipient(prefix);
        let (_, send) = app.send(key, &TestApp::send_body(mailbox, &to, "Uncertain")).await;
        let done = app
            .wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "ambiguous")
            .await;
        assert_eq!(done["attempts"], 1);
        assert!(!done["failure_reason"].as_str().unwrap().is_empty());
        let expected = usize::from(prefix == "dropdeliver");
        assert_eq!(app.delivered(&to).await.len(), expected, "never resent");
    }
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'send.ambiguous'").await, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_ambiguous_sends_and_resolves_them_with_an_audit_record() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let (delivered_to, lost_to) = (recipient("dropdeliver"), recipient("droplose"));
    let mut ids = vec![];
    for (key, to) in [("op-1", &delivered_to), ("op-2", &lost_to)] {
        let (_, send) = app.send(key, &TestApp::send_body(&mailbox, to, "Uncertain")).await;
        let id = send["id"].as_str().unwrap().to_owned();
        app.wait_for_send(&id, Duration::from_secs(30), |s| s["state"] == "ambiguous").await;
        ids.push(id);
    }
    let listed: serde_json::Value = app.get("/v1/sends?state=ambiguous").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["sends"].as_array().unwrap().len(), 2);

    let resolve = |id: &str, action: &str| {
        app.post(&format!("/v1/sends/{id}/resolve"))
            .json(&serde_json::json!({ "action": action, "note": "checked" }))
            .send()
    };
    let marked: serde_json::Value = resolve(&ids[0], "mark-sent").await.unwrap().json().await.unwrap();
    assert_eq!(marked["state"], "sent");
    assert_eq!(resolve(&ids[1], "resend").await.unwrap().status(), 200);
    app.wait_for_send(&ids[1], Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert_eq!(app.delivered(&delivered_to).await.len(), 1);
    assert_eq!(app.delivered(&lost_to).await.len(), 1);

    let again = resolve(&ids[0], "cancel").await.unwrap();
    assert_eq!(again.status(), 409, "only ambiguous sends can be resolved");
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action LIKE 'send.resolve.%'").await, 2);
    app.stop().await;
}
