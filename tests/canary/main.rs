//! The canary: a mailbox whose password is a unique random string goes through everything a
//! credential goes through (connect, sends, a key rotation, a login the server refuses at
//! connect and at send time, a disconnect) with every log of the process captured at TRACE.
//! Then the canary, raw, hex or in base64 at any alignment (as in `AUTH PLAIN`), is looked for
//! in the logs, every HTTP response body, panic output and a `pg_dump` of the database
//! (queue tables included). Found anywhere: the test fails.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use base64::Engine as _;
use mailroom_tests::{Options, TestApp, TestKms, WorkerProcess, peers, recipient, server_url};
use serde_json::{Value, json};

/// Everything the process logs, and every panic message.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let cap = Capture::default();
        let writer = cap.clone();
        tracing_subscriber::fmt().with_env_filter("trace").with_writer(move || writer.clone()).with_ansi(false).init();
        let panics = cap.clone();
        std::panic::set_hook(Box::new(move |info| {
            let _ = writeln!(panics.clone(), "PANIC: {info}");
        }));
        cap
    })
}

/// The forms a secret can leak in: as is (when text), hex, and base64 at each of the three
/// alignments it can start at inside a longer encoded string (only the groups made of its
/// bytes alone).
fn needles(secret: impl AsRef<[u8]>) -> Vec<String> {
    let secret = secret.as_ref();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = vec![hex::encode(secret), hex::encode_upper(secret)];
    out.extend(std::str::from_utf8(secret).ok().map(str::to_owned));
    for pad in 0..3 {
        let encoded = b64.encode([&b"\0\0"[..pad], secret].concat());
        let skip = if pad == 0 { 0 } else { 4 };
        out.push(encoded[skip..encoded.len() - 4].to_owned());
    }
    out
}

fn leaks(haystack: &str, needles: &[String]) -> Vec<String> {
    needles.iter().filter(|n| haystack.contains(n.as_str())).cloned().collect()
}

struct Recorder<'a> {
    app: &'a TestApp,
    bodies: String,
}

impl Recorder<'_> {
    async fn call(&mut self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        self.bodies.push_str(&text);
        self.bodies.push('\n');
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn wait(&mut self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = self.call(self.app.get(path)).await;
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{path} did not get there: {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn pg_dump(db: &str) -> String {
    let url = format!("{}/{db}", server_url().rsplit_once('/').unwrap().0);
    let out = std::process::Command::new("pg_dump").arg(&url).output().expect("pg_dump (postgresql-client)");
    assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A workspace key version as stored, wrapped (read before rotation destroys it).
async fn wrapped(app: &TestApp, version: i32) -> mailroom_vault::WrappedKey {
    let mut conn = app.pool.acquire().await.unwrap();
    let row = mailroom_store::keys::version(&mut conn, app.workspace, version).await.unwrap().expect("key row");
    mailroom_keyring::wrapped_key(app.workspace, row).expect("wrapped bytes")
}

#[test]
fn the_needles_find_a_password_inside_an_auth_plain_exchange() {
    let secret = "canary-0123456789abcdef";
    for login in ["", "a", "ab"] {
        let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{login}\0{secret}"));
        assert!(!leaks(&format!("C: AUTH PLAIN {plain}"), &needles(secret)).is_empty(), "{plain}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_password_appears_in_no_log_response_panic_or_table() {
    let cap = capture();
    // The AWS provider (moto), so the SDK's own TRACE logs are searched too, for the data keys.
    let kms = TestKms::start().await;
    let opts = Options { in_process_worker: false, provider: Some(Arc::new(kms.provider())), ..Options::default() };
    let app = TestApp::spawn_with(opts).await;
    let mut data_keys = vec![wrapped(&app, 1).await];
    let mut rec = Recorder { app: &app, bodies: String::new() };
    let canary = format!("canary-ok-{}", uuid::Uuid::new_v4().simple());
    let bad = format!("canary-bad-{}", uuid::Uuid::new_v4().simple());
    peers().command(&format!("refuse {bad}")).unwrap();

    // Connect, and send through a worker.
    let (status, mailbox) = rec.call(app.post("/v1/mailboxes").json(&TestApp::mailbox_request(&canary))).await;
    assert_eq!(status, 201, "{mailbox}");
    let id = mailbox["id"].as_str().unwrap().to_owned();
    let worker = WorkerProcess::start(&app);
    let to = recipient("canary");
    for i in 0..10 {
        let req = app.post("/v1/sends").header("Idempotency-Key", format!("c-{i}"));
        let (status, _) = rec.call(req.json(&TestApp::send_body(&id, &to, "Canary"))).await;
        assert_eq!(status, 201);
    }
    assert_eq!(app.wait_for_terminal(10, Duration::from_secs(60)).await, vec![("sent".to_owned(), 10)]);

    // Rotate the workspace key: every sealed value is opened and sealed again.
    let (status, _) = rec.call(app.post("/v1/data-keys/rotate")).await;
    assert_eq!(status, 202);
    data_keys.push(wrapped(&app, 2).await);
    rec.wait("/v1/data-keys", |k| k["keys"][0]["state"] == "destroyed").await;

    // The server refuses the password: at connect, and at send time in a fresh worker.
    let (status, refused) = rec.call(app.post("/v1/mailboxes").json(&TestApp::mailbox_request(&bad))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("smtp_auth_failed")));
    worker.kill();
    peers().command(&format!("refuse {canary}")).unwrap();
    let fresh = WorkerProcess::start(&app);
    let req = app.post("/v1/sends").header("Idempotency-Key", "c-refused");
    rec.call(req.json(&TestApp::send_body(&id, &to, "Refused"))).await;
    rec.wait(&format!("/v1/mailboxes/{id}"), |m| m["status"] == "needs_reauth").await;
    drop(fresh);

    // Disconnect.
    let (status, _) =
        rec.call(app.http.delete(format!("{}/v1/mailboxes/{id}", app.base)).bearer_auth(&app.token)).await;
    assert_eq!(status, 200);

    let dump = pg_dump(app.database());
    let logs = cap.text();
    // The captures work: they hold what they should.
    assert!(dump.contains(&app.workspace.as_uuid().to_string()) && dump.contains("apalis"), "the dump is empty");
    assert!(logs.contains("TRACE") && logs.contains("mailbox connected") && logs.contains("535"), "logs not captured");
    assert!(logs.contains("aws_smithy_runtime"), "the AWS SDK's own logs were not captured");
    let mut needles = needles(&canary);
    for key in &data_keys {
        let plain = kms.plaintext_of(key).await;
        assert_eq!(plain.len(), 32);
        needles.extend(self::needles(&plain));
    }
    let mut found = vec![];
    for (place, text) in [("logs", &logs), ("responses", &rec.bodies), ("pg_dump", &dump)] {
        for n in leaks(text, &needles) {
            found.push(format!("{place}: {n}"));
        }
    }
    assert!(found.is_empty(), "the canary leaked: {found:?}");
    assert!(!logs.contains("PANIC"), "a panic was logged");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leak_search_fails_when_a_secret_is_logged() {
    let cap = capture();
    let marker = format!("canary-selftest-{}", uuid::Uuid::new_v4().simple());
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{}\0{marker}", json!("x")));
    tracing::trace!(auth = %plain, "what a leaking SMTP client would log");
    assert!(!leaks(&cap.text(), &needles(&marker)).is_empty());
}
