//! Reply detection through Microsoft Graph (scripted with wiremock): the Inbox's delta query is
//! followed page by page to its delta link, later looks read from that link, and an expired one
//! (410) starts a new round from a date; every message yields its event once.

use std::time::{Duration, Instant};

use mailroom_tests::{Options, TestApp, recipient};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

use crate::{
    gmail_replies::wait_events_seen,
    graph::{connect_microsoft, microsoft_settings},
};

const DELTA: &str = "/v1.0/me/mailFolders/inbox/messages/delta";

fn mime(id: &str, headers: &str, subject: &str) -> ResponseTemplate {
    let raw = format!(
        "From: Lead <lead@example.org>\r\nTo: sender@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <{id}@example.org>\r\n{headers}\r\n\r\nThanks!\r\n"
    );
    ResponseTemplate::new(200).insert_header("content-type", "text/plain").set_body_string(raw)
}

/// A delta page: message ids (a leading `-` marks a removed one), then a next or a delta link.
fn page(ids: &[&str], link: (&str, String)) -> ResponseTemplate {
    let value: Vec<Value> = ids
        .iter()
        .map(|id| match id.strip_prefix('-') {
            Some(gone) => json!({ "id": gone, "@removed": { "reason": "deleted" } }),
            None => json!({ "id": id }),
        })
        .collect();
    let mut body = json!({ "value": value });
    body[link.0] = json!(link.1);
    ResponseTemplate::new(200).set_body_json(body)
}

async fn delta(ms: &MockServer, query: (&str, &str), priority: u8, resp: ResponseTemplate) {
    Mock::given(matchers::method("GET"))
        .and(matchers::path(DELTA))
        .and(matchers::query_param(query.0, query.1))
        .respond_with(resp)
        .with_priority(priority)
        .mount(ms)
        .await;
}

async fn message(ms: &MockServer, id: &str, resp: ResponseTemplate) {
    let path = format!("/v1.0/me/messages/{id}/$value");
    Mock::given(matchers::method("GET")).and(matchers::path(path)).respond_with(resp).mount(ms).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_delta_is_followed_and_an_expired_delta_link_rescans_without_duplicates() {
    let ms = MockServer::start().await;
    let settings = microsoft_settings(&ms, ResponseTemplate::new(202)).await;
    let app = TestApp::spawn_with(Options { oauth: Some(settings), reply_worker: true, ..Options::default() }).await;
    let mailbox = connect_microsoft(&app).await;
    let (_, send) = app.send("gd-1", &TestApp::send_body(&mailbox, &recipient("graphreply"), "Hello")).await;
    let sent = app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    let answers = format!("In-Reply-To: {}", sent["message_id"].as_str().unwrap());
    let link = |key: &str, value: &str| format!("{}{DELTA}?{key}={value}", ms.uri());

    // The first round, in two pages: a reply, then an auto-reply and a removed message.
    delta(&ms, ("changeType", "created"), 5, page(&["m1"], ("@odata.nextLink", link("$skiptoken", "p2")))).await;
    let second = page(&["m2", "-m0"], ("@odata.deltaLink", link("$deltatoken", "d1")));
    delta(&ms, ("$skiptoken", "p2"), 5, second).await;
    delta(&ms, ("$deltatoken", "d1"), 5, page(&[], ("@odata.deltaLink", link("$deltatoken", "d1")))).await;
    message(&ms, "m1", mime("m1", &answers, "Re: Hello")).await;
    message(&ms, "m2", mime("m2", &format!("{answers}\r\nAuto-Submitted: auto-replied"), "Out of office")).await;
    wait_events_seen(&app, &["reply.auto", "reply.received"], Some(&ms)).await;
    let first = ms.received_requests().await.unwrap().into_iter().find(|r| r.url.path() == DELTA).unwrap();
    let filter = first.url.query_pairs().find(|(k, _)| k == "$filter").map(|(_, v)| v.into_owned());
    assert!(filter.unwrap_or_default().starts_with("receivedDateTime ge "), "{}", first.url);
    assert_eq!(first.headers["authorization"].to_str().unwrap(), "Bearer at-1");

    // Later looks read from the delta link: a new reply.
    delta(&ms, ("$deltatoken", "d1"), 2, page(&["m3"], ("@odata.deltaLink", link("$deltatoken", "d2")))).await;
    delta(&ms, ("$deltatoken", "d2"), 5, page(&[], ("@odata.deltaLink", link("$deltatoken", "d2")))).await;
    message(&ms, "m3", mime("m3", &answers.replace("In-Reply-To", "References"), "Re: Hello")).await;
    wait_events_seen(&app, &["reply.auto", "reply.received", "reply.received"], Some(&ms)).await;

    // Graph drops d2 (410): a new round from a date lists m1..m3 again and a new m4.
    delta(&ms, ("$deltatoken", "d2"), 1, ResponseTemplate::new(410)).await;
    let again = page(&["m1", "m2", "m3", "m4"], ("@odata.deltaLink", link("$deltatoken", "d3")));
    delta(&ms, ("changeType", "created"), 1, again).await;
    delta(&ms, ("$deltatoken", "d3"), 5, page(&[], ("@odata.deltaLink", link("$deltatoken", "d3")))).await;
    message(&ms, "m4", mime("m4", &answers, "Re: Hello again")).await;
    wait_events_seen(&app, &["reply.auto", "reply.received", "reply.received", "reply.received"], Some(&ms)).await;

    // More looks change nothing.
    let before = ms.received_requests().await.unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ms.received_requests().await.unwrap().len() < before + 6 {
        assert!(Instant::now() < deadline, "the worker stopped looking");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind LIKE 'reply.%'").await, 4);
    assert_eq!(app.count("SELECT count(*) FROM inbound_messages").await, 4);
    assert_eq!(
        app.count("SELECT count(*) FROM mailbox_cursors WHERE source = 'graph' AND delta_link LIKE '%d3'").await,
        1
    );
    app.stop().await;
}
