//! The export benchmark: `GET /v1/export` of a workspace of N sends through one `mailroom
//! serve` process (release build), read as fast as the client can: rows and bytes per second,
//! and the API process's resident memory before and at its peak during the export (sampled
//! every 20 ms from `/proc`). Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use mailroom_store::admin;

use crate::{Peers, api_bench::Side, chaos::free_port, postgres::PrivateCluster};

/// What to measure.
pub struct ExportPlan {
    /// Sends in the workspace.
    pub sends: i64,
    /// The `mailroom` binary.
    pub mailroom: std::path::PathBuf,
}

/// A process's resident set size in KiB (`VmRSS`), or 0 when unreadable.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Runs the benchmark and returns its report lines (also printed).
#[allow(clippy::print_stdout)] // A benchmark's output is its figures.
pub async fn run(plan: ExportPlan) -> anyhow::Result<Vec<String>> {
    let peers = Peers::start()?;
    let dir = std::env::temp_dir().join(format!("mailroom-xbench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    std::fs::create_dir_all(&dir)?;
    let pg = PrivateCluster::start(&dir.join("pg"), free_port()?)?;
    let off = [("MAILROOM_RATE_LIMITS__ENABLED", "false")];
    let mut side = Side::new("export", &plan.mailroom, &pg, &dir, "xbench", &off, &peers.info.ca_file).await?;
    side.fleet.start_api()?;
    let api = side.api.clone();
    api.wait_healthy().await?;
    api.connect_mailboxes(&peers, 1).await?;
    let pool = admin::connect_to(&pg.url, "xbench", 2).await?;
    admin::execute(
        &pool,
        &format!(
            "INSERT INTO sends (id, workspace_id, mailbox_id, idempotency_key, payload_hash, payload, message_id,
                 state, metadata, finished_at)
             SELECT gen_random_uuid(), m.workspace_id, m.id, 'xbench-' || g, '\\x00',
                 jsonb_build_object('to', jsonb_build_array('lead-' || g || '@example.test'), 'subject', 'Hello',
                     'text', repeat('A line of the body. ', 50)),
                 '<xbench-' || g || '@bench.test>', 'sent',
                 jsonb_build_object('campaign', 'c-' || (g % 100), 'lead', 'lead-' || g), now()
             FROM generate_series(1, {}) g, (SELECT id, workspace_id FROM mailboxes LIMIT 1) m",
            plan.sends
        ),
    )
    .await?;
    pool.close().await;
    let pid = side.fleet.api_pid().context("the API process")?;
    let before = rss_kib(pid);
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        loop {
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(20)).await;
            if peak > 0 && rss_kib(pid) == 0 {
                return peak;
            }
        }
    });
    let started = Instant::now();
    let mut resp = api.http.get(format!("{}/v1/export", api.base)).bearer_auth(&api.token).send().await?;
    anyhow::ensure!(resp.status().is_success(), "export answered {}", resp.status());
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = resp.chunk().await? {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let took = started.elapsed().as_secs_f64();
    let during = rss_kib(pid);
    side.fleet.stop_all();
    let peak = sampler.await?.max(during);
    let line = format!(
        "GET /v1/export of {} sends: {lines} lines, {:.1} MB in {took:.2} s ({:.0} rows/s, {:.1} MB/s); \
         API process resident memory {:.1} MiB before, {:.1} MiB at its peak ({:+.1} MiB)",
        plan.sends,
        bytes as f64 / 1e6,
        lines as f64 / took,
        bytes as f64 / 1e6 / took,
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        (peak as f64 - before as f64) / 1024.0
    );
    println!("{line}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(vec![line])
}
