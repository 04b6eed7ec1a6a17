//! The chaos run (see the `mailroom-chaos` binary): processes, faults and the final count.
#![allow(clippy::print_stdout)] // Progress lines of a command-line run.

mod check;
pub(crate) mod procs;

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use mailroom_domain::WorkspaceId;
use rand::Rng;
use serde_json::{Value, json};

pub use check::Report;
pub(crate) use procs::Fleet;

use crate::{Peers, PrivateCluster};

/// What to run.
pub struct Plan {
    /// Sends to enqueue.
    pub sends: usize,
    /// Mailboxes to spread them over.
    pub mailboxes: usize,
    /// Send-worker processes.
    pub workers: usize,
    /// Seconds between worker kills (jittered).
    pub kill_every: f64,
    /// Overall time limit.
    pub deadline: Duration,
    /// The `mailroom` binary.
    pub mailroom: PathBuf,
}

/// Recipient folders the sends are spread over (few, so reading them back is quick).
const FOLDERS: usize = 20;

/// Runs the plan and returns the report.
pub async fn run(plan: Plan) -> anyhow::Result<Report> {
    let started = std::time::Instant::now();
    let peers = Peers::start()?;
    peers.command("faults drop=0.01 throttle=0.02 seed=20261123")?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let dir = std::env::temp_dir().join(format!("mailroom-chaos-{run_id}"));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let pg = PrivateCluster::start(&dir.join("pg"), port)?;
    let api_port = free_port()?;
    let mut fleet = Fleet::new(&plan.mailroom, &dir, &pg.url, &peers.info.ca_file, api_port);
    fleet.run_to_end(&["migrate"])?;
    let ws: WorkspaceId = fleet.run_to_end(&["admin", "create-workspace", "--name", "chaos"])?.trim().parse()?;
    let token = fleet.run_to_end(&["admin", "create-api-key", "--workspace", &ws.to_string()])?.trim().to_owned();
    fleet.start_api()?;
    for _ in 0..plan.workers {
        fleet.start_worker()?;
    }
    let api = Api { http: reqwest::Client::new(), base: format!("http://127.0.0.1:{api_port}"), token };
    api.wait_healthy().await?;
    let mailboxes = api.connect_mailboxes(&peers, plan.mailboxes).await?;
    let folders: Vec<String> = (0..FOLDERS).map(|k| format!("chaos-{run_id}-{k}")).collect();
    api.enqueue(&mailboxes, &folders, plan.sends, &run_id).await?;
    println!("{} sends enqueued over {} mailboxes; chaos begins", plan.sends, mailboxes.len());

    let pool = mailroom_store::connect(&pg.url, 2).await?;
    let chaos = unleash(&plan, &mut fleet, &pg, &pool, ws).await;
    fleet.stop_all();
    chaos?;
    let mut report = check::count(&pool, ws, &peers, &folders, plan.sends).await?;
    report.kills = fleet.kills;
    report.restarts = fleet.restarts;
    report.seconds = started.elapsed().as_secs_f64();
    drop(pool);
    drop(pg);
    if report.passed() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("logs and database kept in {}", dir.display());
    }
    Ok(report)
}

/// Kills workers, restarts PostgreSQL once, and waits for every send to finish.
async fn unleash(
    plan: &Plan,
    fleet: &mut Fleet,
    pg: &PrivateCluster,
    pool: &mailroom_store::PgPool,
    ws: WorkspaceId,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + plan.deadline;
    let mut next_kill = std::time::Instant::now();
    let mut pg_restarted = false;
    loop {
        fleet.revive_exited()?;
        let finished = match finished(pool, ws).await {
            Ok(n) => n,
            Err(_) => continue_after_blip().await,
        };
        if finished >= plan.sends as i64 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("only {finished} of {} sends finished within {:?}", plan.sends, plan.deadline);
        }
        if !pg_restarted && finished >= plan.sends as i64 / 3 {
            println!("restarting PostgreSQL at {finished} finished");
            pg.restart().context("restarting PostgreSQL")?;
            pg_restarted = true;
        }
        if std::time::Instant::now() >= next_kill {
            fleet.kill_random_worker()?;
            let jitter = rand::rng().random_range(0.5..1.5);
            next_kill = std::time::Instant::now() + Duration::from_secs_f64(plan.kill_every * jitter);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn continue_after_blip() -> i64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    0
}

pub(crate) async fn finished(pool: &mailroom_store::PgPool, ws: WorkspaceId) -> anyhow::Result<i64> {
    let mut conn = pool.acquire().await?;
    let counts = mailroom_store::sends::count_by_state(&mut conn, ws).await?;
    Ok(counts
        .iter()
        .filter(|(s, _)| ["sent", "failed", "ambiguous", "cancelled"].contains(&s.as_str()))
        .map(|(_, c)| c)
        .sum())
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The API, as the chaos run's client.
pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: String,
}

impl Api {
    pub(crate) async fn wait_healthy(&self) -> anyhow::Result<()> {
        for _ in 0..200 {
            if self.http.get(format!("{}/health", self.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the API did not become healthy in 20 s")
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(body).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("POST {path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Enqueues one send; returns its id.
    pub(crate) async fn enqueue_one(&self, mailbox: &str, key: &str) -> anyhow::Result<String> {
        let body = json!({ "mailbox_id": mailbox, "to": ["one@example.test"], "subject": "One", "text": "One." });
        let resp = self.http.post(format!("{}/v1/sends", self.base)).bearer_auth(&self.token);
        let resp = resp.header("Idempotency-Key", key).json(&body).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        anyhow::ensure!(status.is_success(), "POST /v1/sends answered {status}: {body}");
        Ok(body["id"].as_str().context("send id")?.to_owned())
    }

    pub(crate) async fn connect_mailboxes(&self, peers: &Peers, n: usize) -> anyhow::Result<Vec<String>> {
        let p = &peers.info;
        let mut body = json!({
            "from_address": p.sender,
            "smtp": { "host": p.smtp_host, "port": p.smtp_port, "tls": "starttls", "username": p.sender, "password": p.sender_password },
            "imap": { "host": "127.0.0.1", "port": p.imap_port, "tls": "none", "username": p.sender, "password": p.sender_password },
            "sent_copy": "provider",
            "pacing": { "daily_cap": null, "min_gap_secs": 0, "jitter_secs": 0, "max_sessions": 4 },
        });
        let mut ids = vec![];
        for i in 0..n {
            // One mailbox per address: the peer files every `+tag` of its account in Sent.
            if i > 0 {
                body["from_address"] = json!(p.sender.replace('@', &format!("+m{i}@")));
            }
            ids.push(self.post("/v1/mailboxes", &body).await?["id"].as_str().context("mailbox id")?.to_owned());
        }
        Ok(ids)
    }

    pub(crate) async fn enqueue(
        &self,
        mailboxes: &[String],
        folders: &[String],
        n: usize,
        run: &str,
    ) -> anyhow::Result<()> {
        let items: Vec<Value> = (0..n)
            .map(|i| {
                json!({
                    "idempotency_key": format!("chaos-{run}-{i}"),
                    "mailbox_id": mailboxes[i % mailboxes.len()],
                    "to": [format!("{}@example.test", folders[i % folders.len()])],
                    "subject": format!("Chaos {i}"),
                    "text": format!("Message {i} of the chaos run {run}."),
                })
            })
            .collect();
        for chunk in items.chunks(1_000) {
            self.post("/v1/sends/batch", &json!({ "items": chunk })).await?;
        }
        Ok(())
    }
}
