//! Webhooks as the Standard Webhooks specification signs them, verified by the specification's
//! own Python library (`standardwebhooks` from PyPI) on the bytes and headers a real receiver
//! got: a new endpoint's deliveries, both signatures during a secret's rotation, a test event,
//! a replayed delivery, an endpoint switched off and on, one switched off by the engine after
//! failing for too long (`webhook.disabled` on the feed), and an endpoint registered before the
//! standard scheme, whose old secret verifies under both schemes.

use std::{
    str::FromStr,
    time::{Duration, Instant},
};

use mailroom_tests::{Options, TestApp, recipient};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers};

/// Verifies one received request with the official library; returns its verdict line.
fn verify_with_library(secret: &str, r: &Request) -> String {
    let header = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let script = "import sys, json\n\
                  from standardwebhooks import Webhook\n\
                  secret, body, headers = sys.argv[1], sys.stdin.buffer.read(), json.loads(sys.argv[2])\n\
                  try:\n    Webhook(secret).verify(body, headers)\n    print('verified')\n\
                  except Exception as e:\n    print('refused', repr(e))\n";
    let headers = json!({
        "webhook-id": header("webhook-id"),
        "webhook-timestamp": header("webhook-timestamp"),
        "webhook-signature": header("webhook-signature"),
    });
    let python = mailroom_devkit::repo_root().join(".peers/venv/bin/python3");
    let mut child = std::process::Command::new(python)
        .args(["-c", script, secret, &headers.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the peers' Python runs");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &r.body).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn register(app: &TestApp, url: &str, types: &[&str]) -> Value {
    let resp = app.post("/v1/webhooks").json(&json!({ "url": url, "event_types": types })).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

/// Waits until the receiver got `n` requests on `path`; returns them.
async fn received(server: &MockServer, path: &str, n: usize) -> Vec<Request> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: Vec<Request> =
            server.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == path).collect();
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{path} got {} of {n} requests", got.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn event_type(r: &Request) -> String {
    serde_json::from_slice::<Value>(&r.body).unwrap()["type"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_verify_with_the_standard_library_through_a_rotation_a_test_and_a_replay() {
    let app = TestApp::spawn_with(Options { reply_worker: true, ..Options::default() }).await;
    let receiver = MockServer::start().await;
    Mock::given(matchers::path("/hook")).respond_with(ResponseTemplate::new(204)).mount(&receiver).await;
    let hook = register(&app, &format!("{}/hook", receiver.uri()), &["send.sent"]).await;
    let (id, first) = (hook["id"].as_str().unwrap().to_owned(), hook["secret"].as_str().unwrap().to_owned());
    assert!(first.starts_with("whsec_"), "{hook}");

    // A test event reaches this endpoint alone, whatever types it takes.
    let resp = app.post(&format!("/v1/webhooks/{id}/test")).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let test = received(&receiver, "/hook", 1).await.remove(0);
    assert_eq!(event_type(&test), "webhook.test");
    assert_eq!(verify_with_library(&first, &test), "verified");
    assert!(test.headers.get("mailroom-signature").is_none(), "a new endpoint gets the standard headers only");
    assert_eq!(
        verify_with_library("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &test).split(' ').next(),
        Some("refused")
    );

    // Rotation: the new secret is shown once; the old one still verifies during the overlap.
    let resp = app.post(&format!("/v1/webhooks/{id}/rotate-secret")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let rotated: Value = resp.json().await.unwrap();
    let second = rotated["secret"].as_str().unwrap().to_owned();
    assert!(second != first && rotated["previous_secret_expires_at"].is_string(), "{rotated}");
    let mailbox = app.connect_mailbox().await;
    app.send("sw-1", &TestApp::send_body(&mailbox, &recipient("std"), "Standard")).await;
    let sent = received(&receiver, "/hook", 2).await.remove(1);
    assert_eq!(event_type(&sent), "send.sent");
    let signatures = sent.headers["webhook-signature"].to_str().unwrap().to_owned();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    assert_eq!(verify_with_library(&second, &sent), "verified");
    assert_eq!(verify_with_library(&first, &sent), "verified");

    // A replay posts the same event again, under the same webhook-id.
    let event = sent.headers["webhook-id"].to_str().unwrap().to_owned();
    let replay = app.post(&format!("/v1/webhooks/{id}/deliveries/{event}/replay")).send().await.unwrap();
    assert_eq!(replay.status(), 202);
    let again = received(&receiver, "/hook", 3).await.remove(2);
    assert_eq!(again.headers["webhook-id"].to_str().unwrap(), event);
    assert_eq!(verify_with_library(&second, &again), "verified");
    let missing = app.post(&format!("/v1/webhooks/{id}/deliveries/evt_{}/replay", "0".repeat(32))).send().await;
    assert_eq!(missing.unwrap().status(), 404);

    // Switched off, it gets nothing (the feed passes it by); the deliveries list filters by type.
    let off = app.http.patch(format!("{}/v1/webhooks/{id}", app.base)).bearer_auth(&app.token);
    let off = off.json(&json!({ "enabled": false })).send().await.unwrap();
    assert_eq!(off.status(), 200);
    let refused = app.post(&format!("/v1/webhooks/{id}/test")).send().await.unwrap();
    assert_eq!(refused.status(), 409, "a test of a switched-off endpoint would go nowhere");
    let (_, quiet) = app.send("sw-2", &TestApp::send_body(&mailbox, &recipient("std"), "Unheard")).await;
    let quiet = uuid::Uuid::parse_str(quiet["id"].as_str().unwrap().trim_start_matches("snd_")).unwrap();
    let published = format!(
        "SELECT count(*) FROM webhooks w, events e WHERE e.send_id = '{quiet}' AND e.kind = 'send.sent' \
         AND e.pos IS NOT NULL AND w.last_pos >= e.pos"
    );
    app.wait_until(&published, 1, Duration::from_secs(30)).await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM webhook_deliveries d JOIN events e ON e.pos = d.event_pos WHERE e.send_id = '{quiet}'"
        ))
        .await,
        0,
        "a disabled endpoint gets no delivery"
    );
    let listed: Value = app
        .get(&format!("/v1/webhooks/{id}/deliveries?state=delivered&type=webhook.test"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["deliveries"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(received(&receiver, "/hook", 0).await.len(), 3, "a disabled endpoint gets nothing");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_past_the_limit_is_disabled_with_an_event() {
    let app = TestApp::spawn_with(Options {
        reply_worker: true,
        webhook_disable_after: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    let receiver = MockServer::start().await;
    Mock::given(matchers::path("/down")).respond_with(ResponseTemplate::new(503)).mount(&receiver).await;
    let hook = register(&app, &format!("{}/down", receiver.uri()), &[]).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    app.post(&format!("/v1/webhooks/{id}/test")).send().await.unwrap();
    app.wait_until("SELECT count(*) FROM events WHERE kind = 'webhook.disabled'", 1, Duration::from_secs(30)).await;
    let listed: Value = app.get("/v1/webhooks").send().await.unwrap().json().await.unwrap();
    let this = listed["webhooks"].as_array().unwrap().iter().find(|w| w["id"] == id.as_str()).cloned().unwrap();
    assert_eq!(this["enabled"], false, "{this}");
    assert!(this["disabled_reason"].as_str().is_some_and(|r| r.contains("failed since")), "{this}");
    let feed: Value = app.get("/v1/events?type=webhook.disabled").send().await.unwrap().json().await.unwrap();
    assert_eq!(feed["events"][0]["data"]["webhook_id"], id.as_str(), "{feed}");
    assert_eq!(feed["events"].as_array().map(Vec::len), Some(1), "the feed holds that type only: {feed}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_from_before_keeps_its_old_header_and_its_old_secret_verifies_both_ways() {
    let app = TestApp::spawn_with(Options { reply_worker: true, ..Options::default() }).await;
    let receiver = MockServer::start().await;
    Mock::given(matchers::path("/old")).respond_with(ResponseTemplate::new(204)).mount(&receiver).await;
    let hook = register(&app, &format!("{}/old", receiver.uri()), &[]).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    // What an endpoint registered before the standard scheme looks like: a hex secret, and
    // the old header on (as the migration leaves every existing endpoint).
    let hex_secret = format!("whsec_{}", "ab".repeat(32));
    old_style(&app, &id, &hex_secret).await;
    app.post(&format!("/v1/webhooks/{id}/test")).send().await.unwrap();
    let got = received(&receiver, "/old", 1).await.remove(0);
    assert_eq!(verify_with_library(&hex_secret, &got), "verified");
    let old = got.headers["mailroom-signature"].to_str().unwrap();
    assert!(crate::webhooks::verify(&hex_secret, old, &got.body), "the old scheme still verifies");
    app.stop().await;
}

/// Makes an endpoint look as one registered before the standard scheme does after the
/// migration: its secret `whsec_<hex>`, sealed like any, and the old header on.
async fn old_style(app: &TestApp, id: &str, secret: &str) {
    let id = mailroom_domain::WebhookId::from_str(id).unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    let ws = app.workspace;
    let key = mailroom_keyring::active_key(&mut conn, ws).await.unwrap();
    let owner = mailroom_vault::SealContext {
        workspace: ws,
        mailbox: mailroom_domain::MailboxId::from_uuid(id.as_uuid()),
        field: mailroom_vault::Field::WebhookSecret,
    };
    let sealed = app.vault.seal(&key, &owner, &secrecy::SecretString::from(secret.to_owned())).await.unwrap();
    mailroom_store::admin::execute_on(
        &mut conn,
        &format!(
            "UPDATE webhooks SET secret_sealed = '\\x{}', legacy_signature = true WHERE id = '{}'",
            hex::encode(sealed),
            id.as_uuid()
        ),
    )
    .await
    .unwrap();
}
