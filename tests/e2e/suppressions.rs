//! The suppression list over the API: read by reason a page at a time, added to by hand and by
//! CSV import (all or nothing), cleaned, and the refusal at enqueue naming the real reason.

use mailroom_tests::{TestApp, recipient};
use serde_json::{Value, json};

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_added_imported_listed_and_removed_and_enqueue_names_the_reason() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let (a, b) = (recipient("sup-a"), recipient("sup-b"));
    // Case folds to one entry; a repeat adds nothing.
    let body = json!({ "addresses": [a.to_uppercase(), a, b], "reason": "unsubscribe", "detail": "asked by phone" });
    let (status, added) = call(app.post("/v1/suppressions").json(&body)).await;
    assert_eq!((status, added["added"].as_u64(), added["already"].as_u64()), (200, Some(2), Some(0)), "{added}");
    let (_, again) = call(app.post("/v1/suppressions").json(&json!({ "addresses": [b] }))).await;
    assert_eq!((again["added"].as_u64(), again["already"].as_u64()), (Some(0), Some(1)));

    // One bad address refuses the whole request; nothing is added.
    let bad = json!({ "addresses": ["ok@example.test", "not an address"] });
    let (status, body) = call(app.post("/v1/suppressions").json(&bad)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_field")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("addresses[1]"), "{body}");
    let (status, _) =
        call(app.post("/v1/suppressions").json(&json!({ "addresses": ["x@y.test"], "reason": "erased" }))).await;
    assert_eq!(status, 422, "erasure is not a reason a person gives");

    // A CSV import with a header and a reason column.
    let csv = format!("address,reason\nimp-1@example.test,complaint\nimp-2@example.test\n\n{}\n", "IMP-1@example.test");
    let (status, imported) = call(app.post("/v1/suppressions/import").body(csv)).await;
    assert_eq!((status, imported["added"].as_u64()), (200, Some(2)), "{imported}");
    let (status, body) = call(app.post("/v1/suppressions/import").body("fine@example.test\nbroken line\n")).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("line 2"), "{body}");
    assert_eq!(app.count("SELECT count(*) FROM suppressions").await, 4);

    // Listing: by reason, a page at a time.
    let (_, complaints) = call(app.get("/v1/suppressions?reason=complaint")).await;
    let listed = complaints["suppressions"].as_array().unwrap();
    assert_eq!((listed.len(), listed[0]["address"].as_str()), (1, Some("imp-1@example.test")));
    let (_, first) = call(app.get("/v1/suppressions?limit=3")).await;
    let (_, rest) = call(app.get(&format!("/v1/suppressions?limit=3&after={}", first["next"].as_str().unwrap()))).await;
    assert_eq!(
        (first["suppressions"].as_array().unwrap().len(), rest["suppressions"].as_array().unwrap().len()),
        (3, 1)
    );
    assert_eq!(rest["next"], Value::Null);
    assert_eq!(call(app.get("/v1/suppressions?reason=bounced")).await.0, 400);

    // Enqueue names the reason and since when.
    let (status, body) =
        call(app.post("/v1/sends").header("Idempotency-Key", "s-1").json(&TestApp::send_body(&mailbox, &b, "Hi")))
            .await;
    let message = body["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("recipient_suppressed")), "{body}");
    assert!(message.contains(&b.to_lowercase()) && message.contains("unsubscribe, since 20"), "{message}");

    // Removed: it may be mailed again; removing it twice is a 404.
    let del = |addr: &str| app.http.delete(format!("{}/v1/suppressions/{addr}", app.base)).bearer_auth(&app.token);
    assert_eq!(call(del(&b.to_uppercase())).await.0, 200);
    assert_eq!(call(del(&b)).await.0, 404);
    let (status, _) =
        call(app.post("/v1/sends").header("Idempotency-Key", "s-2").json(&TestApp::send_body(&mailbox, &b, "Hi")))
            .await;
    assert_eq!(status, 201);
    for action in ["suppressions.add", "suppressions.import", "suppressions.remove"] {
        let sql = format!("SELECT count(*) FROM audit_log WHERE action = '{action}'");
        assert!(app.count(&sql).await >= 1, "{action} audited");
    }
    // The audit trail names no address.
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM audit_log WHERE target LIKE '%{}%'", b.to_lowercase())).await,
        0
    );
    // Another workspace sees none of it.
    let other = app.other_workspace_token().await;
    let (_, theirs) = call(app.http.get(format!("{}/v1/suppressions", app.base)).bearer_auth(other)).await;
    assert_eq!(theirs["suppressions"], json!([]));
    app.stop().await;
}
