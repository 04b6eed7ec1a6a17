//! Mailboxes are protected: pacing shared by all workers, bounded queue cost, fairness.
#![allow(clippy::print_stdout)] // The figures are printed for the record (run with --nocapture).

use std::time::{Duration, Instant};

use mailroom_tests::{TestApp, recipient};
use serde_json::{Value, json};

async fn paced_mailbox(app: &TestApp, pacing: Value) -> String {
    let mailbox = app.connect_mailbox().await;
    let resp = app
        .http
        .put(format!("{}/v1/mailboxes/{mailbox}/pacing", app.base))
        .bearer_auth(&app.token)
        .json(&pacing)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    mailbox
}

async fn enqueue(app: &TestApp, mailbox: &str, to: &str, prefix: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let mut b = TestApp::send_body(mailbox, to, &format!("{prefix} {i}"));
                b["idempotency_key"] = json!(format!("{prefix}-{i}"));
                b
            })
            .collect();
        let resp = app.post("/v1/sends/batch").json(&json!({ "items": items })).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_of_a_paced_mailbox_start_at_least_the_minimum_gap_apart() {
    let app = TestApp::spawn().await;
    let pacing = json!({ "daily_cap": null, "min_gap_secs": 1, "jitter_secs": 0.2, "max_sessions": 4 });
    let mailbox = paced_mailbox(&app, pacing).await;
    let to = recipient("gap");
    enqueue(&app, &mailbox, &to, "gap", 4).await;
    app.wait_for_terminal(4, Duration::from_secs(30)).await;
    let gaps = app
        .count(
            "SELECT count(*) FROM (SELECT slot_at - lag(slot_at) OVER (ORDER BY slot_at) AS gap FROM sends) g
             WHERE gap < interval '1 second'",
        )
        .await;
    assert_eq!(gaps, 0, "two slots closer than the minimum gap");
    assert_eq!(app.delivered(&to).await.len(), 4);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_cap_holds_over_a_rolling_24_hours() {
    let app = TestApp::spawn().await;
    let mailbox = paced_mailbox(&app, json!({ "daily_cap": 3, "min_gap_secs": 0, "jitter_secs": 0 })).await;
    let to = recipient("cap");
    enqueue(&app, &mailbox, &to, "cap", 5).await;
    app.wait_for_terminal(3, Duration::from_secs(30)).await;
    app.wait_until(
        "SELECT count(*) FROM sends WHERE slot_at > now() + interval '23 hours'",
        2,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(app.count("SELECT count(*) FROM sends WHERE state = 'sent'").await, 3);
    assert_eq!(app.delivered(&to).await.len(), 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_outside_the_window_waits_for_its_opening_in_the_mailboxs_time_zone() {
    let app = TestApp::spawn().await;
    // A one-hour window that opens two hours from now, Tokyo time.
    let tokyo = chrono::Utc::now().with_timezone(&chrono_tz_offset());
    let start = (tokyo + chrono::Duration::hours(2)).format("%H:00").to_string();
    let end = (tokyo + chrono::Duration::hours(3)).format("%H:00").to_string();
    let window = json!({ "start": start, "end": end, "time_zone": "Asia/Tokyo" });
    let mailbox =
        paced_mailbox(&app, json!({ "daily_cap": null, "min_gap_secs": 0, "jitter_secs": 0, "window": window })).await;
    let (_, send) = app.send("win-1", &TestApp::send_body(&mailbox, &recipient("window"), "Later")).await;
    let sql = "SELECT count(*) FROM sends WHERE slot_at > now() + interval '1 hour' AND state = 'queued'";
    app.wait_until(sql, 1, Duration::from_secs(30)).await;
    let slot = app.count("SELECT extract(hour FROM slot_at AT TIME ZONE 'Asia/Tokyo')::bigint FROM sends").await;
    assert_eq!(slot, i64::from(start[..2].parse::<u8>().unwrap()), "slot opens at the window's local start");
    let shown: Value =
        app.get(&format!("/v1/sends/{}", send["id"].as_str().unwrap())).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["state"], "queued");
    app.stop().await;
}

fn chrono_tz_offset() -> chrono::FixedOffset {
    // Tokyo has no daylight-saving time: UTC+9 all year.
    chrono::FixedOffset::east_opt(9 * 3_600).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sends_behind_a_slow_pace_cost_a_bounded_number_of_queue_writes() {
    let app = TestApp::spawn().await;
    let mailbox = paced_mailbox(&app, json!({ "daily_cap": null, "min_gap_secs": 600, "jitter_secs": 0 })).await;
    let n = 10_000;
    enqueue(&app, &mailbox, &recipient("slow"), "slow", n).await;
    app.wait_until("SELECT count(*) FROM sends WHERE slot_at IS NULL", 0, Duration::from_secs(300)).await;
    let jobs = app.count("SELECT count(*) FROM apalis.jobs").await;
    let per_send = jobs as f64 / n as f64;
    println!("queue rows for {n} paced sends: {jobs} ({per_send:.2} per send)");
    assert!(jobs <= 2 * n as i64, "{jobs} queue rows for {n} sends");
    assert_eq!(app.count("SELECT count(*) FROM sends WHERE state = 'sent'").await, 1, "only the first slot is due");
    let last = app.count("SELECT extract(epoch FROM max(slot_at) - min(slot_at))::bigint FROM sends").await;
    assert_eq!(last, 600 * (n as i64 - 1), "slots are exactly one gap apart");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_workspace_does_not_delay_a_quiet_ones_sends() {
    let app = TestApp::spawn().await;
    let busy_mailbox = app.connect_mailbox().await;
    enqueue(&app, &busy_mailbox, &recipient("busy"), "busy", 50_000).await;

    let quiet = app.other_workspace_token().await;
    let req = TestApp::mailbox_request(&mailroom_tests::peers().info.sender_password);
    let resp = app.http.post(format!("{}/v1/mailboxes", app.base)).bearer_auth(&quiet).json(&req).send().await.unwrap();
    let quiet_mailbox = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let to = recipient("quiet");
    let items: Vec<Value> = (0..10)
        .map(|i| {
            let mut b = TestApp::send_body(&quiet_mailbox, &to, "Quiet");
            b["idempotency_key"] = json!(format!("quiet-{i}"));
            b
        })
        .collect();
    let started = Instant::now();
    let resp = app
        .http
        .post(format!("{}/v1/sends/batch", app.base))
        .bearer_auth(&quiet)
        .json(&json!({ "items": items }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let quiet_sent = format!(
        "SELECT count(*) FROM sends s JOIN mailboxes m ON m.id = s.mailbox_id WHERE m.id = '{}' AND s.state = 'sent'",
        quiet_mailbox.trim_start_matches("mbx_")
    );
    app.wait_until(&quiet_sent, 10, Duration::from_secs(60)).await;
    let took = started.elapsed();
    let busy_waiting = app.count("SELECT count(*) FROM sends WHERE state IN ('queued', 'retry_wait')").await;
    println!("quiet workspace's 10 sends took {took:?}; busy workspace still had {busy_waiting} waiting");
    assert!(busy_waiting > 40_000, "the quiet sends went out only after most of the busy backlog");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_send_keeps_the_queue_priority_it_was_enqueued_with() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let to = recipient("softfail");
    let (_, send) = app.send("prio-1", &TestApp::send_body(&mailbox, &to, "Retried")).await;
    let done = app.wait_for_send(send["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    assert_eq!(done["attempts"], 2, "{done}");
    // A quiet workspace's first send goes in at the top priority; its retry must too, or a
    // busy tenant's backlog would hold it back.
    assert!(app.count("SELECT count(*) FROM apalis.jobs").await >= 2);
    assert_eq!(app.count("SELECT count(*) FROM apalis.jobs WHERE priority <> 4").await, 0);
    app.stop().await;
}
