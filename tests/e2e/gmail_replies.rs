//! Reply detection through the Gmail API (scripted with wiremock): the first look lists INBOX by
//! date, later looks read `history.list` from the stored `historyId`, and an expired history id
//! (404) falls back to a listing by date; every message yields its event once.

use std::time::{Duration, Instant};

use base64::Engine as _;
use mailroom_tests::{Options, TestApp, recipient};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

use crate::oauth::{connect_google_for, google_for};

const ME: &str = "/gmail/v1/users/me";

fn raw_reply(id: &str, headers: &str, subject: &str) -> ResponseTemplate {
    let mime = format!(
        "From: Lead <lead@example.org>\r\nTo: sender@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <{id}@example.org>\r\n{headers}\r\n\r\nThanks!\r\n"
    );
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mime);
    ResponseTemplate::new(200).set_body_json(json!({ "id": id, "raw": raw }))
}

async fn mount(server: &MockServer, path: &str, query: Option<(&str, &str)>, priority: u8, resp: ResponseTemplate) {
    let mut m = Mock::given(matchers::method("GET")).and(matchers::path(path.to_owned()));
    if let Some((k, v)) = query {
        m = m.and(matchers::query_param(k, v));
    }
    m.respond_with(resp).with_priority(priority).mount(server).await;
}

async fn wait_events(app: &TestApp, want: &[&str]) {
    wait_events_seen(app, want, None).await
}

/// Waits until the feed's `reply.*` events are `want` (sorted); on timeout shows the requests
/// `api` (a wiremock provider) received.
pub(crate) async fn wait_events_seen(app: &TestApp, want: &[&str], api: Option<&MockServer>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let feed: Value = app.get("/v1/events?limit=1000").send().await.unwrap().json().await.unwrap();
        let mut got: Vec<String> = feed["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["type"].as_str().filter(|t| t.starts_with("reply.")).map(str::to_owned))
            .collect();
        got.sort();
        if got == want {
            return;
        }
        let cursors = app.count("SELECT count(*) FROM mailbox_cursors").await;
        let errors = app.count("SELECT count(*) FROM mailbox_cursors WHERE last_error IS NOT NULL").await;
        if Instant::now() >= deadline {
            let seen: Vec<String> = match api {
                Some(g) => g.received_requests().await.unwrap().iter().map(|r| r.url.to_string()).collect(),
                None => vec![],
            };
            let inbound = app.count("SELECT count(*) FROM inbound_messages").await;
            panic!(
                "events {got:?}, expected {want:?} ({cursors} cursors, {errors} failing, {inbound} inbound) {seen:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_history_is_followed_and_an_expired_history_id_rescans_without_duplicates() {
    let gmail = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path(format!("{ME}/messages/send")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "sent-1" })))
        .mount(&gmail)
        .await;
    let mut settings = google_for(&format!("mailroom-test-{}", uuid::Uuid::new_v4().simple()));
    settings.google.as_mut().unwrap().api_base = gmail.uri();
    let app = TestApp::spawn_with(Options { oauth: Some(settings), reply_worker: true, ..Options::default() }).await;
    let mailbox = connect_google_for(&app, "api").await;
    let (_, send) = app.send("gr-1", &TestApp::send_body(&mailbox, &recipient("gmailreply"), "Hello")).await;
    let sent = app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    let ours = sent["message_id"].as_str().unwrap().to_owned();
    let answers = format!("In-Reply-To: {ours}");
    let messages = format!("{ME}/messages");

    // First look: the profile's history id, and INBOX listed by date (one reply).
    mount(
        &gmail,
        &format!("{ME}/profile"),
        None,
        5,
        ResponseTemplate::new(200).set_body_json(json!({ "historyId": "100" })),
    )
    .await;
    mount(
        &gmail,
        &messages,
        None,
        5,
        ResponseTemplate::new(200).set_body_json(json!({ "messages": [{ "id": "m1" }] })),
    )
    .await;
    mount(&gmail, &format!("{messages}/m1"), None, 5, raw_reply("m1", &answers, "Re: Hello")).await;
    let nothing_new = ResponseTemplate::new(200).set_body_json(json!({ "historyId": "100" }));
    mount(&gmail, &format!("{ME}/history"), Some(("startHistoryId", "100")), 5, nothing_new).await;
    wait_events_seen(&app, &["reply.received"], Some(&gmail)).await;

    // Later: history from 100 brings an auto-reply.
    let added = json!({ "history": [{ "messagesAdded": [{ "message": { "id": "m2" } }] }], "historyId": "105" });
    mount(
        &gmail,
        &format!("{ME}/history"),
        Some(("startHistoryId", "100")),
        2,
        ResponseTemplate::new(200).set_body_json(added),
    )
    .await;
    let ooo = format!("{answers}\r\nAuto-Submitted: auto-replied");
    mount(&gmail, &format!("{messages}/m2"), None, 5, raw_reply("m2", &ooo, "Out of office")).await;
    let quiet = ResponseTemplate::new(200).set_body_json(json!({ "historyId": "105" }));
    mount(&gmail, &format!("{ME}/history"), Some(("startHistoryId", "105")), 5, quiet).await;
    wait_events(&app, &["reply.auto", "reply.received"]).await;

    // Gmail drops history 105: the next look lists by date again (m1, m2 and a new m3).
    mount(&gmail, &format!("{ME}/history"), Some(("startHistoryId", "105")), 1, ResponseTemplate::new(404)).await;
    let all = json!({ "messages": [{ "id": "m1" }, { "id": "m2" }, { "id": "m3" }] });
    mount(&gmail, &messages, None, 1, ResponseTemplate::new(200).set_body_json(all)).await;
    mount(&gmail, &format!("{messages}/m3"), None, 5, raw_reply("m3", &format!("References: {ours}"), "Re: Hello"))
        .await;
    wait_events(&app, &["reply.auto", "reply.received", "reply.received"]).await;
    // A few more looks change nothing.
    let looked = app.count("SELECT count(*) FROM inbound_messages").await;
    assert_eq!(looked, 3);
    let before = gmail.received_requests().await.unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while gmail.received_requests().await.unwrap().len() < before + 6 {
        assert!(Instant::now() < deadline, "the worker stopped looking");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_events(&app, &["reply.auto", "reply.received", "reply.received"]).await;
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind LIKE 'reply.%'").await, 3);
    app.stop().await;
}
