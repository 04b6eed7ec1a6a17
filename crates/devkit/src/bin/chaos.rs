//! `mailroom-chaos`: crash the engine while it sends, then count what arrived.
//!
//! Runs the API and several `mailroom worker send` processes against a private PostgreSQL and
//! the mail peers, enqueues N sends over many mailboxes (pacing off), and while they flow:
//! SIGKILLs a random worker every few seconds and restarts it, restarts PostgreSQL once, and has
//! the SMTP peer drop the connection after DATA for 1% of messages (half of them delivered
//! anyway) and answer 421 for 2%. At the end it reads every recipient folder over IMAP and
//! checks the promises: no duplicate, every send finished, delivered + failed + ambiguous = N,
//! and every ambiguous send one the peer really dropped. Exits non-zero if any check fails.
#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line report.

use clap::Parser;

/// Crash-and-fault run of the send path.
#[derive(Parser)]
struct Args {
    /// Sends to enqueue.
    #[arg(long, default_value_t = 2_000)]
    sends: usize,
    /// Mailboxes to spread them over.
    #[arg(long, default_value_t = 200)]
    mailboxes: usize,
    /// Send-worker processes.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Seconds between worker kills (jittered ±50%).
    #[arg(long, default_value_t = 3.0)]
    kill_every: f64,
    /// Give up (and fail) after this many seconds.
    #[arg(long, default_value_t = 900)]
    deadline: u64,
    /// The `mailroom` binary to run.
    #[arg(long, default_value = "target/debug/mailroom")]
    mailroom: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let report = mailroom_devkit::chaos::run(mailroom_devkit::chaos::Plan {
        sends: args.sends,
        mailboxes: args.mailboxes,
        workers: args.workers,
        kill_every: args.kill_every,
        deadline: std::time::Duration::from_secs(args.deadline),
        mailroom: args.mailroom,
    })
    .await?;
    println!("{report}");
    let passed = report.passed();
    println!("chaos run {}", if passed { "passed" } else { "FAILED" });
    println!("{}", report.tally());
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}
