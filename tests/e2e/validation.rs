//! Bad input gets a clear 4xx in the `{"error": {"code", "message"}}` shape and changes nothing.

use mailroom_tests::{TestApp, recipient};
use serde_json::{Value, json};

async fn expect(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_send_requests_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let good = TestApp::send_body(&mailbox, &recipient("valid"), "Hi");
    let send = |key: Option<&str>, body: Value| {
        let mut r = app.post("/v1/sends").json(&body);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        r.send()
    };

    let malformed = app
        .post("/v1/sends")
        .header("Idempotency-Key", "a")
        .header("Content-Type", "application/json")
        .body("{\"to\": [")
        .send();
    expect(malformed.await.unwrap(), 400, "invalid_json").await;
    expect(send(None, good.clone()).await.unwrap(), 400, "missing_idempotency_key").await;
    expect(send(Some(&"k".repeat(256)), good.clone()).await.unwrap(), 400, "invalid_idempotency_key").await;

    let mut injected = good.clone();
    injected["to"] = json!(["victim@example.test\r\nBcc: everyone@example.test"]);
    let body = expect(send(Some("b"), injected).await.unwrap(), 422, "invalid_field").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("`to[0]`"));
    let mut bad_subject = good.clone();
    bad_subject["subject"] = json!("Hello\r\nBcc: everyone@example.test");
    expect(send(Some("c"), bad_subject).await.unwrap(), 422, "invalid_field").await;
    let mut bad_header = good.clone();
    bad_header["headers"] = json!({ "Message-ID": "<forged@example.test>" });
    expect(send(Some("d"), bad_header).await.unwrap(), 422, "invalid_field").await;
    let mut too_big = good.clone();
    too_big["text"] = json!("x".repeat(64 * 1024 + 1));
    expect(send(Some("e"), too_big).await.unwrap(), 413, "too_large").await;
    let mut unknown = good.clone();
    unknown["mailbox_id"] = json!(mailroom_domain::MailboxId::new().to_string());
    expect(send(Some("f"), unknown).await.unwrap(), 404, "not_found").await;
    let mut no_body = good.clone();
    no_body.as_object_mut().unwrap().remove("text");
    expect(send(Some("g"), no_body).await.unwrap(), 422, "invalid_field").await;

    let items: Vec<Value> = (0..1_001).map(|i| json!({ "idempotency_key": format!("i{i}") })).collect();
    let resp = app.post("/v1/sends/batch").json(&json!({ "items": items })).send().await.unwrap();
    expect(resp, 422, "invalid_batch_size").await;

    assert_eq!(app.count("SELECT count(*) FROM sends").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM apalis.jobs").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_per_item_created_replayed_or_rejected() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("batch");
    let item = |key: &str, subject: &str| {
        let mut b = TestApp::send_body(&mailbox, &to, subject);
        b["idempotency_key"] = json!(key);
        b
    };
    let mut bad = item("bad", "x");
    bad["to"] = json!(["not an address"]);
    let first = json!({ "items": [item("a", "A"), item("b", "B")] });
    assert_eq!(app.post("/v1/sends/batch").json(&first).send().await.unwrap().status(), 200);
    let second = json!({ "items": [item("a", "A"), item("b", "changed"), bad, item("c", "C")] });
    let body: Value = app.post("/v1/sends/batch").json(&second).send().await.unwrap().json().await.unwrap();
    let statuses: Vec<&str> =
        body["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["replayed", "rejected", "rejected", "created"]);
    assert_eq!(body["results"][1]["error"]["code"], "idempotency_conflict");
    assert_eq!(body["results"][2]["error"]["code"], "invalid_field");
    assert_eq!(body["results"][3]["index"], 3);
    assert_eq!(app.count("SELECT count(*) FROM sends").await, 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_with_a_malformed_field_is_refused_naming_it() {
    let app = TestApp::spawn().await;
    let mut req = TestApp::mailbox_request("secret");
    req["smtp"]["tls"] = json!("none");
    let body = expect(app.post("/v1/mailboxes").json(&req).send().await.unwrap(), 422, "invalid_field").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("`smtp.tls`"));
    let mut req = TestApp::mailbox_request("secret");
    req["from_address"] = json!("sender@example.test\nBcc: x@y.z");
    expect(app.post("/v1/mailboxes").json(&req).send().await.unwrap(), 422, "invalid_field").await;
    assert_eq!(app.count("SELECT count(*) FROM mailboxes").await, 0);
    app.stop().await;
}

/// Text PostgreSQL cannot store (a NUL, a lone UTF-16 surrogate, an over-long metadata key)
/// is a 400 naming the field, on every JSON route; in a batch only that item is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstorable_text_is_a_400_naming_the_field_and_one_bad_item_spoils_no_batch() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let good = TestApp::send_body(&mailbox, &recipient("nul"), "Hi");
    let raw = |key: &str, body: String| {
        app.post("/v1/sends")
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    for (i, (field, value)) in
        [("text", json!("a\0b")), ("html", json!("<p>\0</p>")), ("metadata", json!({ "k": "v\0" }))].iter().enumerate()
    {
        let mut b = good.clone();
        b[*field] = value.clone();
        let body = expect(raw(&format!("n{i}"), b.to_string()).await.unwrap(), 400, "unstorable_text").await;
        let message = body["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.starts_with(&format!("`{field}")), "{message}");
    }
    let mut nul_key = good.clone();
    nul_key["metadata"] = json!({ "a\0": 1 });
    expect(raw("k", nul_key.to_string()).await.unwrap(), 400, "unstorable_text").await;
    let mut long_key = good.clone();
    long_key["metadata"] = json!({ "k".repeat(300): 1 });
    expect(raw("l", long_key.to_string()).await.unwrap(), 400, "metadata_key_too_long").await;
    let surrogate = good.to_string().replacen("\"Hi\"", "\"\\ud800\"", 1);
    let body = expect(raw("s", surrogate).await.unwrap(), 400, "invalid_json").await;
    assert!(body["error"]["message"].as_str().unwrap().starts_with("`subject`"), "{body}");
    let mut mailbox_req = TestApp::mailbox_request("secret");
    mailbox_req["from_name"] = json!("client\0");
    expect(app.post("/v1/mailboxes").json(&mailbox_req).send().await.unwrap(), 400, "unstorable_text").await;
    assert_eq!(app.count("SELECT count(*) FROM sends").await, 0);

    let item = |key: &str| {
        let mut b = good.clone();
        b["idempotency_key"] = json!(key);
        b
    };
    let mut nul = item("b");
    nul["text"] = json!("\0");
    let lone = item("c").to_string().replacen("\"Hi\"", "\"\\udc00 x\"", 1);
    let batch = format!("{{\"items\": [{}, {nul}, {lone}, {}]}}", item("a"), item("d"));
    let resp = app.post("/v1/sends/batch").header("Content-Type", "application/json").body(batch).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    let statuses: Vec<&str> = results.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["created", "rejected", "rejected", "created"], "{body}");
    assert_eq!(results[1]["error"]["code"], "unstorable_text");
    assert!(results[1]["error"]["message"].as_str().unwrap().starts_with("`items[1].text`"), "{body}");
    assert!(results[2]["error"]["message"].as_str().unwrap().starts_with("`items[2].subject`"), "{body}");
    assert_eq!(app.count("SELECT count(*) FROM sends").await, 2);
    app.stop().await;
}
