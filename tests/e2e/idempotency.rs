//! One idempotency key, one email.

use std::time::Duration;

use mailroom_tests::{TestApp, recipient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_returns_the_original_send_and_sends_nothing_new() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("replay");
    let body = TestApp::send_body(&mailbox, &to, "Once");
    let (status, first) = app.send("order-42", &body).await;
    assert_eq!(status, 201);
    let id = first["id"].as_str().unwrap();
    app.wait_for_send(id, Duration::from_secs(30), |s| s["state"] == "sent").await;

    let resp = app.post("/v1/sends").header("Idempotency-Key", "order-42").json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["idempotent-replayed"], "true");
    let replay: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(replay["id"], first["id"]);
    assert_eq!(replay["message_id"], first["message_id"]);
    assert_eq!(replay["state"], "sent");
    assert_eq!(replay["replayed"], true);

    assert_eq!(app.count("SELECT count(*) FROM sends").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM apalis.jobs").await, 1, "the replay queued no job");
    assert_eq!(app.delivered(&to).await.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_with_another_payload_is_a_conflict_that_changes_nothing() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("conflict");
    let (status, first) = app.send("k-1", &TestApp::send_body(&mailbox, &to, "First")).await;
    assert_eq!(status, 201);
    let (status, body) = app.send("k-1", &TestApp::send_body(&mailbox, &to, "Second")).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "idempotency_conflict");
    assert!(body["error"]["message"].as_str().unwrap().contains(first["id"].as_str().unwrap()));
    assert_eq!(app.count("SELECT count(*) FROM sends").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_simultaneous_posts_with_one_key_make_one_send_and_forty_nine_replays() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("race");
    let body = TestApp::send_body(&mailbox, &to, "Race");
    let posts = (0..50).map(|_| app.post("/v1/sends").header("Idempotency-Key", "race-1").json(&body).send());
    let statuses: Vec<u16> = futures_join(posts).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 49, "{statuses:?}");
    let counts = app.wait_for_terminal(1, Duration::from_secs(30)).await;
    assert_eq!(counts, vec![("sent".to_owned(), 1)]);
    assert_eq!(app.delivered(&to).await.len(), 1);
    app.stop().await;
}

async fn futures_join<F>(futs: impl Iterator<Item = F>) -> Vec<u16>
where
    F: Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = vec![];
    for h in handles {
        out.push(h.await.unwrap().unwrap().status().as_u16());
    }
    out
}
