//! Reconnect keeps the mailbox: a password changed at the provider parks the mailbox on
//! `needs_reauth` with its sends waiting; `PUT /v1/mailboxes/{id}/credentials` with the new
//! password (checked by a real login) brings the same mailbox back and each waiting send is
//! delivered once.

use std::{collections::HashSet, time::Duration};

use mailroom_tests::{TestApp, peers, recipient};
use serde_json::{Value, json};

async fn put_password(app: &TestApp, mailbox: &str, password: &str) -> (u16, Value) {
    let body = json!({ "smtp": { "password": password } });
    let resp = app.http.put(format!("{}/v1/mailboxes/{mailbox}/credentials", app.base)).bearer_auth(&app.token);
    let resp = resp.json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_is_reconnected_in_place_and_the_waiting_sends_go_once() {
    let app = TestApp::spawn().await;
    let old = format!("canary-old-{}", uuid::Uuid::new_v4().simple());
    let resp = app.post("/v1/mailboxes").json(&TestApp::mailbox_request(&old)).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let mailbox = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    // The password changes at the provider: the old one stops working.
    peers().command(&format!("refuse {old}")).unwrap();
    let to = recipient("reconnect");
    for i in 0..2 {
        let body = TestApp::send_body(&mailbox, &to, &format!("Waiting {i}"));
        let resp = app.post("/v1/sends").header("Idempotency-Key", format!("r-{i}")).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 201);
    }
    app.wait_until("SELECT count(*) FROM mailboxes WHERE status = 'needs_reauth'", 1, Duration::from_secs(30)).await;
    let parked = "SELECT count(*) FROM sends WHERE state = 'retry_wait' AND next_attempt_at IS NULL";
    app.wait_until(parked, 2, Duration::from_secs(30)).await;

    // A wrong password is refused by the server and changes nothing.
    let (status, body) = put_password(&app, &mailbox, "not-the-password").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("smtp_auth_failed")), "{body}");
    assert_eq!(app.count("SELECT count(*) FROM mailboxes WHERE status = 'needs_reauth'").await, 1);
    let (status, body) = put_password(&app, "mbx_00000000000000000000000000000000", "x").await;
    assert_eq!(status, 404, "{body}");

    let new = format!("canary-new-{}", uuid::Uuid::new_v4().simple());
    let (status, body) = put_password(&app, &mailbox, &new).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["id"].as_str(), body["status"].as_str()), (Some(mailbox.as_str()), Some("active")));
    assert_eq!(body["resumed_sends"], 2);
    assert!(!body.to_string().contains(&new), "the password is never shown");
    app.wait_until("SELECT count(*) FROM sends WHERE state = 'sent'", 2, Duration::from_secs(60)).await;
    let delivered = app.delivered(&to).await;
    assert_eq!((delivered.len(), delivered.iter().collect::<HashSet<_>>().len()), (2, 2));
    assert_eq!(app.count("SELECT count(*) FROM mailboxes").await, 1, "the same mailbox, no new one");
    assert_eq!(app.count("SELECT count(*) FROM events WHERE kind = 'mailbox.reconnected'").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'mailbox.reconnect'").await, 1);

    // A disconnected mailbox's credentials are gone for good: connect it again instead.
    let resp = app.http.delete(format!("{}/v1/mailboxes/{mailbox}", app.base)).bearer_auth(&app.token);
    assert_eq!(resp.send().await.unwrap().status(), 200);
    let (status, body) = put_password(&app, &mailbox, &new).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("mailbox_disconnected")), "{body}");
    app.stop().await;
}
