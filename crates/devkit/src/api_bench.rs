//! The API benchmark: requests per second and latency of a read (`GET /v1/sends/{id}`) and a
//! write (`POST /v1/sends`) through one `mailroom serve` process (release build), in
//! alternating rounds of two sides in the same run: the rate limiter off and on (what it costs
//! per request), or another build against this one (what a change costs, such as row-level
//! security). Each side has its own database on one private PostgreSQL. Prints figures;
//! asserts nothing.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use mailroom_store::admin;
use serde_json::json;

use crate::{
    Peers,
    chaos::{Api, free_port, procs::Fleet},
    postgres::PrivateCluster,
};

/// What to measure.
pub struct ApiPlan {
    /// Requests of each kind per round.
    pub requests: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Rounds per setting (alternating off and on).
    pub rounds: usize,
    /// The `mailroom` binary.
    pub mailroom: PathBuf,
    /// Another build of `mailroom` to compare this one with (the limiter off and on when none).
    pub baseline: Option<PathBuf>,
    /// Whether the rate limiter is on when comparing with a baseline.
    pub limits: bool,
}

/// One kind of request's figures in one round.
#[derive(Default, Clone, Copy)]
struct Figures {
    per_sec: f64,
    median_ms: f64,
}

/// One side of the comparison: a `mailroom` binary on its own database, with its settings.
pub(crate) struct Side {
    label: &'static str,
    pub(crate) fleet: Fleet,
    pub(crate) api: Arc<Api>,
    mailbox: Option<String>,
}

impl Side {
    /// Migrates database `db` with `bin`, makes a workspace and a key, and sets `env`.
    pub(crate) async fn new(
        label: &'static str,
        bin: &std::path::Path,
        pg: &PrivateCluster,
        dir: &std::path::Path,
        db: &str,
        env: &[(&'static str, &str)],
        ca_file: &str,
    ) -> anyhow::Result<Self> {
        admin::create_database(&pg.url, db).await?;
        let server = pg.url.rsplit_once('/').map_or(pg.url.as_str(), |(server, _)| server);
        let url = format!("{server}/{db}");
        let api_port = free_port()?;
        let dir = dir.join(db);
        std::fs::create_dir_all(&dir)?;
        let mut fleet = Fleet::new(bin, &dir, &url, ca_file, api_port);
        fleet.run_to_end(&["migrate"])?;
        let ws = fleet.run_to_end(&["admin", "create-workspace", "--name", "bench"])?.trim().to_owned();
        let token = fleet.run_to_end(&["admin", "create-api-key", "--workspace", &ws])?.trim().to_owned();
        let api = Arc::new(Api { http: reqwest::Client::new(), base: format!("http://127.0.0.1:{api_port}"), token });
        // Limits far above what the benchmark asks: every request is counted, none refused.
        for var in [
            "MAILROOM_RATE_LIMITS__SENDS_PER_KEY",
            "MAILROOM_RATE_LIMITS__SENDS_PER_WORKSPACE",
            "MAILROOM_RATE_LIMITS__READS_PER_KEY",
            "MAILROOM_RATE_LIMITS__READS_PER_WORKSPACE",
        ] {
            fleet.set(var, "100000000");
        }
        for (k, v) in env {
            fleet.set(k, v);
        }
        Ok(Self { label, fleet, api, mailbox: None })
    }

    /// One round: a read and a write measured against a fresh API process.
    async fn round(&mut self, peers: &Peers, plan: &ApiPlan, round: usize) -> anyhow::Result<(Figures, Figures)> {
        self.fleet.start_api()?;
        let api = self.api.clone();
        api.wait_healthy().await?;
        if self.mailbox.is_none() {
            self.mailbox = Some(api.connect_mailboxes(peers, 1).await?.remove(0));
        }
        let mb = self.mailbox.clone().context("a mailbox")?;
        let send = api.enqueue_one(&mb, &format!("abench-read-{round}")).await?;
        let writes = measure(&api, plan, move |api, i| {
            let body = json!({ "mailbox_id": mb, "to": ["bench@example.test"], "subject": "Bench", "text": "Hi" });
            let req = api.http.post(format!("{}/v1/sends", api.base)).bearer_auth(&api.token);
            req.header("Idempotency-Key", format!("abench-{round}-{i}")).json(&body)
        })
        .await?;
        let reads = measure(&api, plan, move |api, _| {
            api.http.get(format!("{}/v1/sends/{send}", api.base)).bearer_auth(&api.token)
        })
        .await?;
        self.fleet.stop_api();
        Ok((reads, writes))
    }
}

/// Runs the benchmark and returns its report lines (also printed as they come).
#[allow(clippy::print_stdout)] // A benchmark's output is its figures.
pub async fn run(plan: ApiPlan) -> anyhow::Result<Vec<String>> {
    let peers = Peers::start()?;
    let dir = std::env::temp_dir().join(format!("mailroom-abench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    std::fs::create_dir_all(&dir)?;
    let pg = PrivateCluster::start(&dir.join("pg"), free_port()?)?;
    let ca = peers.info.ca_file.clone();
    let limits = if plan.limits { "true" } else { "false" };
    let on = [("MAILROOM_RATE_LIMITS__ENABLED", "true")];
    let off = [("MAILROOM_RATE_LIMITS__ENABLED", "false")];
    let mut sides = match &plan.baseline {
        // The same binary, the rate limiter off and on.
        None => [
            Side::new("limits off", &plan.mailroom, &pg, &dir, "abench", &off, &ca).await?,
            Side::new("limits on", &plan.mailroom, &pg, &dir, "abench_on", &on, &ca).await?,
        ],
        // Another build (before a change) against this one, each on its own database.
        Some(before) => {
            let env = [("MAILROOM_RATE_LIMITS__ENABLED", limits)];
            [
                Side::new("baseline", before, &pg, &dir, "abench_base", &env, &ca).await?,
                Side::new("this build", &plan.mailroom, &pg, &dir, "abench", &env, &ca).await?,
            ]
        }
    };
    let mut results: [Vec<(Figures, Figures)>; 2] = [vec![], vec![]];
    for round in 0..plan.rounds * 2 {
        let side = round % 2;
        results[side].push(sides[side].round(&peers, &plan, round).await?);
    }
    for s in &mut sides {
        s.fleet.stop_all();
    }
    let lines = report(&plan, [sides[0].label, sides[1].label], &results);
    for l in &lines {
        println!("{l}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(lines)
}

/// The two sides' mean figures, and what the second costs per request over the first.
fn report(plan: &ApiPlan, labels: [&str; 2], results: &[Vec<(Figures, Figures)>; 2]) -> Vec<String> {
    let mean = |v: &[(Figures, Figures)], pick: fn(&(Figures, Figures)) -> Figures| {
        let n = v.len().max(1) as f64;
        let sum = v.iter().map(pick).fold((0.0, 0.0), |(a, b), f| (a + f.per_sec, b + f.median_ms));
        Figures { per_sec: sum.0 / n, median_ms: sum.1 / n }
    };
    let mut lines = vec![];
    for (kind, pick) in
        [("GET /v1/sends/{id}", (|r: &(Figures, Figures)| r.0) as fn(&_) -> _), ("POST /v1/sends", |r| r.1)]
    {
        let (a, b) = (mean(&results[0], pick), mean(&results[1], pick));
        let cost_us = (1e6 / b.per_sec - 1e6 / a.per_sec) * plan.concurrency as f64;
        lines.push(format!(
            "{kind}, {} requests x {} rounds, {} in flight: {} {:.0}/s (median {:.2} ms), {} {:.0}/s \
             (median {:.2} ms): {:+.0} us per request ({:+.1}%)",
            plan.requests,
            plan.rounds,
            plan.concurrency,
            labels[0],
            a.per_sec,
            a.median_ms,
            labels[1],
            b.per_sec,
            b.median_ms,
            cost_us,
            (a.per_sec / b.per_sec - 1.0) * 100.0
        ));
    }
    lines
}

/// Sends `plan.requests` requests made by `make`, `plan.concurrency` at a time.
async fn measure<F>(api: &Arc<Api>, plan: &ApiPlan, make: F) -> anyhow::Result<Figures>
where
    F: Fn(&Api, usize) -> reqwest::RequestBuilder + Send + Sync + 'static + Clone,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..plan.concurrency {
        let (api, make, n, step) = (api.clone(), make.clone(), plan.requests, plan.concurrency);
        tasks.spawn(async move {
            let mut took = vec![];
            for i in (t..n).step_by(step) {
                let t0 = Instant::now();
                let resp = make(&api, i).send().await?;
                anyhow::ensure!(resp.status().is_success(), "request {i} answered {}", resp.status());
                took.push(t0.elapsed());
            }
            anyhow::Ok(took)
        });
    }
    let mut all: Vec<Duration> = vec![];
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    all.sort();
    let secs = started.elapsed().as_secs_f64();
    Ok(Figures {
        per_sec: all.len() as f64 / secs,
        median_ms: all.get(all.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e3),
    })
}
