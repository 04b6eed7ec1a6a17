//! The workspace export: every table of a workspace of 100,000 sends, streamed whole as JSON
//! lines (an end line with the counts) or one table as CSV, with no body and no secret; a
//! reader that stops reading holds the database query back (nothing piles up in the server),
//! and a third concurrent export is told to wait.

use std::{collections::HashSet, time::Duration};

use mailroom_tests::{Options, TestApp, peers, recipient};
use serde_json::{Value, json};

const BULK: i64 = 100_000;

/// Sends straight into the ledger, as sent (the export reads them; nothing sends them).
async fn fill(app: &TestApp) {
    let n = app
        .execute(&format!(
            "INSERT INTO sends (id, workspace_id, mailbox_id, idempotency_key, payload_hash, payload, message_id,
                 state, metadata, finished_at)
             SELECT gen_random_uuid(), m.workspace_id, m.id, 'bulk-' || g, '\\x00',
                 jsonb_build_object('to', jsonb_build_array('bulk-' || g || '@example.test'), 'subject', 'Bulk',
                     'text', 'secret body text'),
                 '<bulk-' || g || '@export.test>', 'sent', jsonb_build_object('n', g), now()
             FROM generate_series(1, {BULK}) g, (SELECT id, workspace_id FROM mailboxes LIMIT 1) m"
        ))
        .await;
    assert_eq!(n, BULK as u64);
}

async fn waiting_on_reader(app: &TestApp) -> i64 {
    app.count(
        "SELECT count(*) FROM pg_stat_activity
         WHERE wait_event = 'ClientWrite' AND query LIKE 'SELECT * FROM sends WHERE workspace_id%'",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_of_100k_sends_exports_whole_and_streamed() {
    let app = TestApp::spawn_with(Options { reply_worker: true, ..Options::default() }).await;
    let mailbox = app.connect_mailbox().await;
    let (_, real) = app.send("real-1", &TestApp::send_body(&mailbox, &recipient("export"), "Hi")).await;
    app.wait_for_send(real["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    let listed = json!({ "addresses": ["listed@example.test"], "reason": "complaint" });
    assert_eq!(app.post("/v1/suppressions").json(&listed).send().await.unwrap().status(), 200);
    fill(&app).await;
    app.wait_until("SELECT count(*) FROM events WHERE pos IS NULL", 0, Duration::from_secs(30)).await;

    for bad in ["format=xml", "format=csv", "table=sends", "format=csv&table=nope", "limit=3"] {
        let status = app.get(&format!("/v1/export?{bad}")).send().await.unwrap().status();
        assert_eq!(status, 400, "{bad}");
    }

    // A reader that stops after the first chunk: the query comes to wait on the server, which
    // has stopped reading rows because nobody reads its chunks.
    let resp = app.get("/v1/export").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let mut body = resp;
    let mut bytes = body.chunk().await.unwrap().unwrap().to_vec();
    TestApp::wait_for("the export query waits on its reader", Duration::from_secs(60), || async {
        waiting_on_reader(&app).await == 1
    })
    .await;
    // Two exports stream at once per server; a third is told to come back.
    let second = app.get("/v1/export?format=csv&table=sends").send().await.unwrap();
    assert_eq!(second.status(), 200);
    let third = app.get("/v1/export?format=csv&table=audit").send().await.unwrap();
    assert_eq!(third.status(), 503);
    assert_eq!(third.json::<Value>().await.unwrap()["error"]["code"], "exports_busy");
    drop(second);

    // Read on: every row once, then the end line with the counts.
    while let Some(chunk) = body.chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(bytes).unwrap();
    assert!(!text.contains("secret body text") && !text.contains(&peers().info.sender_password), "no body, no secret");
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |t: &str| lines.iter().filter(|l| l["type"] == t).count() as u64;
    let ids: HashSet<&str> =
        lines.iter().filter(|l| l["type"] == "send").map(|l| l["data"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len() as i64, BULK + 1, "every send once");
    let end = lines.last().unwrap();
    assert_eq!(end["type"], "end");
    for (table, kind) in [
        ("sends", "send"),
        ("events", "event"),
        ("mailboxes", "mailbox"),
        ("suppressions", "suppression"),
        ("audit", "audit"),
    ] {
        assert_eq!(end["data"]["counts"][table].as_u64(), Some(of(kind)), "{table}");
    }
    assert!(of("event") >= 1 && of("mailbox") == 1 && of("suppression") == 1 && of("audit") >= 1, "{end}");

    // One table as CSV, with its header.
    let resp = app.get("/v1/export?format=csv&table=suppressions").send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = resp.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert_eq!(rows[0], "address,created_at,detail,reason");
    assert!(rows[1].starts_with("listed@example.test,") && rows[1].ends_with(",complaint"), "{csv}");
    app.stop().await;
}
