//! The `mailroom` binary itself, as an operator runs it: start-up checks that refuse a wrong
//! master key before anything is touched, `config check`, and unknown configuration refused.
#![allow(missing_docs)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::Arc,
    time::Duration,
};

use mailroom_tests::{Options, TestApp, peers, recipient};
use mailroom_vault::{KeyProvider, LocalProvider};

/// A scratch directory of this test run.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mailroom-cli-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A configuration file in `dir` whose master-key path is relative (so it resolves there).
fn config(dir: &Path, extra: &str) -> PathBuf {
    let file = dir.join("mailroom.toml");
    let body = format!(
        "[vault]\nmaster_key_file = \"master.key\"\n\n[smtp]\nextra_ca_file = \"{}\"\n\n\
         [egress]\nallow = [\"127.0.0.0/8\"]\n\n\
         [worker]\npoll_interval_ms = 200\nheartbeat_secs = 1\nhousekeeping_every_secs = 1\n{extra}",
        peers().info.ca_file
    );
    std::fs::write(&file, body).unwrap();
    file
}

fn mailroom(app: &TestApp, config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailroom"));
    c.args(args)
        .arg("--config")
        .arg(config)
        .env("DATABASE_URL", app.database_url())
        .env("MAILROOM_LOG__FILTER", "info");
    c
}

/// Runs the command to its end, with a deadline.
async fn run(mut c: Command) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().expect("the mailroom binary");
    let done = tokio::task::spawn_blocking(move || child.wait_with_output());
    tokio::time::timeout(Duration::from_secs(60), done)
        .await
        .expect("the command finished within a minute")
        .unwrap()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_another_master_key_refuses_to_start_and_the_right_one_delivers_once() {
    let right_dir = scratch("right");
    let provider = LocalProvider::open_or_create(&right_dir.join("master.key")).unwrap();
    let held = provider.key_id().to_owned();
    let opts = Options { in_process_worker: false, provider: Some(Arc::new(provider)), ..Options::default() };
    let app = TestApp::spawn_with(opts).await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("startup");
    for i in 0..3 {
        let (status, body) = app.send(&format!("startup-{i}"), &TestApp::send_body(&mailbox, &to, "Start-up")).await;
        assert_eq!(status, 201, "{body}");
    }

    // Another directory, another master key: the worker refuses to start and names both.
    let wrong_dir = scratch("wrong");
    let stranger = LocalProvider::create(&wrong_dir.join("master.key")).unwrap();
    let out = run(mailroom(&app, &config(&wrong_dir, ""), &["worker", "send"])).await;
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("the vault check failed"), "{said}");
    assert!(said.contains(&held) && said.contains(stranger.key_id()), "names both master keys: {said}");
    assert!(said.contains(&wrong_dir.join("master.key").display().to_string()), "names the file: {said}");
    let check = run(mailroom(&app, &config(&wrong_dir, ""), &["config", "check"])).await;
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(text(&check).contains("vault: FAILED"), "{}", text(&check));

    // No key file at all: refused, and no new master key appears next to it.
    let empty_dir = scratch("empty");
    let out = run(mailroom(&app, &config(&empty_dir, ""), &["worker", "send"])).await;
    assert!(!out.status.success() && text(&out).contains("does not exist"), "{}", text(&out));
    assert!(!empty_dir.join("master.key").exists(), "no master key was created");

    // Nothing changed for the tenant.
    assert_eq!(app.count("SELECT count(*) FROM mailboxes WHERE status = 'active'").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM sends WHERE state = 'queued' AND attempts = 0").await, 3);

    // The right directory: the check passes and the worker delivers each send once.
    let right = config(&right_dir, "");
    let check = run(mailroom(&app, &right, &["config", "check"])).await;
    assert!(check.status.success() && text(&check).contains("vault: OK"), "{}", text(&check));
    assert!(text(&check).contains("\"url\": \"***\""), "the database URL is hidden: {}", text(&check));
    let mut worker =
        mailroom(&app, &right, &["worker", "send"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let sent = "SELECT count(*) FROM sends WHERE state = 'sent'";
    TestApp::wait_for("three sends delivered", Duration::from_secs(60), || async { app.count(sent).await == 3 }).await;
    let _ = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status();
    let _ = worker.wait();
    assert_eq!(app.delivered(&to).await.len(), 3, "each send delivered once");
    app.stop().await;
    for d in [right_dir, wrong_dir, empty_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_refuses_an_unknown_key_with_a_suggestion() {
    let app = TestApp::spawn_with(Options { in_process_worker: false, ..Options::default() }).await;
    let dir = scratch("unknown");
    let file = config(&dir, "concurency = 4\n");
    let out = run(mailroom(&app, &file, &["config", "check"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("did you mean `worker.concurrency`?"), "{}", text(&out));
    let out = run(mailroom(&app, &file, &["worker", "send"])).await;
    assert!(!out.status.success() && text(&out).contains("worker.concurency"), "{}", text(&out));
    let clean = scratch("clean");
    let mut c = mailroom(&app, &config(&clean, ""), &["config", "check"]);
    c.env("MAILROOM_WORKER__CONCURENCY", "4");
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("did you mean `MAILROOM_WORKER__CONCURRENCY`?"), "{}", text(&out));
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(clean);
}

/// Private by default: `serve` on an address beyond loopback needs `api.allow_network` and an
/// admin token rotated within 30 days (the auto-created first one never qualifies); once
/// serving, every answer names its request and every request leaves one access-log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_beyond_loopback_needs_an_opt_in_and_a_rotated_admin_token() {
    let dir = scratch("gate");
    let provider = LocalProvider::open_or_create(&dir.join("master.key")).unwrap();
    let opts = Options { in_process_worker: false, provider: Some(Arc::new(provider)), ..Options::default() };
    let app = TestApp::spawn_with(opts).await;
    let bind = "[api]\nbind = \"0.0.0.0:0\"\nadmin_token_file = \"admin.token\"\n";
    let out = run(mailroom(&app, &config(&dir, bind), &["serve"])).await;
    assert!(!out.status.success() && text(&out).contains("set api.allow_network = true"), "{}", text(&out));
    let allowed = config(&dir, &format!("{bind}allow_network = true\n"));
    let out = run(mailroom(&app, &allowed, &["serve"])).await;
    assert!(!out.status.success() && text(&out).contains("auto-created first one"), "{}", text(&out));

    // Rotated, but 40 days ago: still refused.
    assert!(run(mailroom(&app, &allowed, &["admin", "rotate-token"])).await.status.success());
    let token_file = dir.join("admin.token");
    let mut stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&token_file).unwrap()).unwrap();
    let fresh = stored["created_at"].clone();
    stored["created_at"] = serde_json::json!(chrono::Utc::now() - chrono::Duration::days(40));
    std::fs::write(&token_file, stored.to_string()).unwrap();
    let out = run(mailroom(&app, &allowed, &["serve"])).await;
    assert!(!out.status.success() && text(&out).contains("last rotated 40 days ago"), "{}", text(&out));
    stored["created_at"] = fresh;
    std::fs::write(&token_file, stored.to_string()).unwrap();

    // Opted in with a fresh token: it serves, and logs each request once with its id.
    let (mut server, port, log) = serve(&app, &allowed);
    let http = reqwest::Client::new();
    let resp = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "the operator's surface needs the admin token");
    let id = resp.headers()["mailroom-request-id"].to_str().unwrap().to_owned();
    let access = next_line(&log, "access", &|l| l.contains("mailroom::access"));
    assert!(access.contains(&id) && access.contains("route=/metrics") && access.contains("status=401"), "{access}");
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Starts `mailroom serve`; returns it, its port, and its log lines as they come.
fn serve(app: &TestApp, config: &Path) -> (std::process::Child, u16, std::sync::mpsc::Receiver<String>) {
    let mut serve = mailroom(app, config, &["serve"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (lines, log) = std::sync::mpsc::channel::<String>();
    let stderr = serve.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let listening = next_line(&log, "API listening", &|l| l.contains("API listening"));
    let port = listening.rsplit(':').next().unwrap().trim().trim_matches('"').parse().unwrap();
    (serve, port, log)
}

/// The next log line that `pred` accepts, within 30 s.
fn next_line(log: &std::sync::mpsc::Receiver<String>, what: &str, pred: &dyn Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = log.recv_timeout(left).unwrap_or_else(|_| panic!("no log line {what} within 30 s"));
        if pred(&line) {
            return line;
        }
    }
}

/// Two API processes on one database share one limit: a key gets its burst once, not once
/// per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_processes_share_one_rate_limit() {
    let dir = scratch("limits");
    let provider = LocalProvider::open_or_create(&dir.join("master.key")).unwrap();
    let opts = Options { in_process_worker: false, provider: Some(Arc::new(provider)), ..Options::default() };
    let app = TestApp::spawn_with(opts).await;
    let limits = "[api]\nbind = \"127.0.0.1:0\"\nadmin_token_file = \"admin.token\"\n\n\
                  [rate_limits]\nreads_per_key = 60\nburst_secs = 10\n";
    let file = config(&dir, limits);
    let (mut a, port_a, _log_a) = serve(&app, &file);
    let (mut b, port_b, _log_b) = serve(&app, &file);
    let http = reqwest::Client::new();
    let (mut ok, mut limited) = ([0; 2], [0; 2]);
    let started = std::time::Instant::now();
    for i in 0..30 {
        let port = [port_a, port_b][i % 2];
        let resp = http.get(format!("http://127.0.0.1:{port}/v1/events")).bearer_auth(&app.token).send().await.unwrap();
        match resp.status().as_u16() {
            200 => ok[i % 2] += 1,
            429 => limited[i % 2] += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // A burst of 10 and one more per second since: one shared bucket, not one per process.
    let earned = started.elapsed().as_secs() as usize + 1;
    let served = ok[0] + ok[1];
    assert!(served >= 10 && served <= 10 + earned, "served {ok:?} in {earned} s, limited {limited:?}");
    assert!(limited[0] > 0 && limited[1] > 0, "both processes refuse: {limited:?}");
    for p in [&mut a, &mut b] {
        let _ = Command::new("kill").args(["-TERM", &p.id().to_string()]).status();
        let _ = p.wait();
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
