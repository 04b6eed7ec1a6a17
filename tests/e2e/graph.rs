//! A Microsoft 365 mailbox sending through Microsoft Graph, with Microsoft's token behaviour
//! scripted in wiremock: the refresh token rotates on every use (the new one is sealed), the
//! message goes as base64 MIME to `/me/sendMail` (202), and disconnecting says the grant could
//! not be revoked (Microsoft has no revocation endpoint).

use std::time::Duration;

use base64::Engine as _;
use mailroom_domain::MailboxId;
use mailroom_keyring::oauth_config::{OAuthProvider, OAuthSettings};
use mailroom_tests::{Options, TestApp, peers, recipient};
use mailroom_vault::Field;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

use crate::oauth::{callback, consent, google_for};

/// An ID token as the token endpoint returns it (claims only: it is read, not verified, as
/// OpenID Connect allows for a token received directly from the provider over TLS).
fn id_token() -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({ "sub": "u1", "preferred_username": peers().info.sender, "tid": "t1" });
    format!("{}.{}.sig", b64(json!({ "alg": "RS256" })), b64(claims))
}

fn token(access: &str, refresh: Option<&str>, scope: &str) -> ResponseTemplate {
    let mut body = json!({ "token_type": "Bearer", "access_token": access, "expires_in": 3600, "scope": scope,
        "id_token": id_token() });
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

const MS_SCOPES: &str = "Mail.Send Mail.Read User.Read offline_access";

async fn microsoft(ms: &MockServer) -> TestApp {
    microsoft_answering(ms, ResponseTemplate::new(202)).await
}

async fn microsoft_answering(ms: &MockServer, send: ResponseTemplate) -> TestApp {
    TestApp::spawn_with(Options { oauth: Some(microsoft_settings(ms, send).await), ..Options::default() }).await
}

/// Microsoft scripted on `ms` (tokens, `sendMail` answering `send`), consent played by the
/// OAuth server.
pub(crate) async fn microsoft_settings(ms: &MockServer, send: ResponseTemplate) -> OAuthSettings {
    Mock::given(matchers::path("/token"))
        .and(matchers::body_string_contains("grant_type=authorization_code"))
        .respond_with(token("at-1", Some("rt-1"), MS_SCOPES))
        .mount(ms)
        .await;
    Mock::given(matchers::path("/token"))
        .and(matchers::body_string_contains("refresh_token=rt-1"))
        .respond_with(token("at-2", Some("rt-2"), MS_SCOPES))
        .mount(ms)
        .await;
    // No /me: with a mail-only grant Graph would refuse it; the address comes from the ID token.
    Mock::given(matchers::method("POST")).and(matchers::path("/v1.0/me/sendMail")).respond_with(send).mount(ms).await;
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
        imap_host: "127.0.0.1".into(),
        imap_port: 9,
        imap_tls: "none".into(),
        sent_folder: "Sent Items".into(),
    });
    settings
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_keeps_its_refresh_token_across_refreshes() {
    let g = MockServer::start().await;
    let scopes = "https://www.googleapis.com/auth/gmail.send email";
    Mock::given(matchers::path("/token"))
        .and(matchers::body_string_contains("grant_type=authorization_code"))
        .respond_with(token("g-at-1", Some("g-rt-1"), scopes))
        .mount(&g)
        .await;
    // Google answers a refresh with a new access token only.
    Mock::given(matchers::path("/token"))
        .and(matchers::body_string_contains("refresh_token=g-rt-1"))
        .respond_with(token("g-at-2", None, scopes))
        .expect(1)
        .mount(&g)
        .await;
    Mock::given(matchers::path("/gmail/v1/users/me/messages/send"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "x" })))
        .mount(&g)
        .await;
    let mut settings = google_for(&format!("mailroom-test-{}", uuid::Uuid::new_v4().simple()));
    let google = settings.google.as_mut().unwrap();
    google.token_url = format!("{}/token", g.uri());
    google.api_base = g.uri();
    let app = TestApp::spawn_with(Options { oauth: Some(settings), ..Options::default() }).await;
    let resp = app.post("/v1/mailboxes/oauth/google/start").json(&json!({ "transport": "api" })).send().await;
    let started: Value = resp.unwrap().json().await.unwrap();
    let (status, mailbox) = callback(&app, &consent(started["authorization_url"].as_str().unwrap()).await).await;
    assert_eq!(status, 201, "{mailbox}");
    let id = mailbox["id"].as_str().unwrap().to_owned();
    app.execute("UPDATE mailboxes SET token_expires_at = now() - interval '1 minute'").await;
    let (_, send) = app.send("g-1", &TestApp::send_body(&id, &recipient("gkeep"), "Kept")).await;
    app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    let mbx: MailboxId = id.parse().unwrap();
    let refresh =
        mailroom_keyring::open_secret(&app.pool, &app.vault, app.workspace, mbx, Field::RefreshToken).await.unwrap();
    assert_eq!(refresh.expose_secret(), "g-rt-1", "Google's refresh token is kept");
    let access =
        mailroom_keyring::open_secret(&app.pool, &app.vault, app.workspace, mbx, Field::AccessToken).await.unwrap();
    assert_eq!(access.expose_secret(), "g-at-2");
    app.stop().await;
}

pub(crate) async fn connect_microsoft(app: &TestApp) -> String {
    let resp = app.post("/v1/mailboxes/oauth/microsoft/start").json(&json!({ "transport": "api" })).send().await;
    let started: Value = resp.unwrap().json().await.unwrap();
    let (status, mailbox) = callback(app, &consent(started["authorization_url"].as_str().unwrap()).await).await;
    assert_eq!(status, 201, "{mailbox}");
    mailbox["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_504_is_found_by_internet_message_id_and_a_graph_429_pauses_the_mailbox() {
    let ms = MockServer::start().await;
    let app = microsoft_answering(&ms, ResponseTemplate::new(504)).await;
    let id = connect_microsoft(&app).await;
    let (_, send) = app.send("ms-504", &TestApp::send_body(&id, &recipient("graph504"), "Maybe delivered")).await;
    let filter = format!("internetMessageId eq '{}'", send["message_id"].as_str().unwrap());
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/v1.0/me/messages"))
        .and(matchers::query_param("$filter", filter))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "value": [{ "id": "AAMk1" }] })))
        .mount(&ms)
        .await;
    let done = app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert!(done["last_response"].as_str().unwrap().contains("found in the Sent folder"), "{done}");
    assert_eq!(graph_requests(&ms).await.len(), 1, "a 504 is never resent blindly");
    app.stop().await;

    let ms = MockServer::start().await;
    let app = microsoft_answering(&ms, ResponseTemplate::new(429).insert_header("retry-after", "300")).await;
    let id = connect_microsoft(&app).await;
    let (_, send) = app.send("ms-429", &TestApp::send_body(&id, &recipient("graph429"), "Throttled")).await;
    let waiting =
        app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "retry_wait").await;
    assert_eq!(waiting["attempts"], 0, "{waiting}");
    assert_eq!(
        app.count("SELECT count(*) FROM mailboxes WHERE paused_until > now() + interval '250 seconds'").await,
        1
    );
    app.stop().await;
}
