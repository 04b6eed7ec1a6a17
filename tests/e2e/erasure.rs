//! A data subject's erasure: the address leaves every send, event and list of the workspace
//! (a `pg_dump` of the whole database finds it nowhere), its waiting sends are cancelled, only
//! its keyed hash stays on the suppression list so it is never mailed again, a late reply
//! about an erased send is recorded without the contact's data, and the ledger still refuses
//! to send anything twice. Another contact's data is untouched.

use std::time::Duration;

use mailroom_tests::{Options, TestApp, recipient};
use serde_json::{Value, json};

use crate::replies::deliver_to_sender;

fn reply_from(from: &str, id: &str, in_reply_to: &str) -> String {
    format!(
        "From: Lead <{from}>\r\nTo: sender@example.test\r\nSubject: Re: Hello\r\nMessage-ID: <in-{id}@example.org>\r\n\
         Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nIn-Reply-To: {in_reply_to}\r\n\r\nSure, write to me at {from}.\r\n"
    )
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// The whole database as `pg_dump` writes it, in lower case.
fn dump(app: &TestApp) -> String {
    let out = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", "-d", &app.database_url()])
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_contact_leaves_no_trace_but_its_keyed_hash() {
    let app = TestApp::spawn_with(Options { reply_worker: true, ..Options::default() }).await;
    let mailbox = app.connect_mailbox_with_imap("provider").await;
    let (lead, other) = (recipient("erase"), recipient("keep"));
    let token = lead.split(['-', '@']).nth(1).unwrap().to_owned();
    let inbound = || uuid::Uuid::new_v4().simple().to_string();

    // The lead: a first step sent (and replied to), a follow-up waiting; the scheduler put the
    // address in its metadata, its sequence id and its idempotency keys too.
    let mut first = TestApp::send_body(&mailbox, &lead, "Hello");
    first["metadata"] = json!({ "lead": lead, "campaign": "c-1" });
    first["sequence"] = json!(format!("lead:{lead}"));
    let (status, s1) = app.send(&format!("{lead}:1"), &first).await;
    assert_eq!(status, 201, "{s1}");
    let mut follow = TestApp::send_body(&mailbox, &lead.to_uppercase(), "Follow-up");
    follow["send_at"] = json!((chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339());
    let (status, s2) = app.send("lead-2", &follow).await;
    assert_eq!(status, 201, "{s2}");
    let (_, s3) = app.send("other-1", &TestApp::send_body(&mailbox, &other, "Hello")).await;
    let sent = app.wait_for_send(s1["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    app.wait_for_send(s3["id"].as_str().unwrap(), Duration::from_secs(30), |s| s["state"] == "sent").await;
    let message_id = sent["message_id"].as_str().unwrap().to_owned();
    deliver_to_sender(reply_from(&lead, &inbound(), &message_id)).await;
    app.wait_until("SELECT count(*) FROM events WHERE kind = 'reply.received'", 1, Duration::from_secs(60)).await;
    let suppress = json!({ "addresses": [lead], "reason": "manual" });
    assert_eq!(call(app.post("/v1/suppressions").json(&suppress)).await.0, 200);
    assert!(dump(&app).contains(&token), "the lead is in the database before");

    // Erased (in any case); a bad address is refused with nothing changed.
    assert_eq!(call(app.post("/v1/contacts/erase").json(&json!({ "address": "nope" }))).await.0, 422);
    let (status, erased) = call(app.post("/v1/contacts/erase").json(&json!({ "address": lead.to_uppercase() }))).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!((erased["sends"].as_u64(), erased["cancelled"].as_u64()), (Some(2), Some(1)), "{erased}");
    let s2_now: Value =
        app.get(&format!("/v1/sends/{}", s2["id"].as_str().unwrap())).send().await.unwrap().json().await.unwrap();
    assert_eq!((s2_now["state"].as_str(), s2_now["failure_reason"].as_str()), (Some("cancelled"), Some("erased")));
    let s1_now: Value =
        app.get(&format!("/v1/sends/{}", s1["id"].as_str().unwrap())).send().await.unwrap().json().await.unwrap();
    assert_eq!((s1_now["state"].as_str(), &s1_now["metadata"]), (Some("sent"), &json!({ "campaign": "c-1" })));
    assert!(s1_now["erased_at"].is_string() && s1_now["message_id"] == sent["message_id"], "{s1_now}");

    // A late reply about the erased send is recorded without the contact's data.
    deliver_to_sender(reply_from(&lead, &inbound(), &message_id)).await;
    app.wait_until("SELECT count(*) FROM events WHERE kind = 'reply.received'", 2, Duration::from_secs(60)).await;

    // Nothing in the whole database names the lead; the other contact is untouched.
    let all = dump(&app);
    assert!(!all.contains(&token), "the erased address is still in the database");
    assert!(all.contains(&other.split('@').next().unwrap().to_lowercase()), "another contact's data stays");
    assert_eq!(
        app.count("SELECT count(*) FROM suppressions WHERE kind = 'erased' AND address LIKE 'erased:%'").await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'contacts.erase'").await, 1);

    // Never mailed again, in any case; another key cannot repeat the sent one either.
    let (status, refused) = app.send("lead-3", &TestApp::send_body(&mailbox, &lead.to_uppercase(), "Again")).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("recipient_suppressed")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("erased"), "{refused}");
    assert_eq!(
        call(
            app.post("/v1/sends")
                .header("Idempotency-Key", "other-2")
                .json(&TestApp::send_body(&mailbox, &other, "Hi"))
        )
        .await
        .0,
        201
    );
    let (status, thread) = {
        let mut b = TestApp::send_body(&mailbox, &other, "");
        b.as_object_mut().unwrap().remove("subject");
        b["in_reply_to"] = s1["id"].clone();
        app.send("other-thread", &b).await
    };
    assert_eq!((status, thread["error"]["code"].as_str()), (422, Some("thread_parent_erased")), "{thread}");

    // Receivers learn which sends to erase; a repeat finds nothing left.
    let feed: Value = app.get("/v1/events?limit=1000").send().await.unwrap().json().await.unwrap();
    let notice = feed["events"].as_array().unwrap().iter().find(|e| e["type"] == "contact.erased").cloned();
    let ids: Vec<&str> = notice
        .as_ref()
        .map(|n| n["data"]["sends"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect())
        .unwrap_or_default();
    assert!(ids.contains(&s1["id"].as_str().unwrap()) && ids.contains(&s2["id"].as_str().unwrap()), "{notice:?}");
    let (_, again) = call(app.post("/v1/contacts/erase").json(&json!({ "address": lead }))).await;
    assert_eq!((again["sends"].as_u64(), again["events"].as_u64()), (Some(0), Some(0)), "{again}");
    app.stop().await;
}
