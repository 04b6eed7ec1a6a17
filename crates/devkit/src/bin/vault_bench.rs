//! `mailroom-vault-bench`: seals/s and opens/s with a cached key, and the KMS calls made for N
//! sends over W workspaces (see `mailroom_devkit::vault_bench`).
#![allow(clippy::print_stdout)] // A benchmark's output is its figures.

use clap::Parser;

/// Vault benchmark.
#[derive(Parser)]
struct Args {
    /// Seal and open operations timed with a cached key.
    #[arg(long, default_value_t = 100_000)]
    ops: usize,
    /// Credential opens (one per send) for the KMS-call count.
    #[arg(long, default_value_t = 10_000)]
    sends: usize,
    /// Workspaces the sends are spread over.
    #[arg(long, default_value_t = 10)]
    workspaces: usize,
    /// Opens in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let plan = mailroom_devkit::vault_bench::VaultPlan {
        ops: a.ops,
        sends: a.sends,
        workspaces: a.workspaces,
        concurrency: a.concurrency,
    };
    for line in mailroom_devkit::vault_bench::run(plan).await? {
        println!("{line}");
    }
    Ok(())
}
