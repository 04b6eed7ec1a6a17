//! `mailroom mailboxes recheck`: after a configuration mistake is fixed, opens the sealed
//! credentials of unusable mailboxes again; those that open return to `active` and their
//! parked sends resume (the same procedure as `POST /v1/mailboxes/{id}/recheck`).

use clap::Subcommand;
use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_keyring::recheck::{self, Actor, Recheck};

use crate::{app, settings::Settings};

/// The mailbox commands.
#[derive(Subcommand)]
pub enum MailboxesCmd {
    /// Re-check one unusable mailbox, or every unusable mailbox of a workspace.
    Recheck {
        /// The workspace (`ws_...`).
        #[arg(long)]
        workspace: WorkspaceId,
        /// One mailbox (`mbx_...`); every unusable one of the workspace when omitted.
        #[arg(long)]
        mailbox: Option<MailboxId>,
        /// Who is acting, for the audit log.
        #[arg(long, env = "USER", default_value = "unknown")]
        actor: String,
    },
}

/// Runs a mailbox command.
#[allow(clippy::print_stdout)] // The outcome is the command's result.
pub async fn run(settings: &Settings, command: MailboxesCmd) -> anyhow::Result<()> {
    let MailboxesCmd::Recheck { workspace, mailbox, actor } = command;
    let pool = app::pool(settings).await?;
    let vault = app::vault(settings, &pool).await?;
    let name = format!("cli:{actor}");
    let actor = Actor::local(&name);
    let found = match mailbox {
        Some(id) => {
            let one = recheck::mailbox(&pool, &vault, workspace, id, &actor).await?;
            vec![(id, one.ok_or_else(|| anyhow::anyhow!("no mailbox {id} in workspace {workspace}"))?)]
        }
        None => recheck::workspace(&pool, &vault, workspace, &actor).await?,
    };
    if found.is_empty() {
        println!("workspace {workspace} has no unusable mailbox");
    }
    let mut still = 0;
    for (id, outcome) in found {
        match outcome {
            Recheck::Recovered { resumed } => println!("{id}\trecovered\t{resumed} parked sends resumed"),
            Recheck::StillUnusable { reason } => {
                still += 1;
                println!("{id}\tstill unusable\t{reason}");
            }
            Recheck::NotUnusable { status } => println!("{id}\tnot unusable\tstatus {status}"),
        }
    }
    anyhow::ensure!(still == 0, "{still} mailbox(es) still do not open");
    Ok(())
}
