//! The API's contract as served: `GET /v1/openapi.json` (open, like `/health`) answers the
//! document committed in `docs/openapi.json`, and every error answer carries a code the
//! document lists, in the one JSON shape, including the framework's own refusals.

use mailroom_tests::{Options, TestApp};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_committed_one_and_errors_use_its_codes() {
    let app = TestApp::spawn().await;
    let resp = app.http.get(format!("{}/v1/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let served: Value = resp.json().await.unwrap();
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(mailroom_devkit::repo_root().join("docs/openapi.json")).unwrap())
            .unwrap();
    assert_eq!(served, committed, "the served document is the committed one");
    let codes: Vec<&str> =
        served["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
    let ops = served["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum::<usize>();
    assert!(ops >= 50, "{ops} operations");

    // Unknown route, wrong method, bad query, bad JSON: one shape, listed codes.
    let cases = [
        app.get("/v1/nowhere"),
        app.http.put(format!("{}/v1/events", app.base)).bearer_auth(&app.token),
        app.get("/v1/events?limit=zero"),
        app.post("/v1/sends").header("Idempotency-Key", "k").header("content-type", "application/json").body("{"),
        app.post("/v1/sends/snd_00000000000000000000000000000000/resolve")
            .json(&serde_json::json!({ "action": "cancel" })),
    ];
    for req in cases {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!((400..500).contains(&status) && codes.contains(&code), "{status} {body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_answer_has_exactly_the_fields_its_schema_lists() {
    let app = TestApp::spawn().await;
    let doc: Value = app.http.get(format!("{}/v1/openapi.json", app.base)).send().await.unwrap().json().await.unwrap();
    let fields = |schema: &str| -> Vec<String> {
        let mut f: Vec<String> =
            doc["components"]["schemas"][schema]["properties"].as_object().unwrap().keys().cloned().collect();
        f.sort();
        f
    };
    let mailbox = app.connect_mailbox().await;
    let (_, send) = app.send("typed-1", &TestApp::send_body(&mailbox, "typed@example.test", "Typed")).await;
    let mut got: Vec<String> = send.as_object().unwrap().keys().cloned().collect();
    got.sort();
    assert_eq!(got, fields("SendView"));
    let shown: Value = app.get(&format!("/v1/mailboxes/{mailbox}")).send().await.unwrap().json().await.unwrap();
    let mut got: Vec<String> = shown.as_object().unwrap().keys().cloned().collect();
    got.sort();
    let mut want = fields("MailboxView");
    want.retain(|f| f != "resumed_sends"); // only after a reconnect or a resume
    assert_eq!(got, want);
    let feed: Value = app.get("/v1/events").send().await.unwrap().json().await.unwrap();
    let mut got: Vec<String> = feed["events"][0].as_object().unwrap().keys().cloned().collect();
    got.sort();
    assert_eq!(got, fields("WireEvent"));
    app.stop().await;
}

/// Everything a request could change, as one digest (the tables a tenant's requests write).
async fn state(app: &TestApp) -> String {
    let tables = [
        "sends",
        "mailboxes",
        "mailbox_secrets",
        "webhooks",
        "webhook_deliveries",
        "suppressions",
        "api_keys",
        "workspaces",
        "workspace_grants",
        "workspace_keys",
        "workspace_secrets",
        "sequence_stops",
        "events",
    ];
    let parts: Vec<String> =
        tables.iter().map(|t| format!("(SELECT string_agg(x::text, '|' ORDER BY x::text) FROM {t} x)")).collect();
    let sql = format!("SELECT md5(concat_ws('#', {}))", parts.join(", "));
    mailroom_store::admin::scalar_strings(&app.pool, &sql).await.unwrap().remove(0)
}

/// The operations of the document that take a body or query parameters: the ones an invalid
/// request can be made for (a free string in a path has no invalid value).
async fn with_inputs(app: &TestApp) -> Vec<String> {
    let doc: Value = app.http.get(format!("{}/v1/openapi.json", app.base)).send().await.unwrap().json().await.unwrap();
    let mut ids = vec![];
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let query = op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            if op.get("requestBody").is_some() || query {
                ids.push(op["operationId"].as_str().unwrap().to_owned());
            }
        }
    }
    ids
}

/// One schemathesis run against the app (only the `only` operations when given); returns its
/// report, and fails the test on any failure.
async fn schemathesis(app: &TestApp, mode: &str, checks: &str, examples: &str, only: &[String]) -> String {
    let bin = mailroom_devkit::repo_root().join(".peers/venv/bin/schemathesis");
    let reports = std::env::temp_dir().join(format!("schemathesis-{}-{mode}", std::process::id()));
    let url = format!("{}/v1/openapi.json", app.base);
    let auth = format!("Authorization: Bearer {}", app.token);
    let run = || {
        tokio::process::Command::new(&bin)
            .args(["run", &url, "-H", &auth, "--mode", mode, "--checks", checks, "--max-examples", examples])
            .args(["--suppress-health-check", "filter_too_much"])
            .args(only.iter().flat_map(|id| ["--include-operation-id", id.as_str()]))
            // One worker: schemathesis's generators are not safe to run on threads of one process
            // (CPython's `ast` can fail with a recursion-depth mismatch under them).
            .args(["--phases", "examples,coverage,fuzzing", "--workers", "1", "--request-timeout", "20", "--seed", "1"])
            .args(["--report", "ndjson", "--report-dir", &reports.to_string_lossy()])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .env("NO_COLOR", "1")
            .output()
    };
    let mut out = run().await.expect("schemathesis runs (scripts/setup-peers installs it)");
    // A crash inside the tool's own generator (not a finding about the API) gets one more run.
    if String::from_utf8_lossy(&out.stdout).contains("AST constructor recursion depth mismatch") {
        out = run().await.expect("schemathesis runs");
    }
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "schemathesis ({mode}) found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// The count in schemathesis's summary line `N generated, ...`.
fn generated(report: &str) -> usize {
    report.lines().find_map(|l| l.trim().split_once(" generated")?.0.trim().parse().ok()).unwrap_or(0)
}

/// Schemathesis (from PyPI) drives every operation of the served document under a real key.
/// Invalid requests only, first: each is refused, and the database is as it was. Then valid and
/// invalid ones: no 5xx, and every answer's status, media type and (where typed) body as the
/// document says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // The sweep's figures, shown with --nocapture.
async fn schemathesis_finds_no_answer_outside_the_document() {
    let app = TestApp::spawn_with(Options { in_process_worker: false, ..Options::default() }).await;
    app.connect_mailbox().await;
    let before = state(&app).await;
    let refusable = with_inputs(&app).await;
    let negative = schemathesis(&app, "negative", "not_a_server_error,negative_data_rejection", "6", &refusable).await;
    assert_eq!(state(&app).await, before, "a refused request changed the database");
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";
    let all = schemathesis(&app, "all", checks, "8", &[]).await;
    println!(
        "schemathesis: {} refused-only requests, {} requests in all, 0 failures",
        generated(&negative),
        generated(&all)
    );
    assert!(generated(&negative) > 100 && generated(&all) > 500, "{negative}\n{all}");
    app.stop().await;
}

/// A Python client generated from the committed document (openapi-python-client, no hand
/// edits) runs `examples/scheduler.py` against the API: a webhook, a mailbox, a batch, the
/// sends and the feed a page at a time, every delivery verified by the Standard Webhooks library.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // The scenario's lines, shown with --nocapture.
async fn a_client_generated_from_the_document_runs_the_scheduler_example() {
    let app = TestApp::spawn_with(Options { reply_worker: true, ..Options::default() }).await;
    let root = mailroom_devkit::repo_root();
    let venv = root.join(".peers/venv/bin");
    let dir = std::env::temp_dir().join(format!("mailroom-client-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let generated = tokio::process::Command::new(venv.join("openapi-python-client"))
        .args(["generate", "--path"])
        .arg(root.join("docs/openapi.json"))
        .arg("--output-path")
        .arg(dir.join("mailroom_client"))
        .args(["--meta", "none"])
        .output()
        .await
        .expect("openapi-python-client runs (scripts/setup-peers installs it)");
    assert!(dir.join("mailroom_client/client.py").exists(), "{}", String::from_utf8_lossy(&generated.stderr));
    let mut mailbox = TestApp::mailbox_request(&mailroom_tests::peers().info.sender_password);
    mailbox["from_address"] = json!(mailroom_tests::peers().info.sender);
    let out = tokio::process::Command::new(venv.join("python3"))
        .arg(root.join("examples/scheduler.py"))
        .env("PYTHONPATH", &dir)
        .env("MAILROOM_URL", &app.base)
        .env("MAILROOM_KEY", &app.token)
        .env("MAILROOM_MAILBOX", mailbox.to_string())
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{said}");
    assert!(out.status.success(), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("batch: 7 of 7 created") && said.contains("webhooks: 7 deliveries verified"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
    app.stop().await;
}
