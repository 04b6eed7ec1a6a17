//! `mailroom-bench`: end-to-end send throughput through 1, 2 and 4 worker processes, next to
//! apalis-postgres's own no-op job throughput (see `mailroom_devkit::bench`).
#![allow(clippy::print_stdout)] // A benchmark's output is its figures.

use clap::Parser;

/// Send-throughput benchmark.
#[derive(Parser)]
struct Args {
    /// Sends per round.
    #[arg(long, default_value_t = 5_000)]
    sends: usize,
    /// Worker-process counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    workers: Vec<usize>,
    /// The `mailroom` binary to run.
    #[arg(long, default_value = "target/release/mailroom")]
    mailroom: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plan = mailroom_devkit::bench::BenchPlan { sends: args.sends, workers: args.workers, mailroom: args.mailroom };
    mailroom_devkit::bench::run(plan).await?;
    Ok(())
}
