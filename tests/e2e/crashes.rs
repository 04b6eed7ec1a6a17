//! Workers killed mid-attempt (their runtime dropped at whatever await they had reached, as
//! SIGKILL would): before the body was handed over the send is retried, and failed once it has
//! killed its workers three times; after, it is reconciled, never resent. And the per-mailbox
//! session cap holds across worker processes.

use std::time::{Duration, Instant};

use mailroom_tests::{Options, TestApp, WorkerProcess, peers, recipient};
use serde_json::json;

fn crashy() -> Options {
    Options {
        lease: Duration::from_secs(2),
        heartbeat: Duration::from_millis(300),
        in_process_worker: false,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_kills_its_worker_before_the_body_fails_after_three_crashes() {
    let app = TestApp::spawn_with(crashy()).await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("stall");
    let (_, send) = app.send("poison-1", &TestApp::send_body(&mailbox, &to, "Kills its worker")).await;
    let id = send["id"].as_str().unwrap().to_owned();
    for attempt in 1..=3 {
        let worker = WorkerProcess::start(&app);
        let sql = format!("SELECT count(*) FROM sends WHERE state = 'sending' AND attempts = {attempt}");
        app.wait_until(&sql, 1, Duration::from_secs(30)).await;
        worker.kill();
    }
    let _survivor = WorkerProcess::start(&app);
    let done = app.wait_for_send(&id, Duration::from_secs(30), |s| s["state"] == "failed").await;
    assert_eq!(done["attempts"], 3, "{done}");
    let reason = done["failure_reason"].as_str().unwrap();
    assert!(reason.contains("died repeatedly before handing the message over"), "{reason}");
    assert_eq!(app.count("SELECT crashes::bigint FROM sends").await, 3);
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'send.failed'").await, 1);
    assert!(app.delivered(&to).await.is_empty(), "nothing can have been delivered");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_handing_over_the_body_is_reconciled_not_resent() {
    let app = TestApp::spawn_with(crashy()).await;
    let mailbox = app.connect_mailbox_with_imap("provider").await;
    let to = recipient("stallbody");
    let (_, send) = app.send("handed-1", &TestApp::send_body(&mailbox, &to, "Handed over")).await;
    let worker = WorkerProcess::start(&app);
    app.wait_until("SELECT count(*) FROM sends WHERE body_at IS NOT NULL", 1, Duration::from_secs(30)).await;
    // The peer delivers before it stalls: wait for the copy, so the kill comes after delivery.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.delivered(&to).await.is_empty() {
        assert!(Instant::now() < deadline, "the peer never delivered the message");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.kill();
    let _survivor = WorkerProcess::start(&app);
    let id = send["id"].as_str().unwrap();
    let done = app.wait_for_send(id, Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert_eq!(done["attempts"], 1, "never resent: {done}");
    assert!(done["last_response"].as_str().unwrap().contains("found in the Sent folder"), "{done}");
    assert_eq!(app.delivered(&to).await.len(), 1, "delivered exactly once");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cap_of_a_mailbox_holds_across_worker_processes() {
    let app = TestApp::spawn().await;
    let mut req = TestApp::mailbox_request(&peers().info.sender_password);
    req["pacing"]["max_sessions"] = json!(2);
    let resp = app.post("/v1/mailboxes").json(&req).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let mailbox = resp.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let _others = [WorkerProcess::start(&app), WorkerProcess::start(&app)];
    let tag = recipient("slow").split('@').next().unwrap().to_owned();
    for i in 0..24 {
        let to = format!("{tag}-{i}@example.test");
        let (status, _) = app.send(&format!("cap-{i}"), &TestApp::send_body(&mailbox, &to, "Capped")).await;
        assert_eq!(status, 201);
    }
    let counts = app.wait_for_terminal(24, Duration::from_secs(120)).await;
    assert_eq!(counts, vec![("sent".to_owned(), 24)]);
    let stats = peers().command("stats").unwrap();
    let most = stats["inflight_max"][&tag].as_i64().unwrap();
    assert!(most <= 2, "{most} transactions of one mailbox were in flight at once, over its cap of 2");
    assert_eq!(most, 2, "three worker processes with 24 slow sends should fill both places");
    app.stop().await;
}
