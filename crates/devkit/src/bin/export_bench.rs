//! `mailroom-export-bench`: the workspace export's speed and the API's memory while it streams
//! (see `mailroom_devkit::export_bench`).

use clap::Parser;

/// Export benchmark.
#[derive(Parser)]
struct Args {
    /// Sends in the exported workspace.
    #[arg(long, default_value_t = 100_000)]
    sends: i64,
    /// The `mailroom` binary to run.
    #[arg(long, default_value = "target/release/mailroom")]
    mailroom: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    mailroom_devkit::export_bench::run(mailroom_devkit::export_bench::ExportPlan {
        sends: a.sends,
        mailroom: a.mailroom,
    })
    .await?;
    Ok(())
}
