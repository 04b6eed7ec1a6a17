//! Sending from an OAuth mailbox over SMTP XOAUTH2, against an SMTP peer that verifies the
//! bearer token (signature and expiry, with the OAuth server's keys): a good token delivers;
//! an expired one is refreshed once however many jobs need it, then delivers; a revoked grant
//! parks the mailbox as `needs_reauth` with its sends waiting.

use std::time::Duration;

use mailroom_domain::MailboxId;
use mailroom_tests::{Options, TestApp, WorkerProcess, peers, recipient};
use mailroom_vault::Field;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::oauth::{callback, connect_google, consent, google_for};

async fn app(client: &str) -> TestApp {
    let opts = Options { oauth: Some(google_for(client)), in_process_worker: false, ..Options::default() };
    TestApp::spawn_with(opts).await
}

fn refreshes(client: &str) -> i64 {
    peers().command(&format!("oauth stats {client}")).unwrap()["refresh_token"].as_i64().unwrap_or(0)
}

async fn unpace(app: &TestApp, mailbox: &str) {
    let body = json!({ "daily_cap": null, "min_gap_secs": 0, "jitter_secs": 0, "max_sessions": 8 });
    let url = format!("{}/v1/mailboxes/{mailbox}/pacing", app.base);
    assert_eq!(app.http.put(url).bearer_auth(&app.token).json(&body).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_mailbox_sends_over_xoauth2_and_an_expired_token_is_refreshed_once() {
    let client = format!("mailroom-test-{}", uuid::Uuid::new_v4().simple());
    let app = app(&client).await;
    let mailbox = connect_google(&app).await;
    unpace(&app, &mailbox).await;
    let logins_before = peers().command("stats").unwrap()["oauth_logins"].as_i64().unwrap();
    let first = WorkerProcess::start(&app);
    let to = recipient("oauth");
    app.send("o-1", &TestApp::send_body(&mailbox, &to, "Over XOAUTH2")).await;
    let counts = app.wait_for_terminal(1, Duration::from_secs(30)).await;
    let sends: Value = app.get("/v1/sends?state=failed").send().await.unwrap().json().await.unwrap();
    assert_eq!(counts, vec![("sent".to_owned(), 1)], "{sends}");
    assert_eq!(app.delivered(&to).await.len(), 1);
    assert!(peers().command("stats").unwrap()["oauth_logins"].as_i64().unwrap() > logins_before);
    assert_eq!(refreshes(&client), 0, "a fresh token needs no refresh");
    first.kill();

    // The token expires; a new worker (no pooled session) runs 20 jobs that all need it.
    app.execute("UPDATE mailboxes SET token_expires_at = now() - interval '1 minute'").await;
    let _second = WorkerProcess::start(&app);
    let items: Vec<Value> = (0..20)
        .map(|i| {
            let mut b = TestApp::send_body(&mailbox, &to, "After expiry");
            b["idempotency_key"] = json!(format!("o-x-{i}"));
            b
        })
        .collect();
    assert_eq!(app.post("/v1/sends/batch").json(&json!({ "items": items })).send().await.unwrap().status(), 200);
    let counts = app.wait_for_terminal(21, Duration::from_secs(60)).await;
    assert_eq!(counts, vec![("sent".to_owned(), 21)]);
    assert_eq!(refreshes(&client), 1, "one refresh for every job that needed it");
    assert_eq!(app.count("SELECT count(*) FROM mailboxes WHERE token_expires_at > now()").await, 1);
    assert_eq!(app.delivered(&to).await.len(), 21);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_parks_the_mailbox_and_reauthorising_the_same_account_brings_it_back() {
    let client = format!("mailroom-test-{}", uuid::Uuid::new_v4().simple());
    let app = app(&client).await;
    let mailbox = connect_google(&app).await;
    let id: MailboxId = mailbox.parse().unwrap();
    // The user revokes the app at Google; the access token runs out.
    let refresh =
        mailroom_keyring::open_secret(&app.pool, &app.vault, app.workspace, id, Field::RefreshToken).await.unwrap();
    peers().command(&format!("oauth revoke {}", refresh.expose_secret())).unwrap();
    unpace(&app, &mailbox).await;
    app.execute("UPDATE mailboxes SET token_expires_at = now() - interval '1 minute'").await;
    let _worker = WorkerProcess::start(&app);
    let to = recipient("oauth-revoked");
    for i in 0..3 {
        app.send(&format!("r-{i}"), &TestApp::send_body(&mailbox, &to, "Revoked")).await;
    }
    let parked = "SELECT count(*) FROM sends WHERE state = 'retry_wait' AND next_attempt_at IS NULL AND attempts = 0";
    app.wait_until(parked, 3, Duration::from_secs(30)).await;
    let shown: Value = app.get(&format!("/v1/mailboxes/{mailbox}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["status"], "needs_reauth", "{shown}");
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'mailbox.needs_reauth'").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM sends WHERE state IN ('failed', 'sent')").await,
        0,
        "none lost, none failed"
    );
    assert!(app.delivered(&to).await.is_empty());

    // Re-authorised in place: another account is refused and changes nothing ...
    let restart = || async {
        let resp = app.post(&format!("/v1/mailboxes/{mailbox}/oauth/start")).send().await.unwrap();
        assert_eq!(resp.status(), 201);
        let started: Value = resp.json().await.unwrap();
        consent(started["authorization_url"].as_str().unwrap()).await
    };
    let sender = peers().info.sender.clone();
    app.execute("UPDATE mailboxes SET from_address = 'someone-else@example.test'").await;
    let (status, body) = callback(&app, &restart().await).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("oauth_account_mismatch")), "{body}");
    assert_eq!(app.count("SELECT count(*) FROM mailboxes WHERE status = 'needs_reauth'").await, 1);
    app.execute(&format!("UPDATE mailboxes SET from_address = '{sender}'")).await;
    // ... the same account brings the same mailbox back, and its waiting sends go out once.
    let (status, body) = callback(&app, &restart().await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["id"].as_str(), body["status"].as_str()), (Some(mailbox.as_str()), Some("active")));
    assert_eq!(body["resumed_sends"], 3);
    app.wait_until("SELECT count(*) FROM sends WHERE state = 'sent'", 3, Duration::from_secs(60)).await;
    assert_eq!(app.delivered(&to).await.len(), 3);
    assert_eq!(app.count("SELECT count(*) FROM mailboxes").await, 1, "no new mailbox");
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'mailbox.reconnected'").await, 1);
    app.stop().await;
}
