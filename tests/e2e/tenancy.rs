//! Workspaces are walls: another workspace's key sees and uses nothing.

use mailroom_tests::{TestApp, recipient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workspaces_key_cannot_read_or_use_the_mailbox_or_its_sends() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let (_, send) = app.send("mine-1", &TestApp::send_body(&mailbox, &recipient("tenancy"), "Mine")).await;
    let send_id = send["id"].as_str().unwrap();
    let other = app.other_workspace_token().await;

    let get = |path: String| app.http.get(format!("{}{path}", app.base)).bearer_auth(&other).send();
    assert_eq!(get(format!("/v1/mailboxes/{mailbox}")).await.unwrap().status(), 404);
    assert_eq!(get(format!("/v1/sends/{send_id}")).await.unwrap().status(), 404);
    let resp = app
        .http
        .post(format!("{}/v1/sends", app.base))
        .bearer_auth(&other)
        .header("Idempotency-Key", "theirs-1")
        .json(&TestApp::send_body(&mailbox, &recipient("tenancy"), "Theirs"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(app.count("SELECT count(*) FROM sends").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_forged_api_key_is_refused() {
    let app = TestApp::spawn().await;
    let url = format!("{}/v1/sends/snd_00000000000000000000000000000000", app.base);
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 401);
    let forged = format!("{}0", &app.token[..app.token.len() - 1]);
    let forged = if forged == app.token { format!("{}1", &app.token[..app.token.len() - 1]) } else { forged };
    assert_eq!(app.http.get(&url).bearer_auth(forged).send().await.unwrap().status(), 401);
    assert_eq!(app.http.get(&url).bearer_auth(&app.token).send().await.unwrap().status(), 404);
    app.stop().await;
}

/// Deleting another workspace's webhook by its id answers 404 and touches none of its
/// deliveries (the pending ones are dropped only with one's own endpoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workspaces_key_cannot_drop_a_webhooks_pending_deliveries() {
    let app = TestApp::spawn_with(mailroom_tests::Options { in_process_worker: false, ..Default::default() }).await;
    let hook: serde_json::Value = app
        .post("/v1/webhooks")
        .json(&serde_json::json!({ "url": "https://1.1.1.1/hook" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = hook["id"].as_str().unwrap().to_owned();
    let uuid = id.parse::<mailroom_domain::WebhookId>().unwrap().as_uuid();
    let pending = format!(
        "INSERT INTO webhook_deliveries (webhook_id, event_pos, workspace_id)
         SELECT id, 1, workspace_id FROM webhooks WHERE id = '{uuid}'"
    );
    assert_eq!(app.execute(&pending).await, 1);
    let other = app.other_workspace_token().await;
    let resp = app.http.delete(format!("{}/v1/webhooks/{id}", app.base)).bearer_auth(&other).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(app.count("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'").await, 1);
    let resp = app.http.delete(format!("{}/v1/webhooks/{id}", app.base)).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(app.count("SELECT count(*) FROM webhook_deliveries").await, 0);
    app.stop().await;
}
