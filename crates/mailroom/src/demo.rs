//! `mailroom demo`: the whole engine on embedded defaults, against local peers.
//!
//! PostgreSQL from `DATABASE_URL` (or a private cluster in `.demo/pg`), the SMTP relay and
//! Dovecot from `tests/peers`, the API and a send worker in this process. It connects a mailbox
//! through the API, enqueues a few hundred sends, waits for each to finish, and reads the
//! mailbox back over IMAP to count duplicates.
#![allow(clippy::print_stdout)] // The demo's output is its report.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mailroom_devkit::{Peers, PrivateCluster, imap, repo_root};
use mailroom_domain::WorkspaceId;
use mailroom_store::roles::ServiceRole;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::{app, settings::Settings};

/// Options for the demo.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// How many emails to send.
    #[arg(long, default_value_t = 300)]
    sends: usize,
}

/// Runs the demo.
pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let demo_dir = repo_root().join(".demo");
    let _cluster = database(&mut settings, &demo_dir)?;
    let peers = Peers::start()?;
    println!(
        "mail peers: SMTP relay on localhost:{} -> Dovecot, IMAP on 127.0.0.1:{}",
        peers.info.smtp_port, peers.info.imap_port
    );
    settings.smtp.extra_ca_file = Some(peers.info.ca_file.clone().into());
    // The demo's mail peers run on this machine: let tenants' addresses reach loopback.
    settings.egress.allow = vec!["127.0.0.0/8".into(), "::1".into()];
    settings.vault.master_key_file = demo_dir.join("master.key");
    settings.api.admin_token_file = demo_dir.join("admin.token");
    // Look for replies every second, not every two minutes.
    settings.reply.every_secs = 1;

    let pool = app::pool(&settings).await?;
    mailroom_store::migrate(&pool).await?;
    let vault = app::vault(&settings, &pool).await?;

    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    // Each part on its own database role, as in production.
    settings.database.max_connections = 10;
    let as_role = |role| app::service_pool(&settings, role);
    let (api_pool, send_pool, reply_pool) = (
        as_role(ServiceRole::Api).await?,
        as_role(ServiceRole::SendWorker).await?,
        as_role(ServiceRole::ReplyWorker).await?,
    );
    let state = app::api_state(&settings, api_pool, vault.clone(), app::admin_token(&settings)?)?;
    let api = tokio::spawn(mailroom_api::serve(listener, state, stop.clone().cancelled_owned()));
    let worker = tokio::spawn(mailroom_send_worker::run(
        send_pool,
        vault.clone(),
        app::worker_config(&settings)?,
        stop.clone().cancelled_owned(),
    ));
    let replies = tokio::spawn(mailroom_reply_worker::run(
        reply_pool,
        vault,
        app::reply_config(&settings)?,
        stop.clone().cancelled_owned(),
    ));
    println!("API on {base}, one send worker (concurrency {}), one reply worker", settings.worker.concurrency);
    let (ws, token) = onboard(&base, &settings.api.admin_token_file).await?;

    let result = drive(&base, &token, &peers, &pool, ws, args.sends).await;
    stop.cancel();
    let _ = api.await;
    let _ = worker.await;
    let _ = replies.await;
    let summary = result?;
    println!("\n{summary}");
    println!("finished in {:.1} s", started.elapsed().as_secs_f64());
    print_next_steps();
    Ok(())
}

/// The operator creates the demo's workspace through the API with the admin token, and gets
/// its first Owner key back.
async fn onboard(base: &str, admin_token_file: &std::path::Path) -> anyhow::Result<(WorkspaceId, SecretString)> {
    let admin = mailroom_api::admin_token::read_token(admin_token_file)?;
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/workspaces"))
        .bearer_auth(admin.expose_secret())
        .json(&serde_json::json!({ "name": "demo" }))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 201, "creating the demo workspace failed: {}", resp.text().await?);
    let body: serde_json::Value = resp.json().await?;
    let ws: WorkspaceId = body["workspace"]["id"].as_str().unwrap_or_default().parse()?;
    let token = body["owner_key"]["token"].as_str().unwrap_or_default();
    println!("workspace {ws} created through the API with the admin token, with its first Owner key");
    Ok((ws, SecretString::from(token.to_owned())))
}

fn database(settings: &mut Settings, demo_dir: &std::path::Path) -> anyhow::Result<Option<PrivateCluster>> {
    if !settings.database.url.expose_secret().is_empty() {
        println!("database: using DATABASE_URL");
        return Ok(None);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let cluster = PrivateCluster::start(&demo_dir.join("pg"), port).context("starting a private PostgreSQL cluster")?;
    println!("database: private PostgreSQL cluster in .demo/pg on port {port}");
    settings.database.url = SecretString::from(cluster.url.clone());
    Ok(Some(cluster))
}

async fn drive(
    base: &str,
    token: &SecretString,
    peers: &Peers,
    pool: &mailroom_store::PgPool,
    ws: WorkspaceId,
    n: usize,
) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let auth = format!("Bearer {}", token.expose_secret());
    let connect = json!({
        "from_address": peers.info.sender, "from_name": "Mailroom Demo",
        "smtp": { "host": peers.info.smtp_host, "port": peers.info.smtp_port, "tls": "starttls",
                  "username": peers.info.sender, "password": peers.info.sender_password },
        // IMAP lets the reply worker read the INBOX (and reconciliation search Sent).
        "imap": { "host": "127.0.0.1", "port": peers.info.imap_port, "tls": "none",
                  "username": peers.info.sender, "password": peers.info.sender_password },
        "sent_copy": "provider",
        // A local relay needs no protecting: send as fast as the worker can.
        "pacing": { "daily_cap": null, "min_gap_secs": 0, "jitter_secs": 0, "max_sessions": 16 },
    });
    let resp = http.post(format!("{base}/v1/mailboxes")).header("Authorization", &auth).json(&connect).send().await?;
    let status = resp.status();
    let mailbox: Value = resp.json().await?;
    if !status.is_success() {
        bail!("connecting the demo mailbox failed: {mailbox}");
    }
    println!("mailbox {} connected (password checked by a real SMTP login, then sealed)", mailbox["id"]);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let folder = format!("demo-{}", &run[..8]);
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "idempotency_key": format!("demo-{run}-{i}"), "mailbox_id": mailbox["id"],
                "to": [format!("{folder}@example.test")], "subject": format!("Demo message {i}"),
                "text": format!("Hello from Mailroom, message {i}."),
            })
        })
        .collect();
    let mut first: Option<String> = None;
    for chunk in items.chunks(1_000) {
        let resp = http
            .post(format!("{base}/v1/sends/batch"))
            .header("Authorization", &auth)
            .json(&json!({ "items": chunk }))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("enqueueing failed: {}", resp.text().await?);
        }
        let body: Value = resp.json().await?;
        first = first.or_else(|| body["results"][0]["send"]["message_id"].as_str().map(str::to_owned));
    }
    println!("{n} sends enqueued through POST /v1/sends/batch");
    let counts = wait_for_terminal(pool, ws, n).await?;
    if let Some(message_id) = first {
        show_reply(base, &http, &auth, peers, &message_id).await?;
    }
    let ids = imap::message_ids(peers.info.imap_port, &peers.info.inbox, &peers.info.inbox_password, &folder).await?;
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    let get = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, v)| *v);
    let stats = peers.command("stats")?;
    Ok(format!(
        "summary: sent {}, failed {}, ambiguous {}, delivered to the mailbox {}, duplicates found in the mailbox: {}\n\
         SMTP sessions opened (logins at the server): {} for {n} sends",
        get("sent"),
        get("failed"),
        get("ambiguous"),
        unique.len(),
        ids.len() - unique.len(),
        stats["logins"],
    ))
}

/// A lead answers the first message: the reply lands in the sending mailbox's INBOX (as a
/// provider would deliver it) and the reply worker reports it on the event feed.
async fn show_reply(
    base: &str,
    http: &reqwest::Client,
    auth: &str,
    peers: &Peers,
    message_id: &str,
) -> anyhow::Result<()> {
    let reply = format!(
        "From: A Lead <lead@example.org>\r\nTo: {}\r\nSubject: Re: Demo message 0\r\n\
         Message-ID: <{}@example.org>\r\nIn-Reply-To: {message_id}\r\n\r\nInterested, call me tomorrow.\r\n\r\n> Hello\r\n",
        peers.info.sender,
        uuid::Uuid::new_v4().simple()
    );
    let p = &peers.info;
    imap::append(p.imap_port, &p.sender, &p.sender_password, "INBOX", reply.as_bytes()).await?;
    println!("a lead replied to {message_id} (delivered to the mailbox's INBOX)");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let feed: Value =
            http.get(format!("{base}/v1/events?limit=1000")).header("Authorization", auth).send().await?.json().await?;
        let found = feed["events"].as_array().into_iter().flatten().find(|e| e["type"] == "reply.received");
        if let Some(e) = found {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let (id, send, excerpt) = (text(&e["id"]), text(&e["send_id"]), text(&e["data"]["excerpt"]));
            println!("reply detected: event {id} `reply.received` for send {send}: \"{excerpt}\"");
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the reply was not detected within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_for_terminal(
    pool: &mailroom_store::PgPool,
    ws: WorkspaceId,
    n: usize,
) -> anyhow::Result<Vec<(String, i64)>> {
    let bar = ProgressBar::new(n as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} finished ({per_sec}) {msg}")?);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut conn = pool.acquire().await?;
        let counts = mailroom_store::sends::count_by_state(&mut conn, ws).await?;
        let done: i64 = counts
            .iter()
            .filter(|(s, _)| matches!(s.as_str(), "sent" | "failed" | "ambiguous" | "cancelled"))
            .map(|(_, c)| c)
            .sum();
        bar.set_position(done as u64);
        if done as usize >= n {
            bar.finish();
            return Ok(counts);
        }
        if Instant::now() > deadline {
            bar.abandon();
            bail!("sends did not finish within 10 minutes: {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_next_steps() {
    println!(
        "\nTo send through a real mailbox:\n\
         \x20 export DATABASE_URL=postgres://...   # any PostgreSQL 13+\n\
         \x20 mailroom migrate\n\
         \x20 mailroom serve & mailroom worker send &   # the first serve writes admin.token\n\
         \x20 KEY=$(curl -s -H \"Authorization: Bearer $(jq -r .token admin.token)\" -H 'Content-Type: application/json' \\\n\
         \x20   localhost:8080/v1/workspaces -d '{{\"name\":\"acme\"}}' | jq -r .owner_key.token)\n\
         \x20 curl -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' localhost:8080/v1/mailboxes \\\n\
         \x20   -d '{{\"from_address\":\"you@yourdomain.com\",\"smtp\":{{\"host\":\"smtp.yourprovider.com\",\"port\":587,\"tls\":\"starttls\",\"username\":\"you@yourdomain.com\",\"password\":\"...\"}}}}'"
    );
}
