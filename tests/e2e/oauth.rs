//! Connecting a mailbox over OAuth (authorization code + PKCE) against a real OAuth 2.0 server
//! on loopback over TLS (oauth2-mock-server, scripted like Google): the happy path seals both
//! tokens; a replayed, expired, unknown or missing state, a denied consent and missing scopes
//! each answer a clear error and create nothing.

use std::time::Duration;

use mailroom_domain::MailboxId;
use mailroom_keyring::oauth_config::{OAuthProvider, OAuthSettings};
use mailroom_tests::{Options, TestApp, peers};
use mailroom_vault::Field;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// Google-like settings under a client id of this test's own (the server counts calls per
/// client id, and tests run at once).
fn google() -> OAuthSettings {
    google_for(&format!("mailroom-test-{}", uuid::Uuid::new_v4().simple()))
}

pub(crate) fn google_for(client_id: &str) -> OAuthSettings {
    let p = &peers().info;
    let issuer = format!("https://localhost:{}", p.oauth_port.expect("the OAuth server (run scripts/setup-peers)"));
    let provider = OAuthProvider {
        client_id: client_id.into(),
        client_secret: SecretString::from("test-client-secret"),
        auth_url: format!("{issuer}/authorize"),
        token_url: format!("{issuer}/token"),
        revoke_url: Some(format!("{issuer}/revoke")),
        userinfo_url: format!("{issuer}/userinfo"),
        smtp_scopes: vec!["https://mail.google.com/".into(), "openid".into(), "email".into()],
        api_scopes: vec!["https://www.googleapis.com/auth/gmail.send".into(), "email".into()],
        api_base: "http://127.0.0.1:9".into(),
        smtp_host: p.smtp_host.clone(),
        smtp_port: p.smtp_port,
        imap_host: "127.0.0.1".into(),
        imap_port: p.imap_port,
        imap_tls: "none".into(),
        sent_folder: "Sent".into(),
    };
    let ca = peers().ca_pem().unwrap();
    OAuthSettings { google: Some(provider), state_ttl: Duration::from_secs(600), ..OAuthSettings::disabled() }
        .with_client(OAuthSettings::client(&[ca]))
}

async fn app() -> TestApp {
    TestApp::spawn_with(Options { oauth: Some(google()), ..Options::default() }).await
}

/// Starts a connection; returns the authorization URL.
async fn start(app: &TestApp, provider: &str) -> (u16, Value) {
    start_for(app, provider, "smtp").await
}

async fn start_for(app: &TestApp, provider: &str, transport: &str) -> (u16, Value) {
    let body = json!({ "transport": transport });
    let resp = app.post(&format!("/v1/mailboxes/oauth/{provider}/start")).json(&body).send().await;
    let resp = resp.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Plays the browser at the provider: follows the authorization URL and returns the query of
/// the redirect back to us.
pub(crate) async fn consent(url: &str) -> String {
    let browser = OAuthSettings::client(&[peers().ca_pem().unwrap()]);
    let resp = browser.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302, "{:?}", resp.text().await);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    reqwest::Url::parse(&location).unwrap().query().unwrap().to_owned()
}

pub(crate) async fn callback(app: &TestApp, query: &str) -> (u16, Value) {
    let resp = app.http.get(format!("{}/v1/oauth/callback?{query}", app.base)).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn state_of(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_google_mailbox_connects_with_pkce_and_its_tokens_are_sealed() {
    let client = format!("mailroom-test-{}", uuid::Uuid::new_v4().simple());
    let app = TestApp::spawn_with(Options { oauth: Some(google_for(&client)), ..Options::default() }).await;
    let (status, started) = start(&app, "google").await;
    assert_eq!(status, 201, "{started}");
    let url = started["authorization_url"].as_str().unwrap();
    assert!(url.contains("code_challenge_method=S256") && url.contains("access_type=offline"), "{url}");
    let query = consent(url).await;
    let (status, mailbox) = callback(&app, &query).await;
    assert_eq!(status, 201, "{mailbox}");
    assert_eq!(mailbox["from_address"], peers().info.sender);
    assert_eq!((mailbox["auth"].as_str(), mailbox["oauth"]["provider"].as_str()), (Some("oauth"), Some("google")));
    assert_eq!(mailbox["oauth"]["scopes"], json!(["https://mail.google.com/", "openid", "email"]));
    let id: MailboxId = mailbox["id"].as_str().unwrap().parse().unwrap();
    for field in [Field::RefreshToken, Field::AccessToken] {
        let token = mailroom_keyring::open_secret(&app.pool, &app.vault, app.workspace, id, field).await.unwrap();
        assert!(token.expose_secret().len() > 20, "{field:?} sealed and opens");
    }
    assert_eq!(app.count("SELECT count(*) FROM mailboxes WHERE token_expires_at > now()").await, 1);

    // The same redirect again (a replay, or a double-click): nothing more is created.
    let (status, body) = callback(&app, &query).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("oauth_state_invalid")));
    assert_eq!(app.count("SELECT count(*) FROM mailboxes").await, 1);

    // Disconnecting revokes the grant at the provider, then destroys the sealed tokens.
    let resp = app.http.delete(format!("{}/v1/mailboxes/{id}", app.base)).bearer_auth(&app.token).send().await;
    let body: Value = resp.unwrap().json().await.unwrap();
    assert_eq!(body["provider_grant"], "revoked at google", "{body}");
    let stats = peers().command(&format!("oauth stats {client}")).unwrap();
    assert_eq!(stats["revoked"], 1, "one call to Google's revocation endpoint: {stats}");
    let mut destroyed: Vec<String> = serde_json::from_value(body["destroyed"].clone()).unwrap();
    destroyed.sort();
    assert_eq!(destroyed, ["access_token", "refresh_token"]);
    assert_eq!(app.count("SELECT count(*) FROM mailbox_secrets").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_state_a_denied_consent_or_missing_scopes_create_nothing() {
    let app = app().await;
    let code = |b: &Value| b["error"]["code"].as_str().map(str::to_owned);
    let (status, body) = callback(&app, "code=x").await;
    assert_eq!((status, code(&body).as_deref()), (400, Some("oauth_state_missing")));
    let (status, body) = callback(&app, "code=x&state=never-issued").await;
    assert_eq!((status, code(&body).as_deref()), (400, Some("oauth_state_invalid")));

    let (_, started) = start(&app, "google").await;
    let query = consent(started["authorization_url"].as_str().unwrap()).await;
    app.execute("UPDATE oauth_states SET expires_at = now() - interval '1 second'").await;
    let (status, body) = callback(&app, &query).await;
    assert_eq!((status, code(&body).as_deref()), (400, Some("oauth_state_expired")));

    let (_, started) = start(&app, "google").await;
    let state = state_of(started["authorization_url"].as_str().unwrap());
    let denied = format!("error=access_denied&state={state}");
    let (status, body) = callback(&app, &denied).await;
    assert_eq!((status, code(&body).as_deref()), (400, Some("oauth_access_denied")));
    let (status, body) = callback(&app, &denied).await;
    assert_eq!((status, code(&body).as_deref()), (400, Some("oauth_state_invalid")), "a state works once");

    let redirect = format!("{}/v1/oauth/callback", app.base);
    peers().command(&format!("oauth drop-scope https://mail.google.com/ {redirect}")).unwrap();
    let (_, started) = start(&app, "google").await;
    let query = consent(started["authorization_url"].as_str().unwrap()).await;
    let (status, body) = callback(&app, &query).await;
    assert_eq!((status, code(&body).as_deref()), (422, Some("oauth_scopes_missing")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("https://mail.google.com/"));

    let (status, body) = start(&app, "microsoft").await;
    assert_eq!((status, code(&body).as_deref()), (422, Some("provider_not_configured")));
    assert_eq!(app.count("SELECT count(*) FROM mailboxes").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM mailbox_secrets").await, 0);
    app.stop().await;
}

/// Connects the peer's account through the whole OAuth flow; returns the mailbox id.
pub(crate) async fn connect_google(app: &TestApp) -> String {
    connect_google_for(app, "smtp").await
}

/// The same, for a mailbox sending over `transport` (`smtp` or `api`).
pub(crate) async fn connect_google_for(app: &TestApp, transport: &str) -> String {
    let (status, started) = start_for(app, "google", transport).await;
    assert_eq!(status, 201, "{started}");
    let query = consent(started["authorization_url"].as_str().unwrap()).await;
    let (status, mailbox) = callback(app, &query).await;
    assert_eq!(status, 201, "{mailbox}");
    mailbox["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_transport_is_refused_and_starts_nothing() {
    let app = app().await;
    let resp =
        app.post("/v1/mailboxes/oauth/google/start").json(&json!({ "transport": "pigeon" })).send().await.unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("`transport`"), "{body}");
    assert_eq!(app.count("SELECT count(*) FROM oauth_states").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_returns_to_the_platforms_page_with_the_outcome() {
    let settings = OAuthSettings { return_origins: vec!["https://app.example.test".into()], ..google() };
    let app = TestApp::spawn_with(Options { oauth: Some(settings), ..Options::default() }).await;
    let start_to = |url: &str| {
        let body = json!({ "transport": "smtp", "return_url": url });
        app.post("/v1/mailboxes/oauth/google/start").json(&body).send()
    };
    for elsewhere in [
        "https://evil.example/done",
        "http://app.example.test/done",
        "https://user@app.example.test/done",
        "javascript:alert(1)",
        "/relative",
    ] {
        let resp = start_to(elsewhere).await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("return_url_not_allowed")), "{elsewhere}");
    }
    assert_eq!(app.count("SELECT count(*) FROM oauth_states").await, 0, "nothing started");
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let back = |query: String| {
        let url = format!("{}/v1/oauth/callback?{query}", app.base);
        let browser = browser.clone();
        async move {
            let resp = browser.get(url).send().await.unwrap();
            assert_eq!(resp.status(), 303, "{:?}", resp.text().await);
            let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
            let pairs: std::collections::BTreeMap<String, String> = location.query_pairs().into_owned().collect();
            (format!("{}{}", location.origin().ascii_serialization(), location.path()), pairs)
        }
    };

    // Connected: back to the page, its own query kept, with the new mailbox.
    let started: Value = start_to("https://app.example.test/mailboxes/done?tab=1").await.unwrap().json().await.unwrap();
    let (page, pairs) = back(consent(started["authorization_url"].as_str().unwrap()).await).await;
    assert_eq!(page, "https://app.example.test/mailboxes/done");
    assert_eq!((pairs["tab"].as_str(), pairs["status"].as_str()), ("1", "connected"));
    let id = pairs["mailbox_id"].parse::<MailboxId>().unwrap();
    assert_eq!(app.count(&format!("SELECT count(*) FROM mailboxes WHERE id = '{}'", id.as_uuid())).await, 1);

    // Refused by the user at the provider: back with the error, nothing connected.
    let started: Value = start_to("https://app.example.test/done").await.unwrap().json().await.unwrap();
    let state = state_of(started["authorization_url"].as_str().unwrap());
    let (_, pairs) = back(format!("state={state}&error=access_denied")).await;
    assert_eq!(pairs["error"], "oauth_access_denied");
    assert!(pairs["error_description"].contains("nothing was connected"), "{pairs:?}");
    assert!(!pairs.contains_key("mailbox_id"));
    assert_eq!(app.count("SELECT count(*) FROM mailboxes").await, 1);

    // A state that cannot be read names no page to trust: JSON.
    let (status, body) = callback(&app, "state=forged").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("oauth_state_invalid")));
    app.stop().await;
}
