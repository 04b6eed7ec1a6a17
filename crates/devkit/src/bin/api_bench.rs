//! `mailroom-api-bench`: requests/s and latency of a read and a write through one API process,
//! rate limiter off and on, or another build against this one (see `mailroom_devkit::api_bench`).
#![allow(clippy::print_stdout)] // A benchmark's output is its figures.

use clap::Parser;

/// API benchmark.
#[derive(Parser)]
struct Args {
    /// Requests of each kind per round.
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Rounds per setting (alternating off and on).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The `mailroom` binary to run.
    #[arg(long, default_value = "target/release/mailroom")]
    mailroom: std::path::PathBuf,
    /// Another `mailroom` binary (a build before a change) to compare with, rounds alternating;
    /// without it, the rate limiter off and on are compared.
    #[arg(long)]
    baseline: Option<std::path::PathBuf>,
    /// With `--baseline`: run both sides with the rate limiter on.
    #[arg(long)]
    limits: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let plan = mailroom_devkit::api_bench::ApiPlan {
        requests: a.requests,
        concurrency: a.concurrency,
        rounds: a.rounds,
        mailroom: a.mailroom,
        baseline: a.baseline,
        limits: a.limits,
    };
    mailroom_devkit::api_bench::run(plan).await?;
    Ok(())
}
