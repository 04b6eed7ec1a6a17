//! An OAuth mailbox sending over SMTP is read over IMAP with its access token (XOAUTH2), as
//! Gmail and Microsoft 365 take it: Dovecot checks each token at an introspection endpoint that
//! verifies the OAuth server's signature. Replies become events, and a message whose answer was
//! lost after DATA is found in Sent over the same login and never resent.

use std::time::{Duration, Instant};

use mailroom_tests::{Options, TestApp, peers, recipient};
use serde_json::Value;

use crate::{
    oauth::{connect_google, google_for},
    replies::{deliver_to_sender, reply},
};

fn imap_oauth_logins() -> i64 {
    peers().command("stats").unwrap()["imap_oauth_logins"].as_i64().unwrap()
}

async fn app() -> TestApp {
    let client = format!("mailroom-test-{}", uuid::Uuid::new_v4().simple());
    TestApp::spawn_with(Options { oauth: Some(google_for(&client)), reply_worker: true, ..Options::default() }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_smtp_mailbox_is_read_for_replies_over_imap_xoauth2() {
    let app = app().await;
    let mailbox = connect_google(&app).await;
    let view: Value = app.get(&format!("/v1/mailboxes/{mailbox}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(view["imap"]["host"], "127.0.0.1", "the provider's IMAP server is recorded: {view}");
    let logins = imap_oauth_logins();
    let (_, send) = app.send("ox-1", &TestApp::send_body(&mailbox, &recipient("oauthimap"), "Hello")).await;
    let sent = app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    let ours = sent["message_id"].as_str().unwrap().to_owned();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    deliver_to_sender(reply(&format!("ox-{tag}"), &format!("In-Reply-To: {ours}"), "Re: Hello", "Yes please")).await;
    deliver_to_sender(reply(&format!("ox-other-{tag}"), "", "Unrelated", "Nothing to do with it")).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let events = loop {
        let feed: Value = app.get("/v1/events?limit=1000").send().await.unwrap().json().await.unwrap();
        let all = feed["events"].as_array().unwrap().iter();
        let events: Vec<Value> = all.filter(|e| e["type"].as_str().unwrap().starts_with("reply.")).cloned().collect();
        if !events.is_empty() {
            break events;
        }
        let error = app.count("SELECT count(*) FROM mailbox_cursors WHERE last_error IS NOT NULL").await;
        assert!(Instant::now() < deadline, "no reply event ({error} cursors failing)");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "reply.received");
    assert_eq!(events[0]["send_id"], send["id"]);
    assert!(imap_oauth_logins() > logins, "the reply worker logged in over XOAUTH2");
    assert_eq!(app.count("SELECT count(*) FROM mailbox_cursors WHERE source = 'imap' AND last_error IS NULL").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_after_data_is_found_in_sent_over_imap_xoauth2() {
    let app = app().await;
    let mailbox = connect_google(&app).await;
    let to = recipient("dropdeliver");
    let (_, send) = app.send("ox-lost", &TestApp::send_body(&mailbox, &to, "Lost but delivered")).await;
    let done = app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert_eq!(done["attempts"], 1, "{done}");
    assert!(done["last_response"].as_str().unwrap().contains("found in the Sent folder"), "{done}");
    assert_eq!(app.delivered(&to).await.len(), 1, "delivered exactly once");
    app.stop().await;
}
