//! The reply-detection benchmark (`mailroom-reply-bench`). Prints figures; asserts nothing.
//!
//! Against a private PostgreSQL and the peers' Dovecot: the API and a send worker send N
//! messages from one mailbox (the SMTP peer in sink mode), N replies to them are appended to the
//! mailbox's INBOX, then one `mailroom worker reply` process starts and reads them: replies per
//! second from its start to the Nth event. Then, with checks two minutes apart (the default),
//! single replies are appended one at a time and the time from APPEND to the event is taken:
//! what IDLE gives a scheduler.
#![allow(clippy::print_stdout)] // A benchmark's output is its figures.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use mailroom_domain::WorkspaceId;
use mailroom_store::{PgPool, admin};

use crate::{
    Peers, PrivateCluster,
    chaos::{Api, Fleet, finished, free_port},
};

/// What to measure.
pub struct ReplyPlan {
    /// Replies read in the first round.
    pub replies: usize,
    /// Single replies timed one at a time afterwards.
    pub latency_samples: usize,
    /// The `mailroom` binary.
    pub mailroom: PathBuf,
}

const EVENTS: &str = "SELECT count(*) FROM events WHERE kind LIKE 'reply.%'";

fn reply_to(message_id: &str, i: usize) -> Vec<u8> {
    format!(
        "From: Lead {i} <lead{i}@example.org>\r\nTo: sender@example.test\r\nSubject: Re: Bench {i}\r\n\
         Message-ID: <bench-reply-{i}@example.org>\r\nIn-Reply-To: {message_id}\r\n\
         Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n\r\nSounds good, let's talk on Tuesday.\r\n\r\n> Bench {i}\r\n"
    )
    .into_bytes()
}

async fn wait_events(pool: &PgPool, n: i64, within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while admin::scalar_count(pool, EVENTS).await? < n {
        anyhow::ensure!(started.elapsed() < within, "fewer than {n} reply events after {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Runs the benchmark and returns the report lines.
pub async fn run(plan: ReplyPlan) -> anyhow::Result<Vec<String>> {
    let peers = Peers::start()?;
    peers.command("faults sink=1")?;
    let p = peers.info.clone();
    let dir = std::env::temp_dir().join(format!("mailroom-rbench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    std::fs::create_dir_all(&dir)?;
    let pg = PrivateCluster::start(&dir.join("pg"), free_port()?)?;
    admin::create_database(&pg.url, "rbench").await?;
    let server = pg.url.rsplit_once('/').map_or(pg.url.as_str(), |(server, _)| server);
    let url = format!("{server}/rbench");
    let api_port = free_port()?;
    let mut fleet = Fleet::new(&plan.mailroom, &dir, &url, &p.ca_file, api_port);
    fleet.run_to_end(&["migrate"])?;
    let ws: WorkspaceId = fleet.run_to_end(&["admin", "create-workspace", "--name", "bench"])?.trim().parse()?;
    let token = fleet.run_to_end(&["admin", "create-api-key", "--workspace", &ws.to_string()])?.trim().to_owned();
    fleet.start_api()?;
    fleet.start_worker()?;
    let api = Api { http: reqwest::Client::new(), base: format!("http://127.0.0.1:{api_port}"), token };
    api.wait_healthy().await?;
    let mailbox = api.connect_mailboxes(&peers, 1).await?;
    let total = plan.replies + plan.latency_samples;
    api.enqueue(&mailbox, &["benchreply".to_owned()], total, "rb").await?;
    let pool = mailroom_store::connect(&url, 2).await?;
    let started = Instant::now();
    while finished(&pool, ws).await? < total as i64 {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "the sends did not finish in 10 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids = admin::scalar_strings(&pool, "SELECT message_id FROM sends ORDER BY created_at, id").await?;
    let raws: Vec<Vec<u8>> = ids[..plan.replies].iter().enumerate().map(|(i, id)| reply_to(id, i)).collect();
    crate::imap::append_all(p.imap_port, &p.sender, &p.sender_password, "INBOX", &raws).await.context("appending")?;

    let started = Instant::now();
    fleet.start_reply_worker()?;
    wait_events(&pool, plan.replies as i64, Duration::from_secs(600)).await?;
    let secs = started.elapsed().as_secs_f64();
    let mut lines = vec![format!(
        "reply worker, 1 process, batch 200: {} replies read, parsed, matched and recorded in {secs:.2} s \
         (process start included) = {:.0} replies/s",
        plan.replies,
        plan.replies as f64 / secs
    )];
    println!("{}", lines[0]);

    let mut samples = vec![];
    for (k, id) in ids[plan.replies..].iter().enumerate() {
        // Let the check that read the last reply finish and its IDLE watcher settle in.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let raw = reply_to(id, plan.replies + k);
        let t0 = Instant::now();
        crate::imap::append(p.imap_port, &p.sender, &p.sender_password, "INBOX", &raw).await?;
        wait_events(&pool, (plan.replies + k + 1) as i64, Duration::from_secs(300)).await?;
        samples.push(t0.elapsed());
    }
    samples.sort();
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let median = samples[samples.len() / 2];
        let line = format!(
            "a single reply, checks 120 s apart (IDLE on): APPEND to event in {:.0} ms median, {:.0}-{:.0} ms over {} samples",
            median.as_secs_f64() * 1e3,
            first.as_secs_f64() * 1e3,
            last.as_secs_f64() * 1e3,
            samples.len()
        );
        println!("{line}");
        lines.push(line);
    }
    fleet.stop_all();
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(lines)
}
