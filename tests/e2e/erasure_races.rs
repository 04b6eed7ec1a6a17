//! An erasure takes the address as a whole (neighbouring addresses stay) and is ordered
//! against whatever writes about the contact at the same moment: an enqueue either lands
//! before it (and is erased) or is refused after it, and a reply recorded while the erasure
//! runs is either written before the send is erased (and then rewritten) or after (without
//! the contact's data).

use std::time::Duration;

use mailroom_store::admin;
use mailroom_tests::{TestApp, recipient};
use serde_json::{Value, json};

fn later() -> String {
    (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339()
}

async fn erase(app: &TestApp, address: &str) -> (u16, Value) {
    let resp = app.post("/v1/contacts/erase").json(&json!({ "address": address })).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// Sends still holding `needle` anywhere in their payload or metadata.
async fn naming(app: &TestApp, needle: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM sends WHERE strpos(lower(payload::text || coalesce(metadata::text, '')), '{needle}') > 0"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_takes_the_address_as_a_whole_in_any_case_and_inside_a_url() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let lead = recipient("jo");
    let (local, domain) = lead.split_once('@').unwrap();
    let waiting = |to: &str| {
        let mut b = TestApp::send_body(&mailbox, to, "Hello");
        b["send_at"] = json!(later());
        b
    };
    let mut by_body = waiting(&recipient("other"));
    by_body["text"] = json!(format!("Write to {}.", lead.to_uppercase()));
    let mut by_link = waiting(&recipient("other"));
    by_link["metadata"] = json!({ "unsubscribe": format!("https://u.test/?e={local}%40{domain}"), "campaign": "c" });
    let mut by_line = waiting(&recipient("other"));
    by_line["text"] = json!(format!("Attendees:\n{lead}\nmailto%3A{local}%40{domain}"));
    let neighbours =
        [format!("bo{lead}"), format!("{local}@{domain}.uk"), format!("x.{lead}"), format!("{local}@sub.{domain}")];
    for (key, body) in [("lead", waiting(&lead)), ("body", by_body), ("link", by_link), ("line", by_line)] {
        let (status, sent) = app.send(key, &body).await;
        assert_eq!(status, 201, "{sent}");
    }
    // Two idempotency keys that name the lead in two ways stay two keys once rewritten.
    for key in [format!("welcome/{lead}"), format!("welcome/{}", lead.to_uppercase())] {
        assert_eq!(app.send(&key, &waiting(&lead)).await.0, 201);
    }
    for (i, n) in neighbours.iter().enumerate() {
        let (status, sent) = app.send(&format!("n{i}"), &waiting(n)).await;
        assert_eq!(status, 201, "{sent}");
    }

    let (status, done) = erase(&app, &lead).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!((done["sends"].as_u64(), done["cancelled"].as_u64()), (Some(6), Some(6)), "{done}");
    assert_eq!(app.count("SELECT count(*) FROM sends WHERE idempotency_key LIKE 'welcome/erased:%#%'").await, 2);
    assert_eq!(
        app.count("SELECT count(*) FROM sends WHERE metadata = '{\"campaign\": \"c\"}' AND erased_at IS NOT NULL")
            .await,
        1,
        "the link's key left, the rest of the metadata stayed"
    );
    for n in &neighbours {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM sends WHERE state = 'queued' AND erased_at IS NULL AND payload->'to' ? '{n}'"
            ))
            .await,
            1,
            "{n} is another address and keeps its send"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_racing_an_erasure_is_erased_or_refused_never_kept() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let lead = recipient("race");
    let token = lead.split(['-', '@']).nth(1).unwrap().to_owned();
    let body = {
        let mut b = TestApp::send_body(&mailbox, &lead, "Hello");
        b["send_at"] = json!(later());
        b
    };
    for i in 0..50 {
        assert_eq!(app.send(&format!("before-{i}"), &body).await.0, 201);
    }
    let enqueues = async {
        let mut answers = vec![];
        for i in 0..60 {
            answers.push(app.send(&format!("during-{i}"), &body).await.0);
        }
        answers
    };
    let ((status, done), answers) = tokio::join!(erase(&app, &lead), enqueues);
    assert_eq!(status, 200, "{done}");
    assert!(answers.iter().all(|s| *s == 201 || *s == 422), "{answers:?}");
    assert_eq!(*answers.last().unwrap(), 422, "an enqueue after the erasure is refused");
    assert_eq!(naming(&app, &token).await, 0, "a send recorded while the erasure ran kept the address");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_recorded_while_an_erasure_runs_keeps_nothing_of_the_contact() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let lead = recipient("held");
    let token = lead.split(['-', '@']).nth(1).unwrap().to_owned();
    let mut body = TestApp::send_body(&mailbox, &lead, "Hello");
    body["send_at"] = json!(later());
    let (_, send) = app.send("held-1", &body).await;
    let message_id = send["message_id"].as_str().unwrap().to_owned();

    // The reply worker's transaction: it has read the send (through the function it uses,
    // which locks it) and is about to record the reply with the sender's address.
    let mut worker = app.pool.acquire().await.unwrap();
    admin::execute_on(&mut worker, "BEGIN").await.unwrap();
    let found = admin::scalar_count_on(
        &mut worker,
        &format!(
            "SELECT count(*) FROM sends_answered((SELECT workspace_id FROM sends WHERE message_id = '{message_id}'),
                 ARRAY['{message_id}'])"
        ),
    )
    .await
    .unwrap();
    assert_eq!(found, 1);
    let erasing = tokio::spawn({
        let (http, base, token, lead) = (app.http.clone(), app.base.clone(), app.token.clone(), lead.clone());
        async move {
            let resp = http
                .post(format!("{base}/v1/contacts/erase"))
                .bearer_auth(token)
                .json(&json!({ "address": lead }))
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    });
    app.wait_until(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        1,
        Duration::from_secs(20),
    )
    .await;
    assert!(!erasing.is_finished(), "the erasure waits for the reply's transaction");
    admin::execute_on(
        &mut worker,
        &format!(
            "INSERT INTO events (id, workspace_id, kind, send_id, mailbox_id, data)
             SELECT gen_random_uuid(), workspace_id, 'reply.received', id, mailbox_id,
                    jsonb_build_object('from', '{lead}', 'subject', 'Re: Hello', 'excerpt', 'Write to {lead}')
             FROM sends WHERE message_id = '{message_id}'"
        ),
    )
    .await
    .unwrap();
    admin::execute_on(&mut worker, "COMMIT").await.unwrap();
    drop(worker);
    assert_eq!(tokio::time::timeout(Duration::from_secs(30), erasing).await.unwrap().unwrap(), 200);
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM events WHERE strpos(lower(data::text), '{token}') > 0")).await,
        0,
        "the reply's copy of the address was rewritten"
    );
    app.stop().await;
}
