//! Sending through the Gmail API (scripted with wiremock): the MIME message carries the
//! ledger's Message-ID; a 429 pauses the mailbox for the hinted time without using an attempt;
//! a 504 after the request was sent is settled by searching the mailbox for the Message-ID
//! (found: sent; provably absent: sent again once; search failing: never resent).

use std::time::Duration;

use base64::Engine as _;
use mailroom_tests::{Options, TestApp, recipient};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

use crate::oauth::{connect_google_for, google_for};

const SEND: &str = "/gmail/v1/users/me/messages/send";

async fn app(gmail: &MockServer) -> TestApp {
    let mut settings = google_for(&format!("mailroom-test-{}", uuid::Uuid::new_v4().simple()));
    settings.google.as_mut().unwrap().api_base = gmail.uri();
    TestApp::spawn_with(Options { oauth: Some(settings), ..Options::default() }).await
}

async fn send_one(app: &TestApp) -> Value {
    let mailbox = connect_google_for(app, "api").await;
    let mut body = TestApp::send_body(&mailbox, &recipient("gmail"), "Via the Gmail API");
    body["bcc"] = json!(["hidden@example.org"]);
    let (status, send) = app.send("g-1", &body).await;
    assert_eq!(status, 201);
    send
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_goes_through_the_gmail_api_with_the_ledgers_message_id() {
    let gmail = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path(SEND))
        .and(matchers::header_exists("authorization"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "18c0ffee", "threadId": "18c0ffee" })))
        .mount(&gmail)
        .await;
    let app = app(&gmail).await;
    let send = send_one(&app).await;
    let id = send["id"].as_str().unwrap();
    let done = app.wait_for_send(id, Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert!(done["last_response"].as_str().unwrap().contains("18c0ffee"), "{done}");
    let requests = gmail.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let mime = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body["raw"].as_str().unwrap()).unwrap();
    let mime = String::from_utf8(mime).unwrap();
    assert!(mime.contains(&format!("Message-ID: {}", send["message_id"].as_str().unwrap())), "{mime}");
    assert!(mime.contains("Bcc: hidden@example.org"), "the API reads Bcc recipients from the message: {mime}");
    assert!(requests[0].headers["authorization"].to_str().unwrap().starts_with("Bearer "));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_mailbox_for_the_hinted_time_and_keeps_the_attempt() {
    let gmail = MockServer::start().await;
    let limited = json!({ "error": { "code": 429, "message": "Too many requests", "errors": [{ "reason": "rateLimitExceeded" }] } });
    Mock::given(matchers::path(SEND))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "120").set_body_json(limited))
        .mount(&gmail)
        .await;
    let app = app(&gmail).await;
    let send = send_one(&app).await;
    let id = send["id"].as_str().unwrap();
    let waiting = app.wait_for_send(id, Duration::from_secs(30), |s| s["state"] == "retry_wait").await;
    assert_eq!(waiting["attempts"], 0, "a throttle costs no attempt: {waiting}");
    let paused = "SELECT count(*) FROM mailboxes WHERE paused_until > now() + interval '100 seconds'";
    assert_eq!(app.count(paused).await, 1, "paused for the hinted 120 s");
    app.stop().await;
}

/// Gmail's search for a Message-ID answering `resp`.
async fn search(gmail: &MockServer, message_id: &str, resp: ResponseTemplate) {
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/gmail/v1/users/me/messages"))
        .and(matchers::query_param("q", format!("rfc822msgid:{message_id}")))
        .respond_with(resp)
        .mount(gmail)
        .await;
}

async fn requests(gmail: &MockServer, method: &str) -> usize {
    gmail.received_requests().await.unwrap().iter().filter(|r| r.method.as_str() == method).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_504_after_sending_found_by_the_gmail_search_is_sent_and_not_resent() {
    let gmail = MockServer::start().await;
    Mock::given(matchers::path(SEND)).respond_with(ResponseTemplate::new(504)).mount(&gmail).await;
    let app = app(&gmail).await;
    let send = send_one(&app).await;
    let found = json!({ "messages": [{ "id": "18c0ffee", "threadId": "18c0ffee" }], "resultSizeEstimate": 1 });
    search(&gmail, send["message_id"].as_str().unwrap(), ResponseTemplate::new(200).set_body_json(found)).await;
    let done = app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert_eq!(done["attempts"], 1);
    assert!(done["last_response"].as_str().unwrap().contains("found in the Sent folder"), "{done}");
    assert_eq!(requests(&gmail, "POST").await, 1, "not resent");
    app.stop().await;
}

/// Provably absent (the search worked, Gmail files everything it sends): sent again, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_504_after_sending_absent_from_the_gmail_search_is_sent_again_once() {
    let gmail = MockServer::start().await;
    let (lost, ok) = (ResponseTemplate::new(504), ResponseTemplate::new(200).set_body_json(json!({ "id": "2nd" })));
    Mock::given(matchers::path(SEND)).respond_with(lost).up_to_n_times(1).with_priority(1).mount(&gmail).await;
    Mock::given(matchers::path(SEND)).respond_with(ok).with_priority(5).mount(&gmail).await;
    let app = app(&gmail).await;
    let send = send_one(&app).await;
    let none = ResponseTemplate::new(200).set_body_json(json!({ "resultSizeEstimate": 0 }));
    search(&gmail, send["message_id"].as_str().unwrap(), none).await;
    let done = app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert_eq!((done["attempts"].as_i64(), requests(&gmail, "POST").await), (Some(2), 2), "{done}");
    app.stop().await;
}

/// The search fails: nothing is concluded and nothing resent, however often it is tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_504_after_sending_is_never_resent_while_the_search_fails() {
    let gmail = MockServer::start().await;
    Mock::given(matchers::path(SEND)).respond_with(ResponseTemplate::new(504)).mount(&gmail).await;
    let app = app(&gmail).await;
    let send = send_one(&app).await;
    search(&gmail, send["message_id"].as_str().unwrap(), ResponseTemplate::new(500)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while requests(&gmail, "GET").await < 3 {
        assert!(std::time::Instant::now() < deadline, "the search was not retried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Between two searches the send is briefly `sending` (claimed for the next look); it
    // comes back to waiting, never to a resend.
    let id = send["id"].as_str().unwrap();
    app.wait_for_send(id, Duration::from_secs(30), |s| s["state"] == "retry_wait").await;
    assert_eq!(requests(&gmail, "POST").await, 1, "never resent while its fate is unknown");
    app.stop().await;
}
