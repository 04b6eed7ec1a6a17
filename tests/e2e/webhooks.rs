//! Webhooks against a local receiver (wiremock): each subscribed event arrives signed (Standard
//! Webhooks), a receiver that fails twice gets it again until it answers 2xx (once per event
//! id), a wrong secret fails verification, and deliveries that never succeed end visibly
//! `failed`. (`webhooks_standard` checks the same signatures with the specification's own
//! library.)

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use mailroom_tests::{Options, TestApp, recipient};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

/// What a receiver of the old scheme does: recompute `Mailroom-Signature` over
/// `"{t}.{raw body}"` keyed by the secret's text.
pub(crate) fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let Some((t, v1)) = header.split_once(",v1=") else { return false };
    let t = t.trim_start_matches("t=");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::decode(v1).is_ok_and(|sig| mac.verify_slice(&sig).is_ok())
}

/// What a Standard Webhooks receiver does: the key is the secret's base64 after `whsec_`; one
/// of the space-separated `v1,<base64>` signatures must be the HMAC of `"{id}.{t}.{body}"`.
fn verify_standard(secret: &str, r: &wiremock::Request, body: &[u8]) -> bool {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    let header = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Ok(key) = STANDARD.decode(secret.trim_start_matches("whsec_")) else { return false };
    header("webhook-signature").split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|sig| {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{}.{}.", header("webhook-id"), header("webhook-timestamp")).as_bytes());
        mac.update(body);
        STANDARD.decode(sig).is_ok_and(|sig| mac.verify_slice(&sig).is_ok())
    })
}

async fn register(app: &TestApp, url: &str, types: &[&str]) -> Value {
    let resp = app.post("/v1/webhooks").json(&json!({ "url": url, "event_types": types })).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_signed_once_each_through_failures_and_failed_deliveries_are_visible() {
    let app = TestApp::spawn_with(Options { reply_worker: true, ..Options::default() }).await;
    let receiver = MockServer::start().await;
    // The receiver fails twice, then accepts.
    Mock::given(matchers::path("/hook"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .mount(&receiver)
        .await;
    Mock::given(matchers::path("/hook")).respond_with(ResponseTemplate::new(204)).mount(&receiver).await;
    Mock::given(matchers::path("/down")).respond_with(ResponseTemplate::new(503)).mount(&receiver).await;
    let hook = register(&app, &format!("{}/hook", receiver.uri()), &["send.sent"]).await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed: Value = app.get("/v1/webhooks").send().await.unwrap().json().await.unwrap();
    assert!(listed.to_string().find("whsec_").is_none(), "the secret is shown once only");

    let mailbox = app.connect_mailbox().await;
    for i in 0..3 {
        app.send(&format!("wh-{i}"), &TestApp::send_body(&mailbox, &recipient("hook"), "Hooked")).await;
    }
    app.send("wh-bad", &TestApp::send_body(&mailbox, &recipient("nouser"), "Bounces")).await;
    app.wait_for_terminal(4, Duration::from_secs(30)).await;

    // Every send.sent delivered with a 2xx exactly once; send.failed was not subscribed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let accepted = loop {
        let requests = receiver.received_requests().await.unwrap();
        let hook_requests: Vec<_> = requests.iter().filter(|r| r.url.path() == "/hook").collect();
        // The first two requests got 500s; every later one a 204.
        let accepted: Vec<_> = hook_requests.iter().skip(2).collect();
        let mut per_event: HashMap<String, usize> = HashMap::new();
        for r in &accepted {
            *per_event.entry(r.headers["webhook-id"].to_str().unwrap().to_owned()).or_default() += 1;
        }
        if per_event.len() == 3 {
            assert!(per_event.values().all(|n| *n == 1), "an event was accepted twice: {per_event:?}");
            break accepted.into_iter().map(|r| (*r).clone()).collect::<Vec<_>>();
        }
        assert!(Instant::now() < deadline, "deliveries so far: {}", hook_requests.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for r in &accepted {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["type"], "send.sent");
        assert_eq!(body["id"].as_str(), r.headers["webhook-id"].to_str().ok());
        assert!(verify_standard(&secret, r, &r.body), "a receiver with the secret verifies it");
        assert!(!verify_standard("whsec_d3Jvbmc=", r, &r.body), "a wrong secret does not");
        let mut tampered = r.body.clone();
        tampered[0] ^= 1;
        assert!(!verify_standard(&secret, r, &tampered), "nor does a changed body");
    }
    let hook_id = hook["id"].as_str().unwrap();
    let delivered: Value = app
        .get(&format!("/v1/webhooks/{hook_id}/deliveries?state=delivered"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(delivered["deliveries"].as_array().unwrap().len(), 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_never_succeeds_ends_failed_and_is_listed() {
    let app = TestApp::spawn_with(Options { reply_worker: true, ..Options::default() }).await;
    let receiver = MockServer::start().await;
    Mock::given(matchers::path("/down")).respond_with(ResponseTemplate::new(503)).mount(&receiver).await;
    let hook = register(&app, &format!("{}/down", receiver.uri()), &[]).await;
    let mailbox = app.connect_mailbox().await;
    app.send("down-1", &TestApp::send_body(&mailbox, &recipient("hook"), "Nobody listens")).await;
    app.wait_for_terminal(1, Duration::from_secs(30)).await;
    // Give up at once: the event is older than the (test's) maximum age after a few tries.
    app.execute("UPDATE events SET created_at = now() - interval '2 hours'").await;
    let hook_id = hook["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let failed: Value =
            app.get(&format!("/v1/webhooks/{hook_id}/deliveries")).send().await.unwrap().json().await.unwrap();
        // The mailbox's `mailbox.connected` fails the same way; the send's is the one looked at.
        if let Some(d) = failed["deliveries"].as_array().unwrap().iter().find(|d| d["type"] == "send.sent") {
            assert_eq!(d["last_status"].as_str(), Some("503"));
            assert!(d["attempts"].as_i64().unwrap() >= 1);
            break;
        }
        assert!(Instant::now() < deadline, "the delivery never failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = app.http.delete(format!("{}/v1/webhooks/{hook_id}", app.base)).bearer_auth(&app.token).send().await;
    assert_eq!(resp.unwrap().status(), 204);
    app.stop().await;
}
