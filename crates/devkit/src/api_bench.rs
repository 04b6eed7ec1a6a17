//! The API benchmark: requests per second and latency of a read (`GET /v1/sends/{id}`) and a
//! write (`POST /v1/sends`) through one `mailroom serve` process (release build), with the rate
//! limiter off and on, alternating rounds in the same run, so the difference is what the
//! limiter costs per request. Prints figures; asserts nothing.

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
}

/// One kind of request's figures in one round.
#[derive(Default, Clone, Copy)]
struct Figures {
    per_sec: f64,
    median_ms: f64,
}

/// Runs the benchmark and returns its report lines (also printed as they come).
#[allow(clippy::print_stdout)] // A benchmark's output is its figures.
pub async fn run(plan: ApiPlan) -> anyhow::Result<Vec<String>> {
    let peers = Peers::start()?;
    let dir = std::env::temp_dir().join(format!("mailroom-abench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    std::fs::create_dir_all(&dir)?;
    let pg = PrivateCluster::start(&dir.join("pg"), free_port()?)?;
    admin::create_database(&pg.url, "abench").await?;
    let server = pg.url.rsplit_once('/').map_or(pg.url.as_str(), |(server, _)| server);
    let url = format!("{server}/abench");
    let api_port = free_port()?;
    let mut fleet = Fleet::new(&plan.mailroom, &dir, &url, &peers.info.ca_file, api_port);
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
    let mut results: [Vec<(Figures, Figures)>; 2] = [vec![], vec![]];
    let mut mailbox = None;
    for round in 0..plan.rounds * 2 {
        let on = round % 2 == 1;
        fleet.set("MAILROOM_RATE_LIMITS__ENABLED", if on { "true" } else { "false" });
        fleet.start_api()?;
        api.wait_healthy().await?;
        if mailbox.is_none() {
            mailbox = Some(api.connect_mailboxes(&peers, 1).await?.remove(0));
        }
        let mb = mailbox.clone().context("a mailbox")?;
        let send = api.enqueue_one(&mb, &format!("abench-read-{round}")).await?;
        let writes = measure(&api, &plan, move |api, i| {
            let body = json!({ "mailbox_id": mb, "to": ["bench@example.test"], "subject": "Bench", "text": "Hi" });
            let req = api.http.post(format!("{}/v1/sends", api.base)).bearer_auth(&api.token);
            req.header("Idempotency-Key", format!("abench-{round}-{i}")).json(&body)
        })
        .await?;
        let reads = measure(&api, &plan, move |api, _| {
            api.http.get(format!("{}/v1/sends/{send}", api.base)).bearer_auth(&api.token)
        })
        .await?;
        fleet.stop_api();
        results[usize::from(on)].push((reads, writes));
    }
    fleet.stop_all();
    let mean = |v: &[(Figures, Figures)], pick: fn(&(Figures, Figures)) -> Figures| {
        let n = v.len().max(1) as f64;
        let sum = v.iter().map(pick).fold((0.0, 0.0), |(a, b), f| (a + f.per_sec, b + f.median_ms));
        Figures { per_sec: sum.0 / n, median_ms: sum.1 / n }
    };
    let mut lines = vec![];
    for (kind, pick) in
        [("GET /v1/sends/{id}", (|r: &(Figures, Figures)| r.0) as fn(&_) -> _), ("POST /v1/sends", |r| r.1)]
    {
        let (off, on) = (mean(&results[0], pick), mean(&results[1], pick));
        let cost_us = (1e6 / on.per_sec - 1e6 / off.per_sec) * plan.concurrency as f64;
        lines.push(format!(
            "{kind}, {} requests x {} rounds, {} in flight: limits off {:.0}/s (median {:.2} ms), on {:.0}/s \
             (median {:.2} ms): {:+.0} us per request",
            plan.requests, plan.rounds, plan.concurrency, off.per_sec, off.median_ms, on.per_sec, on.median_ms, cost_us
        ));
    }
    for l in &lines {
        println!("{l}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(lines)
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
