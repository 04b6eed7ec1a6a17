//! The send-throughput benchmark (the `mailroom-bench` binary). Prints figures; asserts nothing.
//!
//! End to end: the API and 1, 2 and 4 `mailroom worker send` processes against a private
//! PostgreSQL, sending to the SMTP peer in sink mode (accept and discard) with pacing off;
//! sends per second from the first enqueue to the last send finished, and write transactions
//! per send. Next to it, in the same run, apalis-postgres's own throughput for no-op jobs at the
//! same batch size and concurrency, as the ceiling the queue itself sets.
#![allow(clippy::print_stdout)] // A benchmark's output is its figures.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use mailroom_domain::WorkspaceId;

use crate::{
    Peers, PrivateCluster,
    chaos::{Api, Fleet, finished, free_port},
};

/// What to measure.
pub struct BenchPlan {
    /// Sends per round.
    pub sends: usize,
    /// Worker-process counts to measure.
    pub workers: Vec<usize>,
    /// The `mailroom` binary.
    pub mailroom: PathBuf,
}

/// Next transaction id (cluster-wide): the difference over a run counts write transactions.
async fn next_xid(pool: &mailroom_store::PgPool) -> anyhow::Result<i64> {
    let sql = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint";
    Ok(mailroom_store::admin::scalar_count(pool, sql).await?)
}

/// Runs every round and returns the report lines.
pub async fn run(plan: BenchPlan) -> anyhow::Result<Vec<String>> {
    let peers = Peers::start()?;
    peers.command("faults sink=1")?;
    let dir = std::env::temp_dir().join(format!("mailroom-bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    std::fs::create_dir_all(&dir)?;
    let pg = PrivateCluster::start(&dir.join("pg"), free_port()?)?;
    let mut lines = vec![];
    for &workers in &plan.workers {
        let db = format!("bench_{workers}");
        mailroom_store::admin::create_database(&pg.url, &db).await?;
        let server = pg.url.rsplit_once('/').map_or(pg.url.as_str(), |(server, _)| server);
        let url = format!("{server}/{db}");
        lines.push(
            round(&plan, &peers, &dir, &url, workers).await.with_context(|| format!("round with {workers} workers"))?,
        );
        println!("{}", lines.last().map(String::as_str).unwrap_or_default());
    }
    let noop = noop_jobs(&pg.url, plan.sends).await?;
    println!("{noop}");
    lines.push(noop);
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(lines)
}

async fn round(
    plan: &BenchPlan,
    peers: &Peers,
    dir: &std::path::Path,
    url: &str,
    workers: usize,
) -> anyhow::Result<String> {
    let api_port = free_port()?;
    let mut fleet = Fleet::new(&plan.mailroom, dir, url, &peers.info.ca_file, api_port);
    fleet.run_to_end(&["migrate"])?;
    let ws: WorkspaceId = fleet.run_to_end(&["admin", "create-workspace", "--name", "bench"])?.trim().parse()?;
    let token = fleet.run_to_end(&["admin", "create-api-key", "--workspace", &ws.to_string()])?.trim().to_owned();
    fleet.start_api()?;
    for _ in 0..workers {
        fleet.start_worker()?;
    }
    let api = Api { http: reqwest::Client::new(), base: format!("http://127.0.0.1:{api_port}"), token };
    api.wait_healthy().await?;
    let mailboxes = api.connect_mailboxes(peers, 20).await?;
    let folders = vec!["bench".to_owned()];
    let pool = mailroom_store::connect(url, 2).await?;
    let xid0 = next_xid(&pool).await?;
    let started = Instant::now();
    api.enqueue(&mailboxes, &folders, plan.sends, &format!("b{workers}")).await?;
    while finished(&pool, ws).await? < plan.sends as i64 {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(900), "the round did not finish in 15 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let xids = next_xid(&pool).await? - xid0;
    fleet.stop_all();
    Ok(format!(
        "mailroom, {workers} worker process(es) x concurrency 16: {} sends in {secs:.1} s = {:.0} sends/s; {:.1} write transactions per send (enqueue included)",
        plan.sends,
        plan.sends as f64 / secs,
        xids as f64 / plan.sends as f64
    ))
}

/// apalis-postgres alone: push `n` no-op jobs, run one worker (batch 16, concurrency 16, pub/sub)
/// until all are done.
async fn noop_jobs(server_url: &str, n: usize) -> anyhow::Result<String> {
    mailroom_store::admin::create_database(server_url, "bench_noop").await?;
    let pool = mailroom_store::admin::connect_to(server_url, "bench_noop", 10).await?;
    PostgresStorage::setup(&pool).await?;
    let queue = "bench.noop";
    let mut conn = pool.acquire().await?;
    for chunk in (0..n as u32).collect::<Vec<_>>().chunks(1_000) {
        let tasks = chunk.iter().map(|i| TaskBuilder::new(serde_json::to_vec(i).unwrap_or_default()).build()).collect();
        apalis_postgres::queries::push_tasks(&mut *conn, queue, tasks).await?;
    }
    drop(conn);
    let done = Arc::new(AtomicUsize::new(0));
    let config = Config::default().queue(queue).batch_size(16);
    let backend = PostgresStorage::<u32>::new(&pool).with_config(config).with_pubsub();
    let counter = done.clone();
    let started = Instant::now();
    let worker = WorkerBuilder::new("bench-noop").backend(backend).data(counter).concurrency(16).build(
        move |_: u32, done: Data<Arc<AtomicUsize>>, worker: WorkerContext| async move {
            if done.fetch_add(1, Ordering::SeqCst) + 1 >= n {
                let _ = worker.stop();
            }
            Ok::<(), BoxDynError>(())
        },
    );
    worker.run().await?;
    let secs = started.elapsed().as_secs_f64();
    Ok(format!(
        "apalis-postgres alone, no-op jobs, 1 worker x concurrency 16: {n} jobs in {secs:.1} s = {:.0} jobs/s",
        n as f64 / secs
    ))
}
