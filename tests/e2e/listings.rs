//! `GET /v1/sends` by any mix of filters, a page at a time, and the plans that keep a page
//! cheap at any ledger size: every filter reads an index in cursor order, never sorting the
//! matches.

use mailroom_domain::{MailboxId, SendState};
use mailroom_store::sends::{SendFilter, list_plan};
use mailroom_tests::{Options, TestApp, recipient};
use serde_json::{Value, json};

async fn ids(app: &TestApp, query: &str) -> (Vec<String>, Value) {
    let resp = app.get(&format!("/v1/sends{query}")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{query}");
    let body: Value = resp.json().await.unwrap();
    let ids = body["sends"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    (ids, body["next"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_are_listed_by_every_filter_a_page_at_a_time() {
    // No worker: the sends stay queued, so the states are known.
    let app = TestApp::spawn_with(Options { in_process_worker: false, ..Options::default() }).await;
    let (m1, m2) = (app.connect_mailbox().await, app.connect_mailbox().await);
    let before = chrono::Utc::now();
    let mut made = vec![];
    for i in 0..6 {
        let mailbox = if i < 4 { &m1 } else { &m2 };
        let mut body = TestApp::send_body(mailbox, &recipient("list"), &format!("L{i}"));
        body["metadata"] = json!({ "campaign": if i % 2 == 0 { "even" } else { "odd" } });
        if i < 3 {
            body["sequence"] = json!("lead-1");
        }
        let (status, send) = app.send(&format!("l-{i}"), &body).await;
        assert_eq!(status, 201, "{send}");
        made.push(send["id"].as_str().unwrap().to_owned());
    }
    let (all, next) = ids(&app, "").await;
    assert_eq!((all, next), (made.clone(), Value::Null));
    assert_eq!(ids(&app, &format!("?mailbox_id={m2}")).await.0, made[4..].to_vec());
    assert_eq!(ids(&app, "?sequence=lead-1").await.0, made[..3].to_vec());
    assert_eq!(
        ids(&app, "?metadata_key=campaign&metadata_value=odd").await.0,
        vec![made[1].clone(), made[3].clone(), made[5].clone()]
    );
    assert_eq!(
        ids(&app, &format!("?state=queued&mailbox_id={m1}&metadata_key=campaign&metadata_value=even")).await.0,
        vec![made[0].clone(), made[2].clone()]
    );
    assert_eq!(ids(&app, "?state=sent").await.0, Vec::<String>::new());
    let since = before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).replace('+', "%2B");
    assert_eq!(ids(&app, &format!("?created_from={since}")).await.0.len(), 6);
    let until = (before - chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(ids(&app, &format!("?created_to={}", until.replace('+', "%2B"))).await.0.len(), 0);
    // Pages of two, each `next` the cursor of the following.
    let (mut seen, mut after) = (vec![], String::new());
    loop {
        let (page, next) = ids(&app, &format!("?limit=2&after={after}")).await;
        seen.extend(page);
        match next.as_str() {
            Some(n) => after = n.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, made);
    for (query, code) in [
        ("?state=lost", "invalid_query"),
        ("?mailbox_id=snd_1", "invalid_query"),
        ("?metadata_key=campaign", "invalid_query"),
        ("?after=mbx_1", "invalid_cursor"),
        ("?limit=0", "invalid_limit"),
        ("?created_from=yesterday", "invalid_query"),
    ] {
        let resp = app.get(&format!("/v1/sends{query}")).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{query}: {body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_reads_an_index_in_cursor_order_at_size() {
    let app = TestApp::spawn_with(Options { in_process_worker: false, ..Options::default() }).await;
    let mailbox = app.connect_mailbox().await;
    let (status, template) = app.send("template", &TestApp::send_body(&mailbox, &recipient("plan"), "Plan")).await;
    assert_eq!(status, 201, "{template}");
    // 200,000 sends in this workspace and 100,000 in another, spread over states, mailboxes,
    // sequences and campaigns, then statistics.
    let copy = "INSERT INTO sends (id, workspace_id, mailbox_id, idempotency_key, payload_hash, payload, message_id,
                    state, metadata, sequence, finished_at)
                SELECT gen_random_uuid(), CASE WHEN g % 3 = 0 THEN gen_random_uuid() ELSE t.workspace_id END,
                       t.mailbox_id, 'bulk-' || g, t.payload_hash, t.payload, '<bulk-' || g || '@example.test>',
                       (ARRAY['queued', 'sent', 'failed', 'cancelled'])[1 + g % 4],
                       jsonb_build_object('campaign', 'c' || g % 500), 'lead-' || g % 50000,
                       CASE WHEN g % 4 = 1 THEN now() - make_interval(secs => g) END
                FROM sends t, generate_series(1, 300000) g WHERE t.idempotency_key = 'template'";
    mailroom_store::admin::execute(&app.pool, "ALTER TABLE sends DISABLE TRIGGER USER").await.unwrap();
    mailroom_store::admin::execute(
        &app.pool,
        "ALTER TABLE sends DROP CONSTRAINT IF EXISTS sends_workspace_id_mailbox_id_fkey",
    )
    .await
    .unwrap();
    mailroom_store::admin::execute(&app.pool, copy).await.unwrap();
    mailroom_store::admin::execute(&app.pool, "ANALYZE sends").await.unwrap();
    let ws = app.workspace;
    let mbx: MailboxId = mailbox.parse().unwrap();
    let now = chrono::Utc::now();
    let filters = [
        SendFilter::default(),
        SendFilter { state: Some(SendState::Queued), ..Default::default() },
        SendFilter { mailbox: Some(mbx), ..Default::default() },
        SendFilter { sequence: Some("lead-77".into()), ..Default::default() },
        SendFilter { metadata: Some(json!({ "campaign": "c7" })), ..Default::default() },
        SendFilter { created_from: Some(now - chrono::Duration::hours(1)), ..Default::default() },
        SendFilter { sent_from: Some(now - chrono::Duration::hours(1)), ..Default::default() },
    ];
    let mut conn = app.pool.acquire().await.unwrap();
    for f in &filters {
        let plan = list_plan(&mut conn, ws, f, 100).await.unwrap().join("\n");
        assert!(plan.contains("Index") || plan.contains("Bitmap"), "{f:?}\n{plan}");
        assert!(!plan.contains("Seq Scan"), "{f:?} scans the table:\n{plan}");
        if f.metadata.is_none() && f.sent_from.is_none() {
            assert!(!plan.contains("Sort"), "{f:?} sorts its matches:\n{plan}");
        }
    }
    drop(conn);
    app.stop().await;
}
