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
