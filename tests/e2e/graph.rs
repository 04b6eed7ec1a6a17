//! A Microsoft 365 mailbox sending through Microsoft Graph, with Microsoft's token behaviour
//! scripted in wiremock: the refresh token rotates on every use (the new one is sealed), the
//! message goes as base64 MIME to `/me/sendMail` (202), and disconnecting says the grant could
//! not be revoked (Microsoft has no revocation endpoint).

use std::time::Duration;

use base64::Engine as _;
use mailroom_domain::MailboxId;
use mailroom_keyring::oauth_config::OAuthProvider;
use mailroom_tests::{Options, TestApp, peers, recipient};
use mailroom_vault::Field;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

use crate::oauth::{callback, consent, google_for};

fn token(access: &str, refresh: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "token_type": "Bearer", "access_token": access, "refresh_token": refresh, "expires_in": 3600,
        "scope": "Mail.Send Mail.Read User.Read offline_access",
    }))
}

async fn microsoft(ms: &MockServer) -> TestApp {
    Mock::given(matchers::path("/token"))
        .and(matchers::body_string_contains("grant_type=authorization_code"))
        .respond_with(token("at-1", "rt-1"))
        .mount(ms)
        .await;
    Mock::given(matchers::path("/token"))
        .and(matchers::body_string_contains("refresh_token=rt-1"))
        .respond_with(token("at-2", "rt-2"))
        .mount(ms)
        .await;
    Mock::given(matchers::path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "mail": peers().info.sender })))
        .mount(ms)
        .await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1.0/me/sendMail"))
        .respond_with(ResponseTemplate::new(202))
        .mount(ms)
        .await;
    let mut settings = google_for(&format!("mailroom-test-{}", uuid::Uuid::new_v4().simple()));
    let authorize = settings.google.as_ref().unwrap().auth_url.clone();
    settings.microsoft = Some(OAuthProvider {
        client_id: "mailroom-ms-test".into(),
        client_secret: SecretString::from("ms-secret"),
        auth_url: authorize, // consent is played by the OAuth server; tokens come from wiremock
        token_url: format!("{}/token", ms.uri()),
        revoke_url: None,
        userinfo_url: format!("{}/v1.0/me", ms.uri()),
        smtp_scopes: vec!["https://outlook.office.com/SMTP.Send".into(), "offline_access".into()],
        api_scopes: vec!["Mail.Send".into(), "Mail.Read".into(), "User.Read".into(), "offline_access".into()],
        api_base: format!("{}/v1.0", ms.uri()),
        smtp_host: "127.0.0.1".into(),
        smtp_port: 9,
    });
    TestApp::spawn_with(Options { oauth: Some(settings), ..Options::default() }).await
}

async fn graph_requests(ms: &MockServer) -> Vec<wiremock::Request> {
    ms.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == "/v1.0/me/sendMail").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_microsoft_mailbox_sends_through_graph_and_its_rotated_refresh_token_is_kept() {
    let ms = MockServer::start().await;
    let app = microsoft(&ms).await;
    let pacing = json!({ "daily_cap": null, "min_gap_secs": 0, "jitter_secs": 0, "max_sessions": 4 });
    let resp = app
        .post("/v1/mailboxes/oauth/microsoft/start")
        .json(&json!({ "transport": "api", "pacing": pacing }))
        .send()
        .await;
    let started: Value = resp.unwrap().json().await.unwrap();
    let (status, mailbox) = callback(&app, &consent(started["authorization_url"].as_str().unwrap()).await).await;
    assert_eq!(status, 201, "{mailbox}");
    let id = mailbox["id"].as_str().unwrap().to_owned();

    let (_, first) = app.send("ms-1", &TestApp::send_body(&id, &recipient("graph"), "Via Graph")).await;
    app.wait_for_send(first["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    let requests = graph_requests(&ms).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].headers["authorization"].to_str().unwrap(), "Bearer at-1");
    let mime = base64::engine::general_purpose::STANDARD.decode(&requests[0].body).unwrap();
    assert!(String::from_utf8(mime).unwrap().contains(first["message_id"].as_str().unwrap()));

    // The access token expires: one refresh with rt-1, which Microsoft replaces with rt-2.
    app.execute("UPDATE mailboxes SET token_expires_at = now() - interval '1 minute'").await;
    let (_, second) = app.send("ms-2", &TestApp::send_body(&id, &recipient("graph"), "After refresh")).await;
    app.wait_for_send(second["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert_eq!(graph_requests(&ms).await[1].headers["authorization"].to_str().unwrap(), "Bearer at-2");
    let mbx: MailboxId = id.parse().unwrap();
    let refresh =
        mailroom_keyring::open_secret(&app.pool, &app.vault, app.workspace, mbx, Field::RefreshToken).await.unwrap();
    assert_eq!(refresh.expose_secret(), "rt-2", "the rotated refresh token is sealed in place of the old one");

    let resp = app.http.delete(format!("{}/v1/mailboxes/{id}", app.base)).bearer_auth(&app.token).send().await;
    let body: Value = resp.unwrap().json().await.unwrap();
    assert!(
        body["provider_grant"].as_str().unwrap().starts_with("not revoked: microsoft has no revocation endpoint"),
        "{body}"
    );
    app.stop().await;
}
