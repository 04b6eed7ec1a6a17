//! A sweep of every route with inputs shaped like its own: each route's valid request (path,
//! query, body, headers) mutated one field at a time (wrong types, NUL characters, lone
//! surrogates, huge and negative numbers, very long strings, deep nesting, odd ids), called
//! with a key holding every scope (the admin token where the route is the operator's). No
//! answer may be a 5xx, and every 4xx must be our error shape.

use mailroom_api::routes::{Access, route_table};
use mailroom_tests::{Options, TestApp, peers};
use serde_json::{Value, json};

/// Values that replace one field at a time.
fn mutations() -> Vec<Value> {
    let mut deep = json!("bottom");
    for _ in 0..200 {
        deep = json!([deep]);
    }
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1e308),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(""),
        json!("\u{0}"),
        json!("a\u{0}b"),
        json!("x".repeat(10_000)),
        json!("é".repeat(3_000)),
        json!("\u{202e} ../../etc/passwd %00 ' OR 1=1 --"),
        json!([]),
        json!(["\u{0}"]),
        json!({}),
        json!({ "\u{0}": 1 }),
        deep,
    ]
}

/// Raw bodies no serializer writes.
fn raw_bodies() -> Vec<&'static str> {
    vec!["", "{", "[]", "null", "\"\\ud800\"", "{\"a\":\"\\udc00\"}", "{\"a\":1e999999}", "\u{0}", "{}{}"]
}

/// Ids and path segments.
fn ids() -> Vec<String> {
    vec![
        "x".into(),
        "snd_".into(),
        "snd_00000000000000000000000000000000".into(),
        "ws_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz".into(),
        "%00".into(),
        "%F0%28%8C%BC".into(),
        "..%2F..%2F".into(),
        "a".repeat(5_000),
    ]
}

/// Query strings for the routes that read them.
fn queries() -> Vec<&'static str> {
    vec![
        "",
        "?after=%00&limit=-1",
        "?limit=999999999999999999999",
        "?limit=abc",
        "?state=%00",
        "?state=nope&after=snd_x",
        "?from=2026-13-45&to=0000-00-00",
        "?from=1900-01-01&to=2999-12-31",
        "?after=evt_00000000000000000000000000000000&limit=0",
        "?code=%00&state=%00",
        "?state=queued&after=",
    ]
}

/// A valid body for each route that takes one.
fn seed(method: &str, path: &str, mailbox: &str) -> Option<Value> {
    let p = &peers().info;
    Some(match (method, path) {
        ("POST", "/v1/mailboxes") => TestApp::mailbox_request(&p.sender_password),
        ("PUT", "/v1/mailboxes/{id}/pacing") => json!({ "daily_cap": 100, "min_gap_secs": 1.0, "jitter_secs": 0.0,
            "window": { "start": "09:00", "end": "17:00", "time_zone": "Europe/Paris" }, "max_sessions": 2 }),
        ("POST", "/v1/mailboxes/oauth/{provider}/start") => json!({ "transport": "api", "from_name": "A" }),
        ("POST", "/v1/sends") => {
            let mut b = TestApp::send_body(mailbox, "fuzz@example.test", "Fuzz");
            b["sequence"] = json!("fuzz/lead-1");
            b["stop_on"] = json!(["reply", "auto_reply"]);
            b["metadata"] = json!({ "campaign": "fuzz" });
            b
        }
        ("POST", "/v1/sends/cancel") => json!({ "filter": { "sequence": "fuzz/lead-1", "mailbox_id": mailbox,
            "metadata": { "campaign": "fuzz" }, "to": "fuzz@example.test" }, "reason": "fuzz" }),
        ("POST", "/v1/sends/{id}/cancel") => json!({ "reason": "fuzz" }),
        ("POST", "/v1/sends/batch") => {
            let mut item = TestApp::send_body(mailbox, "fuzz@example.test", "Fuzz");
            item["idempotency_key"] = json!("fuzz-batch");
            json!({ "items": [item] })
        }
        ("POST", "/v1/sends/{id}/resolve") => json!({ "action": "cancel", "note": "fuzz" }),
        ("POST", "/v1/webhooks") => json!({ "url": "https://1.1.1.1/hook", "event_types": ["send.sent"] }),
        ("PATCH", "/v1/webhooks/{id}") => json!({ "url": "https://1.1.1.1/hook2", "event_types": ["send.sent"],
            "enabled": true, "legacy_signature": false }),
        ("POST", "/v1/workspaces") => json!({ "name": "fuzz" }),
        ("DELETE", "/v1/workspaces/{id}") => json!({ "confirm": "x" }),
        ("POST", "/v1/workspaces/{id}/grants") => json!({ "scopes": ["sends:read"] }),
        ("POST", "/v1/keys") => json!({ "name": "fuzz", "role": "analyst", "expires_at": "2030-01-01T00:00:00Z" }),
        ("POST", _) | ("PUT", _) | ("DELETE", _) => json!({}),
        _ => return None,
    })
}

/// Every variant of one body: each top-level field (and each field one level down) replaced.
fn variants(seed: &Value) -> Vec<Value> {
    let mut out = vec![];
    let Some(obj) = seed.as_object() else { return out };
    for (k, v) in obj {
        for m in mutations() {
            let mut b = seed.clone();
            b[k] = m.clone();
            out.push(b);
            if let Some(inner) = v.as_object() {
                for k2 in inner.keys() {
                    let mut b = seed.clone();
                    b[k][k2] = m.clone();
                    out.push(b);
                }
            }
        }
        let mut without = seed.clone();
        without.as_object_mut().unwrap().remove(k);
        out.push(without);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // The sweep's figures, shown with --nocapture.
async fn no_route_answers_5xx_to_inputs_shaped_like_its_own() {
    let app = TestApp::spawn_with(Options { in_process_worker: false, ..Options::default() }).await;
    let mailbox = app.connect_mailbox().await;
    let (mut calls, mut by_status) = (0usize, std::collections::BTreeMap::<u16, usize>::new());
    let mut failures = vec![];
    for spec in route_table() {
        let token = if spec.access == Access::Admin { &app.admin_token } else { &app.token };
        let method = reqwest::Method::from_bytes(spec.method.as_bytes()).unwrap();
        let mut paths: Vec<String> = ids()
            .iter()
            .map(|id| spec.path.replace("{id}", id).replace("{grant}", id).replace("{event_id}", id))
            .collect();
        // The real mailbox too, except to disconnect it (the sends below need it connected).
        if spec.method != "DELETE" {
            paths.push(spec.path.replace("{id}", &mailbox).replace("{grant}", "grt_x").replace("{event_id}", "evt_x"));
        }
        let mut requests: Vec<(String, Option<String>, Option<String>)> = vec![];
        for p in &paths {
            let p = p.replace("{provider}", "google");
            for q in queries() {
                requests.push((format!("{p}{q}"), None, None));
            }
        }
        let base_path = spec
            .path
            .replace("{id}", &mailbox)
            .replace("{grant}", "grt_x")
            .replace("{provider}", "google")
            .replace("{event_id}", "evt_x");
        if let Some(seed) = seed(spec.method, spec.path, &mailbox) {
            for body in variants(&seed) {
                requests.push((base_path.clone(), Some(body.to_string()), None));
            }
            for raw in raw_bodies() {
                requests.push((base_path.clone(), Some(raw.to_owned()), None));
            }
            for key in ["\u{7f}".to_owned(), "k".repeat(300), "é".to_owned(), " ".to_owned()] {
                requests.push((base_path.clone(), Some(seed.to_string()), Some(key)));
            }
        }
        for (path, body, odd_key) in requests {
            let mut req = app.http.request(method.clone(), format!("{}{path}", app.base)).bearer_auth(token);
            req = req.header("Idempotency-Key", odd_key.unwrap_or_else(|| format!("fuzz-{calls}")));
            if let Some(b) = body {
                req = req.header("Content-Type", "application/json").body(b);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                // A header reqwest itself refuses to send is no request at all.
                Err(e) if e.is_builder() => continue,
                Err(e) => panic!("{} {path}: {e}", spec.method),
            };
            calls += 1;
            let status = resp.status().as_u16();
            *by_status.entry(status).or_default() += 1;
            let text = resp.text().await.unwrap_or_default();
            let shaped = serde_json::from_str::<Value>(&text)
                .is_ok_and(|v| v["error"]["code"].is_string() && v["error"]["message"].is_string());
            if status >= 500 || ((400..500).contains(&status) && !shaped) {
                let shown: String = text.chars().take(200).collect();
                failures.push(format!(
                    "{} {} -> {status} {shown}",
                    spec.method,
                    path.chars().take(120).collect::<String>()
                ));
            }
        }
    }
    println!("fuzz sweep: {calls} requests over {} routes; statuses {by_status:?}", route_table().len());
    assert!(failures.is_empty(), "{} bad answers of {calls}:\n{}", failures.len(), failures.join("\n"));
    assert!(calls > 2_000, "the sweep made {calls} requests");
    app.stop().await;
}
