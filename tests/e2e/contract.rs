//! The API's contract as served: `GET /v1/openapi.json` (open, like `/health`) answers the
//! document committed in `docs/openapi.json`, and every error answer carries a code the
//! document lists, in the one JSON shape, including the framework's own refusals.

use mailroom_tests::TestApp;
use serde_json::Value;

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
    let feed: Value = app.get("/v1/events").send().await.unwrap().json().await.unwrap();
    let mut got: Vec<String> = feed["events"][0].as_object().unwrap().keys().cloned().collect();
    got.sort();
    assert_eq!(got, fields("WireEvent"));
    app.stop().await;
}
