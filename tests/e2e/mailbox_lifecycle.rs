//! A mailbox's life as its owner runs it: listed and filtered a page at a time, paused (its
//! sends wait, spending no attempt, nothing goes out) and resumed (each delivered once).

use std::{collections::HashSet, time::Duration};

use mailroom_tests::{TestApp, recipient};
use serde_json::{Value, json};

async fn post(app: &TestApp, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = app.post(path);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_mailbox_sends_nothing_until_resumed_then_each_send_once() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let (status, body) =
        post(&app, &format!("/v1/mailboxes/{mailbox}/pause"), Some(json!({"reason": "warm-up"}))).await;
    assert_eq!(
        (status, body["status"].as_str(), body["status_reason"].as_str()),
        (200, Some("paused"), Some("warm-up"))
    );
    // A repeat changes nothing (no second event, no second audit row).
    assert_eq!(post(&app, &format!("/v1/mailboxes/{mailbox}/pause"), None).await.0, 200);

    let to = recipient("paused");
    for i in 0..3 {
        let resp = app
            .post("/v1/sends")
            .header("Idempotency-Key", format!("p-{i}"))
            .json(&TestApp::send_body(&mailbox, &to, &format!("Paused {i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let parked = "SELECT count(*) FROM sends WHERE state = 'retry_wait' AND next_attempt_at IS NULL AND attempts = 0";
    app.wait_until(parked, 3, Duration::from_secs(30)).await;
    assert!(app.delivered(&to).await.is_empty(), "nothing goes out while paused");

    let (status, body) = post(&app, &format!("/v1/mailboxes/{mailbox}/resume"), None).await;
    assert_eq!((status, body["status"].as_str(), body["resumed_sends"].as_u64()), (200, Some("active"), Some(3)));
    app.wait_until("SELECT count(*) FROM sends WHERE state = 'sent' AND attempts = 1", 3, Duration::from_secs(60))
        .await;
    let delivered = app.delivered(&to).await;
    assert_eq!((delivered.len(), delivered.iter().collect::<HashSet<_>>().len()), (3, 3));
    assert_eq!(post(&app, &format!("/v1/mailboxes/{mailbox}/resume"), None).await.1["resumed_sends"], 0);

    for (kind, n) in [("mailbox.paused", 1), ("mailbox.resumed", 1)] {
        assert_eq!(app.count(&format!("SELECT count(*) FROM events WHERE kind = '{kind}'")).await, n, "{kind}");
    }
    for (action, n) in [("mailbox.pause", 1), ("mailbox.resume", 1)] {
        assert_eq!(
            app.count(&format!("SELECT count(*) FROM audit_log WHERE action = '{action}'")).await,
            n,
            "{action}"
        );
    }

    // A mailbox that needs re-authentication is neither paused nor resumed by hand.
    let uuid = mailbox.parse::<mailroom_domain::MailboxId>().unwrap().as_uuid();
    let reauth = format!(
        "WITH u AS (UPDATE mailboxes SET status = 'needs_reauth' WHERE id = '{uuid}' RETURNING 1) SELECT count(*) FROM u"
    );
    assert_eq!(app.count(&reauth).await, 1);
    for verb in ["pause", "resume"] {
        let (status, body) = post(&app, &format!("/v1/mailboxes/{mailbox}/{verb}"), None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("mailbox_not_active")), "{verb}: {body}");
    }
    assert_eq!(post(&app, "/v1/mailboxes/mbx_00000000000000000000000000000000/pause", None).await.0, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailboxes_are_listed_by_status_and_provider_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    let ids = [app.connect_mailbox().await, app.connect_mailbox().await, app.connect_mailbox().await];
    assert_eq!(post(&app, &format!("/v1/mailboxes/{}/pause", ids[1]), None).await.0, 200);
    let list = |query: &str| {
        let req = app.get(&format!("/v1/mailboxes{query}"));
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let names = |body: &Value| -> Vec<String> {
        body["mailboxes"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
    };
    let (_, all) = list("").await;
    assert_eq!(names(&all), ids.to_vec());
    assert_eq!(all["next"], Value::Null);
    assert!(all["mailboxes"][0].get("password").is_none() && !all.to_string().contains("password\":"));
    let (_, paused) = list("?status=paused").await;
    assert_eq!(names(&paused), vec![ids[1].clone()]);
    assert_eq!(names(&list("?provider=google").await.1), Vec::<String>::new());
    assert_eq!(names(&list("?provider=password&status=active").await.1), vec![ids[0].clone(), ids[2].clone()]);
    let (_, first) = list("?limit=2").await;
    assert_eq!(names(&first), ids[..2].to_vec());
    let (_, second) = list(&format!("?limit=2&after={}", first["next"].as_str().unwrap())).await;
    assert_eq!((names(&second), &second["next"]), (vec![ids[2].clone()], &Value::Null));
    for (query, code) in [
        ("?status=asleep", "invalid_query"),
        ("?provider=yahoo", "invalid_query"),
        ("?after=snd_1", "invalid_cursor"),
        ("?limit=0", "invalid_limit"),
    ] {
        let (status, body) = list(query).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{query}");
    }
    // Another workspace's key lists only its own (none).
    let other = app.other_workspace_token().await;
    let resp = app.http.get(format!("{}/v1/mailboxes", app.base)).bearer_auth(other).send().await.unwrap();
    assert_eq!(names(&resp.json::<Value>().await.unwrap()), Vec::<String>::new());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_is_renamed_and_repaced_in_place_and_bad_changes_change_nothing() {
    let app = TestApp::spawn().await;
    let mailbox = app.connect_mailbox().await;
    let patch = |body: Value| {
        let req = app.http.patch(format!("{}/v1/mailboxes/{mailbox}", app.base)).bearer_auth(&app.token).json(&body);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let pacing = json!({ "daily_cap": 50, "min_gap_secs": 30, "jitter_secs": 10, "max_sessions": 1 });
    let (status, body) = patch(json!({ "from_name": "Sales Team", "pacing": pacing })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["id"].as_str(), body["from_name"].as_str()), (Some(mailbox.as_str()), Some("Sales Team")));
    assert_eq!((body["pacing"]["daily_cap"].as_i64(), body["pacing"]["min_gap_secs"].as_f64()), (Some(50), Some(30.0)));
    let (_, body) = patch(json!({ "from_name": null })).await;
    assert_eq!(body["from_name"], Value::Null);
    assert_eq!(body["pacing"]["daily_cap"], 50, "what is left out stays");

    // Refused, and nothing changed: a header in the name, an unknown mode, a Sent folder
    // without IMAP, a server that does not resolve, a field that is not changed here.
    for (body, code) in [
        (json!({ "from_name": "A\r\nBcc: x@y.z" }), 422),
        (json!({ "sent_copy": "sometimes" }), 422),
        (json!({ "sent_copy": "append" }), 422),
        (json!({ "smtp": { "host": "elsewhere.example" } }), 422),
        (json!({ "imap": { "host": "127.0.0.1" } }), 422),
        (json!({ "smtp": { "password": "x" } }), 400),
    ] {
        let (status, answer) = patch(body.clone()).await;
        assert_eq!(status, code, "{body}: {answer}");
    }
    let (_, shown) = patch(json!({})).await;
    assert_eq!((shown["from_name"].clone(), shown["sent_copy"].as_str()), (Value::Null, Some("none")));
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'mailbox.update'").await, 2);
    let resp = app.http.patch(format!("{}/v1/mailboxes/mbx_00000000000000000000000000000000", app.base));
    assert_eq!(resp.bearer_auth(&app.token).json(&json!({})).send().await.unwrap().status(), 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_the_workspace_has_is_a_409_naming_its_mailbox_until_disconnected() {
    let app = TestApp::spawn().await;
    let first = app.connect_mailbox().await;
    let sender = mailroom_tests::peers().info.sender.clone();
    let mut again = TestApp::mailbox_request(&mailroom_tests::peers().info.sender_password);
    again["from_address"] = serde_json::json!(sender.to_uppercase());
    let resp = app.post("/v1/mailboxes").json(&again).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "mailbox_exists", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(&first), "{body}");
    assert_eq!(app.count("SELECT count(*) FROM mailboxes").await, 1, "nothing was created");
    // Another address of the same account is another mailbox.
    let tagged = TestApp::mailbox_request(&mailroom_tests::peers().info.sender_password);
    assert_eq!(app.post("/v1/mailboxes").json(&tagged).send().await.unwrap().status(), 201);
    // Once disconnected, the address may be connected again.
    let gone = app.http.delete(format!("{}/v1/mailboxes/{first}", app.base)).bearer_auth(&app.token);
    assert_eq!(gone.send().await.unwrap().status(), 200);
    assert_eq!(app.post("/v1/mailboxes").json(&again).send().await.unwrap().status(), 201);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_change_in_place_only_after_a_login_with_the_stored_password() {
    let app = TestApp::spawn().await;
    let id = app.connect_mailbox_with_imap("provider").await;
    let patch =
        |body: Value| app.http.patch(format!("{}/v1/mailboxes/{id}", app.base)).bearer_auth(&app.token).json(&body);
    let before: Value = app.get(&format!("/v1/mailboxes/{id}")).send().await.unwrap().json().await.unwrap();

    // A port nothing listens on: the login check fails and nothing changes.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let resp = patch(json!({ "smtp": { "port": closed }, "from_name": "Renamed" })).send().await.unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "smtp_unreachable");
    // Another IMAP login: refused by the server with the stored password.
    let resp = patch(json!({ "imap": { "username": "nobody@example.test" } })).send().await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "imap_auth_failed");
    let resp = patch(json!({ "smtp": { "tls": "none" } })).send().await.unwrap();
    assert_eq!(resp.status(), 422, "SMTP needs TLS");
    let unchanged: Value = app.get(&format!("/v1/mailboxes/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(unchanged, before, "nothing changed");

    // Settings that log in are stored in place, audited with what changed.
    let smtp_port = before["smtp"]["port"].clone();
    let resp = patch(json!({ "smtp": { "port": smtp_port }, "imap": { "sent_folder": "Sent" } })).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let after: Value = resp.json().await.unwrap();
    assert_eq!((after["id"].as_str(), &after["imap"]["sent_folder"]), (Some(id.as_str()), &json!("Sent")));
    let audited = "SELECT count(*) FROM audit_log WHERE action = 'mailbox.update' AND target LIKE '%smtp, imap'";
    assert_eq!(app.count(audited).await, 1);
    app.stop().await;
}
