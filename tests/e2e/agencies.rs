//! Agencies and their clients over the API, end to end: the operator creates an agency with
//! the admin token; the agency's Owner key creates client sub-workspaces and keys, grants
//! itself access to one client and takes it back; keys are revoked; another agency sees
//! nothing; the whole scenario reads back from the audit trail.

use mailroom_tests::{Options, TestApp};
use serde_json::{Value, json};

struct Client<'a> {
    app: &'a TestApp,
}

impl Client<'_> {
    async fn call(&self, method: &str, path: &str, token: &str, ws: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.app.http.request(method, format!("{}{path}", self.app.base)).bearer_auth(token);
        if let Some(ws) = ws {
            req = req.header("Mailroom-Workspace", ws);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

async fn agency(c: &Client<'_>, name: &str) -> (String, String) {
    let (status, body) =
        c.call("POST", "/v1/workspaces", &c.app.admin_token, None, Some(json!({ "name": name }))).await;
    assert_eq!(status, 201, "{body}");
    let token = body["owner_key"]["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mr_") && token.split('_').count() == 4, "a key carries its checksum: {token}");
    (body["workspace"]["id"].as_str().unwrap().to_owned(), token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_runs_its_clients_through_grants_and_the_trail_records_every_step() {
    let app = TestApp::spawn_with(Options { in_process_worker: false, ..Options::default() }).await;
    let c = Client { app: &app };
    let (acme, owner) = agency(&c, "Acme Agency").await;
    let (_, rival) = agency(&c, "Rival Agency").await;

    // Two clients, an Analyst key and an Operator key.
    let mut clients = vec![];
    for name in ["Client One", "Client Two"] {
        let (status, body) = c.call("POST", "/v1/workspaces", &owner, None, Some(json!({ "name": name }))).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["workspace"]["parent_id"], acme.as_str());
        assert!(body["owner_key"]["token"].is_string(), "the client's first key, to hand over: {body}");
        clients.push(body["workspace"]["id"].as_str().unwrap().to_owned());
    }
    let (one, two) = (clients[0].clone(), clients[1].clone());
    let mut tokens = vec![];
    for role in ["analyst", "operator"] {
        let (status, body) =
            c.call("POST", "/v1/keys", &owner, None, Some(json!({ "name": role, "role": role }))).await;
        assert_eq!(status, 201, "{body}");
        tokens.push((body["id"].as_str().unwrap().to_owned(), body["token"].as_str().unwrap().to_owned()));
    }
    let (analyst_id, analyst) = tokens[0].clone();
    let operator = tokens[1].1.clone();

    // No grant yet: the client is out of reach, exactly like a workspace that does not exist.
    let (status, nowhere) = c.call("GET", "/v1/sends?state=queued", &owner, Some(&one), None).await;
    assert_eq!(status, 404);
    let (_, missing) =
        c.call("GET", "/v1/sends?state=queued", &owner, Some("ws_0123456789abcdef0123456789abcdef"), None).await;
    assert_eq!(nowhere, missing, "byte-identical to a missing workspace");

    // The agency grants itself reads in client one; its Owner acts there, within the grant.
    let grant = json!({ "scopes": ["sends:read", "mailboxes:read", "audit:read", "keys:write", "keys:read"] });
    let (status, g) = c.call("POST", &format!("/v1/workspaces/{one}/grants"), &owner, None, Some(grant)).await;
    assert_eq!(status, 201, "{g}");
    assert!(g["created_by"].as_str().unwrap().contains("the agency, for a client it created"), "{g}");
    let (status, _) = c.call("GET", "/v1/sends?state=queued", &owner, Some(&one), None).await;
    assert_eq!(status, 200);
    let (status, body) =
        c.call("POST", "/v1/webhooks", &owner, Some(&one), Some(json!({ "url": "https://x.test" }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("missing_scope")), "{body}");
    // A client key made through the grant is no wider than the grant.
    let wide = json!({ "name": "client owner", "role": "owner" });
    let (status, body) = c.call("POST", "/v1/keys", &owner, Some(&one), Some(wide)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("scope_escalation")), "{body}");
    let (status, client_trail) = c.call("GET", "/v1/audit", &owner, Some(&one), None).await;
    assert_eq!(status, 200, "the agency reads its client's trail through the grant");
    let seen: Vec<&str> =
        client_trail["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(seen, ["api_key.create", "grant.create"], "its first Owner key, then the grant");
    let reader = json!({ "name": "client reader", "scopes": ["sends:read"] });
    let (status, body) = c.call("POST", "/v1/keys", &owner, Some(&one), Some(reader)).await;
    assert_eq!(status, 201, "{body}");
    let client_key = body["token"].as_str().unwrap().to_owned();
    // The client never sees its parent or its sibling.
    for ws in [acme.as_str(), two.as_str()] {
        let (status, body) = c.call("GET", "/v1/sends?state=queued", &client_key, Some(ws), None).await;
        assert_eq!((status, &body), (404, &nowhere));
    }
    // Another agency reaches none of it.
    let one_path = format!("/v1/workspaces/{one}");
    for (path, ws) in [("/v1/sends?state=queued", Some(one.as_str())), (one_path.as_str(), None)] {
        let (status, body) = c.call("GET", path, &rival, ws, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (_, by_id) = c.call("GET", &format!("/v1/workspaces/{one}"), &rival, None, None).await;
    let (_, no_such) = c.call("GET", "/v1/workspaces/ws_0123456789abcdef0123456789abcdef", &rival, None, None).await;
    assert_eq!(by_id, no_such, "byte-identical to a missing id");

    // Revoking the grant cuts the agency off at the next request.
    let grant_id = g["id"].as_str().unwrap();
    let (status, _) = c.call("DELETE", &format!("/v1/workspaces/{one}/grants/{grant_id}"), &owner, None, None).await;
    assert_eq!(status, 200);
    let (status, body) = c.call("GET", "/v1/sends?state=queued", &owner, Some(&one), None).await;
    assert_eq!((status, &body), (404, &nowhere));
    let (status, _) = c.call("GET", "/v1/sends?state=queued", &client_key, None, None).await;
    assert_eq!(status, 401, "a key made through the grant dies with it");

    // A revoked key is refused at its next request.
    let (status, _) = c.call("GET", "/v1/sends?state=queued", &analyst, None, None).await;
    assert_eq!(status, 200);
    let revoked =
        app.http.delete(format!("{}/v1/keys/{analyst_id}", app.base)).bearer_auth(&owner).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    let revoke_request = revoked.headers()["mailroom-request-id"].to_str().unwrap().to_owned();
    let (status, _) = c.call("GET", "/v1/sends?state=queued", &analyst, None, None).await;
    assert_eq!(status, 401);
    let (_, keys) = c.call("GET", "/v1/keys", &owner, None, None).await;
    let listed = keys["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{keys}");
    assert!(listed.iter().all(|k| k.get("token").is_none() && k.get("secret_hash").is_none()), "{keys}");
    assert!(listed.iter().any(|k| k["id"] == analyst_id.as_str() && !k["revoked_at"].is_null()), "{keys}");

    bad_input(&c, &acme, &owner, &operator, &one).await;

    // The trail, read back: each action once, with its actor and source.
    let (_, trail) = c.call("GET", "/v1/audit?limit=1000", &owner, None, None).await;
    let entries = trail["entries"].as_array().unwrap();
    let count = |action: &str| entries.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("workspace.create"), 3, "the agency and its two clients: {trail}");
    assert_eq!(count("api_key.create"), 3, "owner, analyst, operator: {trail}");
    assert_eq!(count("api_key.revoke"), 1, "{trail}");
    assert!(entries.iter().all(|e| e["source"] == "127.0.0.1" && e["actor"].is_string()), "{trail}");
    let revoke = entries.iter().find(|e| e["action"] == "api_key.revoke").unwrap();
    assert_eq!(
        (revoke["role"].as_str(), revoke["request_id"].as_str()),
        (Some("owner"), Some(revoke_request.as_str()))
    );
    // Failed authentications: recorded at most once a minute per source, however many.
    for _ in 0..20 {
        let (status, _) = c.call("GET", "/v1/sends?state=queued", &analyst, None, None).await;
        assert_eq!(status, 401);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'auth.failed'").await,
        1,
        "a flood costs one row"
    );
    let (status, _) = c.call("GET", "/v1/audit", &owner, Some(&one), None).await;
    assert_eq!(status, 404, "the client's trail needs a grant");
    let (_, client_trail) = c.call("GET", "/v1/audit", &app.admin_token, None, None).await; // the admin token reads no workspace trail
    assert_eq!(client_trail["error"]["code"], "unauthorized");
    let mut conn = app.pool.acquire().await.unwrap();
    let one_ws = one.parse().unwrap();
    let rows = mailroom_store::audit::page(&mut conn, one_ws, 0, 100).await.unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    // The first failed authentication named the client's key made through the revoked grant.
    let expected = ["api_key.create", "grant.create", "api_key.create", "grant.revoke", "auth.failed"];
    assert_eq!(actions, expected, "the client's own trail");
    drop(conn);
    app.stop().await;
}

/// Bad input answers a clear 4xx and changes nothing.
async fn bad_input(c: &Client<'_>, acme: &str, owner: &str, operator: &str, client: &str) {
    let before = c.app.count("SELECT count(*) FROM api_keys").await;
    let (own, other) = (format!("/v1/workspaces/{acme}"), format!("/v1/workspaces/{client}"));
    let cases = [
        (owner, None, "POST", "/v1/keys", json!({ "name": "x", "role": "root" }), 422, "unknown_role"),
        (owner, None, "POST", "/v1/keys", json!({ "name": "x", "scopes": ["sends:delete"] }), 422, "unknown_scope"),
        (
            owner,
            None,
            "POST",
            "/v1/keys",
            json!({ "name": "x", "role": "analyst", "scopes": ["sends:read"] }),
            422,
            "role_or_scopes",
        ),
        (
            owner,
            None,
            "POST",
            "/v1/keys",
            json!({ "name": "x", "role": "analyst", "expires_at": "2020-01-01T00:00:00Z" }),
            422,
            "expiry_in_past",
        ),
        (operator, None, "POST", "/v1/keys", json!({ "name": "x", "role": "owner" }), 403, "missing_scope"),
        (owner, None, "DELETE", own.as_str(), json!({ "confirm": acme }), 422, "deleting_own_workspace"),
        (owner, None, "DELETE", other.as_str(), json!({ "confirm": acme }), 422, "confirmation_mismatch"),
        (owner, Some(client), "POST", "/v1/workspaces", json!({ "name": "grandchild" }), 404, "not_found"),
    ];
    for (token, ws, method, path, body, status, code) in cases {
        let (got, answer) = c.call(method, path, token, ws, Some(body.clone())).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{method} {path} {body}: {answer}");
    }
    let mut typo = owner.to_owned();
    let last = typo.pop().unwrap();
    typo.push(if last == '0' { '1' } else { '0' });
    let (status, answer) = c.call("GET", "/v1/sends?state=queued", &typo, None, None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("bad_checksum")), "{answer}");
    assert_eq!(c.app.count("SELECT count(*) FROM api_keys").await, before, "nothing changed");
    assert_eq!(c.app.count("SELECT count(*) FROM workspaces WHERE deleted_at IS NOT NULL").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_nest_and_the_operator_deletes_an_agency_children_first() {
    let app = TestApp::spawn_with(Options { in_process_worker: false, ..Options::default() }).await;
    let c = Client { app: &app };
    let (acme, owner) = agency(&c, "Acme").await;
    let (_, body) = c.call("POST", "/v1/workspaces", &owner, None, Some(json!({ "name": "Client" }))).await;
    let client = body["workspace"]["id"].as_str().unwrap().to_owned();
    let grant = json!({ "scopes": ["keys:write", "workspaces:write"] });
    c.call("POST", &format!("/v1/workspaces/{client}/grants"), &owner, None, Some(grant)).await;
    let key = json!({ "name": "client", "scopes": ["keys:write", "workspaces:write"] });
    let (_, made) = c.call("POST", "/v1/keys", &owner, Some(&client), Some(key)).await;
    let client_key = made["token"].as_str().unwrap();
    let (status, body) = c.call("POST", "/v1/workspaces", client_key, None, Some(json!({ "name": "Sub" }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("nesting_too_deep")), "{body}");

    // The rotated admin token: the old one stops at the next request, without a restart.
    let old = app.admin_token.clone();
    mailroom_api::admin_token::AdminToken::rotate(&app.admin_token_file).unwrap();
    let (status, _) = c.call("GET", "/v1/workspaces", &old, None, None).await;
    assert_eq!(status, 401);
    let new = mailroom_api::admin_token::read_token(&app.admin_token_file).unwrap();
    let new = secrecy::ExposeSecret::expose_secret(&new).to_owned();
    let (status, all) = c.call("GET", "/v1/workspaces", &new, None, None).await;
    assert_eq!(status, 200);
    assert_eq!(all["workspaces"].as_array().unwrap().len(), 3, "the test's own, the agency and its client: {all}");
    let (status, body) =
        c.call("DELETE", &format!("/v1/workspaces/{acme}"), &new, None, Some(json!({ "confirm": acme }))).await;
    assert_eq!(status, 200, "{body}");
    let deleted: Vec<&str> = body["deleted"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(deleted, [client.as_str(), acme.as_str()], "children first");
    let (status, _) = c.call("GET", "/v1/keys", &owner, None, None).await;
    assert_eq!(status, 401, "the agency's keys went with it");
    let live = "SELECT count(*) FROM workspace_keys WHERE wrapped_key IS NOT NULL";
    assert_eq!(app.count(live).await, 1, "only the test's own workspace keeps a key");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_per_day_counts_what_the_ledger_accepted_sent_and_failed_for_billing() {
    use mailroom_domain::{Grant, Role};
    let app = TestApp::spawn().await;
    let c = Client { app: &app };
    let mailbox = app.connect_mailbox().await;
    for (i, to) in
        [mailroom_tests::recipient("usage"), mailroom_tests::recipient("usage"), mailroom_tests::recipient("nouser")]
            .iter()
            .enumerate()
    {
        let (status, body) = app.send(&format!("usage-{i}"), &TestApp::send_body(&mailbox, to, "Usage")).await;
        assert_eq!(status, 201, "{body}");
    }
    app.wait_for_terminal(3, std::time::Duration::from_secs(60)).await;
    let billing = app.key_with(Grant::Role(Role::Billing)).await;
    let (status, usage) = c.call("GET", "/v1/usage", &billing, None, None).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["totals"], json!({ "accepted": 3, "sent": 2, "failed": 1 }), "{usage}");
    assert_eq!(usage["days"].as_array().unwrap().len(), 1, "{usage}");
    // Housekeeping folds the ledger's deltas into one row per day; the answer stays the same.
    app.wait_until("SELECT count(*) FROM usage_deltas", 0, std::time::Duration::from_secs(30)).await;
    assert_eq!(app.count("SELECT count(*) FROM usage_daily").await, 1);
    let (_, folded) = c.call("GET", "/v1/usage", &billing, None, None).await;
    assert_eq!(folded["totals"], usage["totals"], "{folded}");
    let today = chrono::Utc::now().date_naive().to_string();
    let (_, one_day) = c.call("GET", &format!("/v1/usage?from={today}&to={today}"), &billing, None, None).await;
    assert_eq!(one_day["totals"], usage["totals"]);
    for bad in [
        "/v1/usage?from=yesterday",
        "/v1/usage?from=2026-02-01&to=2026-01-01",
        "/v1/usage?from=2020-01-01&to=2026-01-01",
    ] {
        let (status, body) = c.call("GET", bad, &billing, None, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")), "{bad}: {body}");
    }
    let (status, _) = c.call("GET", "/v1/sends?state=sent", &billing, None, None).await;
    assert_eq!(status, 403, "billing sees usage only");
    app.stop().await;
}
