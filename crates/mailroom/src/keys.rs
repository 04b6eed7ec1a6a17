//! `mailroom keys ...`: key rotation, master-key re-wrap and key status, and
//! `mailroom admin delete-workspace` (crypto-shredding).

use std::time::Duration;

use clap::Subcommand;
use mailroom_domain::WorkspaceId;

use crate::{app, settings::Settings};

/// The key commands.
#[derive(Subcommand)]
pub enum KeysCmd {
    /// Start a rotation of a workspace's data key: the new version becomes active after one
    /// cache TTL; send workers then re-seal every value under it and destroy the old version.
    Rotate {
        /// The workspace (`ws_...`).
        #[arg(long)]
        workspace: WorkspaceId,
    },
    /// Re-wrap every workspace key under the configured master key (after changing it; keep
    /// the previous key available until this finishes).
    Rewrap {
        /// Every workspace (the only scope there is; required so the reach is explicit).
        #[arg(long, required = true)]
        all: bool,
    },
    /// Key versions, their states, master keys and how many sealed values use each.
    Status {
        /// One workspace (`ws_...`); all when omitted.
        #[arg(long)]
        workspace: Option<WorkspaceId>,
    },
    /// Run one pass of the background rotation job now (activate, re-seal, destroy).
    Advance,
    /// Create a new local master-key file (mode 0600) on purpose: for a first start with the
    /// file in place before any process runs, or for a master-key change (then list the old
    /// file in `vault.previous_master_key_files` and run `rewrap --all`). Never replaces a file.
    CreateMasterKey {
        /// Where to write it.
        #[arg(long)]
        file: std::path::PathBuf,
    },
}

/// Runs a key command.
#[allow(clippy::print_stdout)] // The commands' output is their result.
pub async fn run(settings: &Settings, command: KeysCmd, actor: &str) -> anyhow::Result<()> {
    if let KeysCmd::CreateMasterKey { file } = &command {
        let file = settings.base_dir().join(file);
        let created = mailroom_vault::LocalProvider::create(&file)?;
        println!("created {} (master key {})", file.display(), mailroom_vault::KeyProvider::key_id(&created));
        return Ok(());
    }
    let pool = app::pool(settings).await?;
    let vault = app::vault(settings, &pool).await?;
    match command {
        KeysCmd::CreateMasterKey { .. } => unreachable!("handled above"),
        KeysCmd::Rotate { workspace } => {
            let wait = Duration::from_secs(settings.vault.cache_ttl_secs);
            let actor = mailroom_store::audit::Actor::local(actor);
            let started = mailroom_keyring::rotate::begin(&pool, &vault, workspace, wait, &actor).await?;
            println!("version {} is pending; it becomes active at {}", started.version, started.activate_after);
        }
        KeysCmd::Rewrap { .. } => {
            let actor = mailroom_store::audit::Actor::local(actor);
            let done = mailroom_keyring::rewrap::rewrap_all(&pool, &vault, &actor).await?;
            println!(
                "{} workspace keys re-wrapped under {} {}; {} were already; {} changed meanwhile (run again)",
                done.rewrapped,
                vault.provider_name(),
                vault.master_key_id(),
                done.already,
                done.raced
            );
        }
        KeysCmd::Status { workspace } => {
            let mut conn = pool.acquire().await?;
            println!("workspace\tversion\tstate\tprovider\tmaster key\tsealed values\tsince");
            for k in mailroom_store::keys::status(&mut conn, workspace).await? {
                let ws = WorkspaceId::from_uuid(k.workspace_id);
                println!(
                    "{ws}\t{}\t{}\t{}\t{}\t{}\t{}",
                    k.version,
                    k.state,
                    k.provider,
                    k.kms_key_id,
                    k.sealed_values,
                    k.state_changed_at.to_rfc3339()
                );
            }
        }
        KeysCmd::Advance => {
            let grace = Duration::from_secs(settings.vault.cache_ttl_secs);
            let p = mailroom_keyring::rotate::advance(&pool, &vault, grace, 10_000).await?;
            println!(
                "activated {}, re-sealed {}, skipped {}, destroyed {}",
                p.activated, p.resealed, p.skipped, p.destroyed
            );
        }
    }
    Ok(())
}

/// `mailroom admin delete-workspace`: destroys the workspace's keys and credentials.
#[allow(clippy::print_stdout)]
pub async fn delete_workspace(
    settings: &Settings,
    ws: WorkspaceId,
    confirm: WorkspaceId,
    actor: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(ws == confirm, "--confirm must repeat the workspace id: deleting destroys its keys for good");
    let pool = app::pool(settings).await?;
    let vault = app::vault(settings, &pool).await?;
    let actor = mailroom_store::audit::Actor::local(actor);
    let d = mailroom_keyring::shred::delete_workspace(&pool, &vault, ws, &actor).await?;
    println!(
        "workspace {ws} deleted: {} key versions and {} sealed values destroyed, {} mailboxes disconnected, {} sends cancelled",
        d.keys_destroyed, d.values_destroyed, d.mailboxes_disconnected, d.cancelled_sends
    );
    Ok(())
}
