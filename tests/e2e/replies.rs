//! Reply detection against Dovecot: messages land in the sending mailbox's INBOX (IMAP APPEND,
//! as a provider would deliver them) and the reply worker turns them into exactly the right
//! events, once each, through re-reads and a UIDVALIDITY change; the feed pages by cursor.

use std::time::{Duration, Instant};

use mailroom_devkit::imap;
use mailroom_tests::{Options, TestApp, WorkerProcess, peers, recipient};
use serde_json::{Value, json};

pub(crate) async fn deliver_to_sender(raw: String) {
    let p = &peers().info;
    imap::append(p.imap_port, &p.sender, &p.sender_password, "INBOX", raw.as_bytes()).await.unwrap();
}

pub(crate) fn reply(id: &str, headers: &str, subject: &str, body: &str) -> String {
    format!(
        "From: Lead <lead-{id}@example.org>\r\nTo: sender@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <in-{id}@example.org>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n{headers}\r\n\r\n{body}\r\n"
    )
}

fn bounce(id: &str, original: &str, rcpt: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.org\r\nTo: sender@example.test\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <dsn-{id}@mx.example.org>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
         Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: User unknown\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: sender@example.test\r\nMessage-ID: {original}\r\n\r\n--B--\r\n"
    )
}

/// All of a workspace's events, paging through the feed `page` at a time.
async fn feed(app: &TestApp, token: &str, page: usize) -> Vec<Value> {
    let (mut all, mut after) = (vec![], String::new());
    loop {
        let url = format!("{}/v1/events?after={after}&limit={page}", app.base);
        let body: Value = app.http.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        let events = body["events"].as_array().unwrap().clone();
        after = body["next"].as_str().unwrap().to_owned();
        if events.is_empty() {
            return all;
        }
        all.extend(events);
    }
}

fn kinds(events: &[Value], prefix: &str) -> Vec<String> {
    let mut k: Vec<String> =
        events.iter().filter_map(|e| e["type"].as_str()).filter(|t| t.starts_with(prefix)).map(str::to_owned).collect();
    k.sort();
    k
}

async fn wait_for_kinds(app: &TestApp, token: &str, want: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = feed(app, token, 3).await;
        let got = kinds(&events, "reply.").into_iter().chain(kinds(&events, "bounce.")).collect::<Vec<_>>();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        if got_sorted == want {
            return events;
        }
        assert!(Instant::now() < deadline, "events {got:?}, expected {want:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn sent_message_id(app: &TestApp, token: &str, mailbox: &str, key: &str, to: &str) -> String {
    let mut body = TestApp::send_body(mailbox, to, "Hello");
    body["metadata"] = json!({ "campaign": "spring", "step": 1, "key": key });
    let resp = app.http.post(format!("{}/v1/sends", app.base)).bearer_auth(token).header("Idempotency-Key", key);
    let send: Value = resp.json(&body).send().await.unwrap().json().await.unwrap();
    let id = send["id"].as_str().unwrap().to_owned();
    let url = format!("{}/v1/sends/{id}", app.base);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s: Value = app.http.get(&url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        if s["state"] == "sent" {
            return s["message_id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "not sent: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_auto_replies_and_bounces_yield_one_event_each_for_the_right_workspace() {
    let app = TestApp::spawn_with(Options { reply_worker: true, ..Options::default() }).await;
    let mailbox = app.connect_mailbox_with_imap("provider").await;
    let other_token = app.other_workspace_token().await;
    let p = &peers().info;
    let mut req = TestApp::mailbox_request(&p.sender_password);
    req["imap"] = json!({ "host": "127.0.0.1", "port": p.imap_port, "tls": "none", "username": p.sender, "password": p.sender_password });
    req["sent_copy"] = json!("provider");
    let r = app.http.post(format!("{}/v1/mailboxes", app.base)).bearer_auth(&other_token).json(&req).send().await;
    let other_mailbox = r.unwrap().json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    let tag = uuid::Uuid::new_v4().simple().to_string();
    let (a, b, c) = (recipient("lead-a"), recipient("lead-b"), recipient("lead-c"));
    let first = sent_message_id(&app, &app.token, &mailbox, "r-1", &a).await;
    let second = sent_message_id(&app, &app.token, &mailbox, "r-2", &b).await;
    let third = sent_message_id(&app, &app.token, &mailbox, "r-3", &c).await;
    let foreign = sent_message_id(&app, &other_token, &other_mailbox, "o-1", &a).await;

    deliver_to_sender(reply(
        &format!("{tag}-1"),
        &format!("In-Reply-To: {first}"),
        "Re: Hello",
        "Yes, let's talk.\r\n\r\n> Hello",
    ))
    .await;
    deliver_to_sender(reply(
        &format!("{tag}-2"),
        &format!("References: <old@x> {second}"),
        "Re: Hello",
        "Tell me more",
    ))
    .await;
    let ooo = format!("In-Reply-To: {first}\r\nAuto-Submitted: auto-replied");
    deliver_to_sender(reply(&format!("{tag}-3"), &ooo, "Out of office", "Back Monday")).await;
    deliver_to_sender(reply(&format!("{tag}-4"), "", "Lunch?", "Unrelated")).await;
    deliver_to_sender(reply(&format!("{tag}-5"), &format!("In-Reply-To: {foreign}"), "Re: Hello", "Other tenant"))
        .await;
    deliver_to_sender(bounce(&tag, &third, &c)).await;

    let want = ["reply.received", "reply.received", "reply.auto", "bounce.hard"];
    let events = wait_for_kinds(&app, &app.token, &want).await;
    let human = events.iter().find(|e| e["type"] == "reply.received" && e["data"]["message_id"] == first).unwrap();
    assert_eq!(human["data"]["excerpt"], "Yes, let's talk.");
    assert_eq!(human["metadata"], json!({ "campaign": "spring", "step": 1, "key": "r-1" }));
    assert!(human["send_id"].as_str().unwrap().starts_with("snd_") && human["mailbox_id"] == mailbox.as_str());
    let hard = events.iter().find(|e| e["type"] == "bounce.hard").unwrap();
    assert_eq!(
        (hard["data"]["status"].as_str(), hard["data"]["message_id"].as_str()),
        (Some("5.1.1"), Some(third.as_str()))
    );
    let (status, body) = app.send("r-4", &TestApp::send_body(&mailbox, &c, "Again")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("recipient_suppressed")));
    // The other workspace sees its own reply only.
    wait_for_kinds(&app, &other_token, &["reply.received"]).await;

    // A UIDVALIDITY change re-reads the folder by date: nothing twice, and a new reply is seen.
    app.execute("UPDATE mailbox_cursors SET uidvalidity = uidvalidity + 1, next_check_at = now()").await;
    deliver_to_sender(reply(
        &format!("{tag}-6"),
        &format!("In-Reply-To: {third}"),
        "Re: Hello",
        "Sorry, wrong address?",
    ))
    .await;
    let want = ["reply.received", "reply.received", "reply.received", "reply.auto", "bounce.hard"];
    wait_for_kinds(&app, &app.token, &want).await;
    let rescanned =
        "SELECT count(*) FROM mailbox_cursors WHERE checked_at > now() - interval '1 minute' AND last_error IS NULL";
    assert!(app.count(rescanned).await >= 1);
    // Paging one at a time gives the same events as one big page, in the same order.
    let (small, big) = (feed(&app, &app.token, 1).await, feed(&app, &app.token, 1000).await);
    assert_eq!(small, big);
    let ids: std::collections::HashSet<_> = big.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), big.len(), "event ids are unique");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_postfix_bounce_names_the_send_and_suppresses_the_address() {
    assert!(peers().info.postfix_port.is_some(), "the Postfix peer needs root and `scripts/setup-peers`");
    let app = TestApp::spawn_with(Options { reply_worker: true, ..Options::default() }).await;
    let mailbox = app.connect_mailbox_with_imap("provider").await;
    let to = recipient("bounceme");
    let message_id = sent_message_id(&app, &app.token, &mailbox, "pf-1", &to).await;
    let events = wait_for_kinds(&app, &app.token, &["bounce.hard"]).await;
    let bounce = events.iter().find(|e| e["type"] == "bounce.hard").unwrap();
    assert_eq!(bounce["data"]["message_id"].as_str(), Some(message_id.as_str()), "{bounce}");
    assert_eq!(bounce["data"]["status"], "5.1.1", "{bounce}");
    assert_eq!(bounce["data"]["recipient"].as_str(), Some(to.to_lowercase().as_str()));
    assert!(bounce["data"]["from"].as_str().unwrap().starts_with("mailer-daemon@"), "{bounce}");
    let (status, body) = app.send("pf-2", &TestApp::send_body(&mailbox, &to, "Again")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("recipient_suppressed")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_idle_a_reply_is_read_long_before_the_next_scheduled_check() {
    // Checks an hour apart: only IDLE can bring the reply within the test's minute.
    let opts = Options { reply_worker: true, reply_every: Duration::from_secs(3_600), ..Options::default() };
    let app = TestApp::spawn_with(opts).await;
    let mailbox = app.connect_mailbox_with_imap("provider").await;
    let sent = sent_message_id(&app, &app.token, &mailbox, "idle-1", &recipient("idle")).await;
    // The first check reads INBOX to its end and schedules the next an hour away.
    let checked = "SELECT count(*) FROM mailbox_cursors WHERE checked_at IS NOT NULL
                   AND next_check_at > now() + interval '30 minutes' AND last_error IS NULL";
    app.wait_until(checked, 1, Duration::from_secs(30)).await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    deliver_to_sender(reply(&format!("{tag}-idle"), &format!("In-Reply-To: {sent}"), "Re: Hello", "Now!")).await;
    wait_for_kinds(&app, &app.token, &["reply.received"]).await;
    // The reply came through a check the watcher made due, which set the next an hour away again.
    app.wait_until(checked, 1, Duration::from_secs(30)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reply_yields_one_event_across_runs_and_a_killed_reply_worker() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox_with_imap("provider").await;
    let sent = sent_message_id(&app, &app.token, &mailbox, "restart-1", &recipient("restart")).await;
    let answer = format!("In-Reply-To: {sent}");
    let tag = uuid::Uuid::new_v4().simple().to_string();
    // A short lease, so the killed worker's claim on the mailbox lapses quickly.
    let mut config = app.reply_config.clone();
    config.lease = Duration::from_secs(3);

    let first = WorkerProcess::start_reply(&app, config.clone());
    deliver_to_sender(reply(&format!("{tag}-r1"), &answer, "Re: Hello", "First run")).await;
    wait_for_kinds(&app, &app.token, &["reply.received"]).await;
    let ooo = format!("{answer}\r\nX-Autoreply: yes");
    deliver_to_sender(reply(&format!("{tag}-r2"), &ooo, "Automatic reply", "Away")).await;
    wait_for_kinds(&app, &app.token, &["reply.auto", "reply.received"]).await;
    first.kill();
    let cursor = "SELECT uidvalidity * 1000000 + last_uid FROM mailbox_cursors";
    let before = app.count(cursor).await;

    // Mail that arrives while no reply worker runs is read by the next one, and nothing twice.
    deliver_to_sender(reply(&format!("{tag}-r3"), &answer, "Re: Hello", "While you were away")).await;
    let second = WorkerProcess::start_reply(&app, config);
    wait_for_kinds(&app, &app.token, &["reply.auto", "reply.received", "reply.received"]).await;
    // Another run after the last event changes nothing.
    let checks = "SELECT count(*) FROM mailbox_cursors WHERE last_error IS NULL
                  AND checked_at > (SELECT max(created_at) FROM events) + interval '1 millisecond'";
    app.wait_until(checks, 1, Duration::from_secs(30)).await;
    second.kill();
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind LIKE 'reply.%'").await, 3);
    let after = app.count(cursor).await;
    assert!(after > before && after / 1_000_000 == before / 1_000_000, "the cursor went on: {before} -> {after}");
    app.stop().await;
}
