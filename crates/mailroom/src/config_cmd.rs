//! `mailroom config check`: the effective configuration (secrets as `***`), the resolved
//! paths, and the vault's start-up check against the database, without starting anything.
//! Exits non-zero on any problem, so a deployment can run it before a rollout.

use clap::Subcommand;

use crate::{app, settings::Settings, vault_setup};

/// The configuration commands.
#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Print the effective configuration and check the vault against the database.
    Check,
}

/// A configuration that does not load: the finding of `config check`, exit status 2.
#[allow(clippy::print_stderr)] // The finding is the command's result.
pub fn refused(e: &crate::settings::SettingsError) -> ! {
    eprintln!("configuration: REFUSED\n  {e}");
    std::process::exit(2)
}

/// Runs a configuration command; the process exits non-zero when a check fails.
#[allow(clippy::print_stdout, clippy::print_stderr)] // The report is the command's result.
pub async fn run(settings: &Settings, command: ConfigCmd) -> anyhow::Result<()> {
    let ConfigCmd::Check = command;
    println!("{}", serde_json::to_string_pretty(&settings.redacted())?);
    println!("\nrelative paths resolve against {}", settings.base_dir().display());
    for (setting, path) in settings.paths() {
        let state = if path.exists() { "exists" } else { "missing" };
        println!("  {setting} = {} ({state})", path.display());
    }
    let checked = async {
        let pool = app::pool(settings).await?;
        vault_setup::report(settings, &pool).await
    };
    match checked.await {
        Ok(None) => println!(
            "\nvault: OK (no workspace key stored yet; the first start creates {})",
            settings.vault.master_key_file.display()
        ),
        Ok(Some(uses)) if uses.is_empty() => println!("\nvault: OK (no workspace key stored yet)"),
        Ok(Some(uses)) => {
            println!("\nvault: OK");
            for u in uses {
                println!("  master key {} opens its {} workspace key(s)", u.master, u.keys);
            }
        }
        Err(e) => {
            eprintln!("\nvault: FAILED\n  {e:#}");
            std::process::exit(1);
        }
    }
    Ok(())
}
