//! Safe egress: under the default configuration no address a tenant gives (SMTP and IMAP
//! hosts, webhook URLs) reaches loopback, private or metadata addresses, however it is spelled;
//! the check is made again at connect time, on what the name resolves to then; and a failed
//! connect tells the tenant the phase and the reply code, never the bytes a peer sent.

use std::time::Duration;

use mailroom_tests::{Options, TestApp, WorkerProcess, peers};
use mailroom_transport::EgressPolicy;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

async fn refused(resp: reqwest::Response, code: &str) -> String {
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_no_tenant_address_reaches_loopback_private_or_metadata_addresses() {
    let opts = Options { in_process_worker: false, egress: EgressPolicy::default(), ..Options::default() };
    let app = TestApp::spawn_with(opts).await;

    // The suite's own SMTP and IMAP peers, on loopback: refused before any connection.
    let resp = app.post("/v1/mailboxes").json(&TestApp::mailbox_request("secret")).send().await.unwrap();
    let message = refused(resp, "egress_denied").await;
    assert!(message.starts_with("`smtp.host`") && message.contains("loopback"), "{message}");
    let mut with_imap = TestApp::mailbox_request("secret");
    with_imap["imap"] = json!({ "host": "127.1", "port": peers().info.imap_port, "tls": "none",
        "username": "u", "password": "p" });
    let message = refused(app.post("/v1/mailboxes").json(&with_imap).send().await.unwrap(), "egress_denied").await;
    assert!(message.starts_with("`imap.host`"), "{message}");
    // A port scan through the connect call: every port of loopback answers the same.
    let mut answers = std::collections::BTreeSet::new();
    for port in [5432, 22, 6379, peers().info.smtp_port, 1] {
        let mut scan = TestApp::mailbox_request("secret");
        scan["smtp"]["host"] = json!("localhost");
        scan["smtp"]["port"] = json!(port);
        answers.insert(refused(app.post("/v1/mailboxes").json(&scan).send().await.unwrap(), "egress_denied").await);
    }
    assert_eq!(answers.len(), 1, "open, closed and mail ports answer alike: {answers:?}");
    assert_eq!(app.count("SELECT count(*) FROM mailboxes").await, 0);

    for url in [
        "http://127.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1:8080/",
        "https://localhost/",
        "http://[fd00::1]/",
        "http://100.64.0.1/",
    ] {
        let resp = app.post("/v1/webhooks").json(&json!({ "url": url })).send().await.unwrap();
        let message = refused(resp, "egress_denied").await;
        assert!(message.starts_with("`url`"), "{url}: {message}");
    }
    let resp = app.post("/v1/webhooks").json(&json!({ "url": "https://user:pw@example.com/hook" })).send().await;
    refused(resp.unwrap(), "invalid_url").await;
    assert_eq!(app.count("SELECT count(*) FROM webhooks").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_checked_again_at_delivery_and_a_refused_address_gets_nothing() {
    let app = TestApp::spawn().await;
    let receiver = MockServer::start().await;
    Mock::given(matchers::any()).respond_with(ResponseTemplate::new(204)).mount(&receiver).await;
    // Registered while loopback was allowed; delivered by a worker under the default policy.
    let resp = app.post("/v1/webhooks").json(&json!({ "url": format!("{}/hook", receiver.uri()) })).send().await;
    assert_eq!(resp.unwrap().status(), 201);
    let mailbox = app.connect_mailbox().await;
    app.send("egress-1", &TestApp::send_body(&mailbox, &mailroom_tests::recipient("egress"), "Hi")).await;
    app.wait_for_terminal(1, Duration::from_secs(30)).await;
    let mut config = app.reply_config.clone();
    config.reach.egress = EgressPolicy::default();
    let worker = WorkerProcess::start_reply(&app, config);
    let refused = "SELECT count(*) FROM webhook_deliveries WHERE last_status LIKE 'refused: %loopback%'";
    TestApp::wait_for("a refused delivery", Duration::from_secs(30), || async { app.count(refused).await > 0 }).await;
    assert_eq!(receiver.received_requests().await.unwrap().len(), 0, "nothing reached the receiver");
    worker.kill();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connect_tells_the_tenant_the_phase_never_the_peers_bytes() {
    let app = TestApp::spawn_with(Options { in_process_worker: false, ..Options::default() }).await;
    // Not a mail server: it greets with a banner holding something private, then hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2 internal-build-7f3a host=db-primary\r\n").await;
        }
    });
    for (field, tls) in [("smtp", "starttls"), ("smtp", "implicit")] {
        let mut req = TestApp::mailbox_request("secret");
        req[field]["port"] = json!(port);
        req[field]["tls"] = json!(tls);
        let resp = app.post("/v1/mailboxes").json(&req).send().await.unwrap();
        let message = refused(resp, "smtp_unreachable").await;
        assert!(!message.contains("internal-build") && !message.contains("db-primary"), "{message}");
    }
    let mut imap = TestApp::mailbox_request("secret");
    imap["imap"] = json!({ "host": "127.0.0.1", "port": port, "tls": "implicit", "username": "u", "password": "p" });
    let message = refused(app.post("/v1/mailboxes").json(&imap).send().await.unwrap(), "imap_unreachable").await;
    assert!(!message.contains("internal-build"), "{message}");
    // A real refusal: the reply code and enhanced status, not the server's words.
    let resp = app.post("/v1/mailboxes").json(&TestApp::mailbox_request("wrong")).send().await.unwrap();
    let message = refused(resp, "smtp_auth_failed").await;
    assert!(message.starts_with("the SMTP server refused the login (535"), "{message}");
    app.stop().await;
}
