//! `mailroom-reply-bench`: replies read per second by one reply-worker process, and the time
//! from a reply's arrival to its event with IDLE (see `mailroom_devkit::reply_bench`).
#![allow(clippy::print_stdout)] // A benchmark's output is its figures.

use clap::Parser;

/// Reply-detection benchmark.
#[derive(Parser)]
struct Args {
    /// Replies waiting in INBOX when the reply worker starts.
    #[arg(long, default_value_t = 2_000)]
    replies: usize,
    /// Single replies timed from arrival to event afterwards.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// The `mailroom` binary to run.
    #[arg(long, default_value = "target/release/mailroom")]
    mailroom: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let plan = mailroom_devkit::reply_bench::ReplyPlan {
        replies: a.replies,
        latency_samples: a.samples,
        mailroom: a.mailroom,
    };
    mailroom_devkit::reply_bench::run(plan).await?;
    Ok(())
}
