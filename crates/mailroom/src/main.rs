//! `mailroom`: the engine's one binary. Thin: parse the command line, load settings, call the
//! libraries, report the exit.

mod app;
mod config_cmd;
mod demo;
mod keys;
mod mailboxes_cmd;
mod oauth_settings;
mod settings;
mod telemetry;
mod vault_setup;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mailroom_domain::WorkspaceId;
use mailroom_store::roles::ServiceRole;
use secrecy::ExposeSecret;

use crate::settings::Settings;

/// Mailroom: an email sending engine that never sends twice and never drops a send.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML configuration file (environment variables `MAILROOM_...` override it).
    #[arg(long, global = true, env = "MAILROOM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply database migrations (Mailroom's and the job queue's).
    Migrate,
    /// Serve the HTTP API.
    Serve,
    /// Run a worker pool.
    Worker {
        #[command(subcommand)]
        kind: WorkerKind,
    },
    /// Run the whole engine against local peers and send a few hundred emails.
    Demo(demo::DemoArgs),
    /// Administrative commands.
    Admin {
        #[command(subcommand)]
        command: Admin,
    },
    /// Workspace keys: rotation, master-key re-wrap, status.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCmd,
        /// Who is acting, for the audit log.
        #[arg(long, env = "USER", default_value = "unknown", global = true)]
        actor: String,
    },
    /// Inspect and settle sends.
    Sends {
        #[command(subcommand)]
        command: SendsCmd,
    },
    /// Mailboxes: bring back the ones made unusable by a configuration mistake.
    Mailboxes {
        #[command(subcommand)]
        command: mailboxes_cmd::MailboxesCmd,
    },
    /// The configuration: print it and check the vault against the database.
    Config {
        #[command(subcommand)]
        command: config_cmd::ConfigCmd,
    },
}

#[derive(Subcommand)]
enum SendsCmd {
    /// List a workspace's ambiguous sends (ones that may or may not have been delivered).
    Ambiguous {
        /// The workspace (`ws_...`).
        #[arg(long)]
        workspace: WorkspaceId,
    },
    /// Settle an ambiguous send: `mark-sent`, `resend` or `cancel` (audited).
    Resolve {
        /// The workspace (`ws_...`).
        #[arg(long)]
        workspace: WorkspaceId,
        /// The send (`snd_...`).
        #[arg(long)]
        send: mailroom_domain::SendId,
        /// `mark-sent`, `resend` or `cancel`.
        #[arg(long)]
        action: String,
        /// Why (kept in the send's last answer and the audit log).
        #[arg(long, default_value = "")]
        note: String,
        /// Who is deciding, for the audit log.
        #[arg(long, env = "USER", default_value = "unknown")]
        actor: String,
    },
}

#[derive(Subcommand)]
enum WorkerKind {
    /// Deliver queued sends.
    Send,
    /// Detect replies, automatic replies and bounces in connected mailboxes.
    Reply,
}

#[derive(Subcommand)]
enum Admin {
    /// Create a workspace (with its first data key); prints its id.
    CreateWorkspace {
        /// A name for people.
        #[arg(long)]
        name: String,
    },
    /// Issue an API key for a workspace; prints the token once.
    CreateApiKey {
        /// The workspace (`ws_...`).
        #[arg(long)]
        workspace: WorkspaceId,
        /// A label for the key.
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// Write the next generation of the operator's admin token (`api.admin_token_file`); every
    /// API process stops accepting the old one at its next operator request.
    RotateToken,
    /// Delete a workspace: destroy its keys (nothing sealed under them can be opened again),
    /// its credentials and API keys; cancel its waiting sends.
    DeleteWorkspace {
        /// The workspace (`ws_...`).
        #[arg(long)]
        workspace: WorkspaceId,
        /// The same id again, to confirm.
        #[arg(long)]
        confirm: WorkspaceId,
        /// Who is acting, for the audit log.
        #[arg(long, env = "USER", default_value = "unknown")]
        actor: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        // `config check` reports a bad configuration as its finding, with its exit status.
        Err(e) if matches!(cli.command, Command::Config { .. }) => config_cmd::refused(&e),
        Err(e) => return Err(e.into()),
    };
    if matches!(cli.command, Command::Demo(_)) && settings.log.filter == "info" {
        // The demo reports through its progress bar and summary; per-send logs would bury them.
        settings.log.filter = "warn".into();
    }
    telemetry::init(&settings.log);
    tracing::info!(base_dir = %settings.base_dir().display(), "relative paths resolve against this directory");
    for (setting, path) in settings.paths() {
        tracing::info!(setting, path = %path.display(), "configured path");
    }
    match cli.command {
        Command::Migrate => {
            let pool = app::pool(&settings).await?;
            mailroom_store::migrate(&pool).await.context("migrations failed")?;
            tracing::info!("database is up to date");
        }
        Command::Serve => serve(&settings).await?,
        Command::Worker { kind: WorkerKind::Send } => {
            let pool = app::service_pool(&settings, ServiceRole::SendWorker).await?;
            let vault = app::vault(&settings, &pool).await?;
            mailroom_send_worker::run(pool, vault, app::worker_config(&settings)?, app::shutdown_signal()).await?;
        }
        Command::Worker { kind: WorkerKind::Reply } => {
            let pool = app::service_pool(&settings, ServiceRole::ReplyWorker).await?;
            let vault = app::vault(&settings, &pool).await?;
            mailroom_reply_worker::run(pool, vault, app::reply_config(&settings)?, app::shutdown_signal()).await?;
        }
        Command::Demo(args) => demo::run(settings, args).await?,
        Command::Admin { command } => admin(&settings, command).await?,
        Command::Sends { command } => sends(&settings, command).await?,
        Command::Keys { command, actor } => keys::run(&settings, command, &format!("cli:{actor}")).await?,
        Command::Mailboxes { command } => mailboxes_cmd::run(&settings, command).await?,
        Command::Config { command } => return config_cmd::run(&settings, command).await,
    }
    Ok(())
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    // Private by default: refuse an address beyond loopback before touching anything else.
    let admin = app::admin_token(settings)?;
    mailroom_api::edge::network_gate(settings.api.bind, settings.api.allow_network, &admin)?;
    let pool = app::service_pool(settings, ServiceRole::Api).await?;
    let vault = app::vault(settings, &pool).await?;
    let state = app::api_state(settings, pool, vault, admin)?;
    let listener = tokio::net::TcpListener::bind(settings.api.bind)
        .await
        .with_context(|| format!("cannot listen on {} (api.bind)", settings.api.bind))?;
    tracing::info!(address = %listener.local_addr()?, "API listening");
    mailroom_api::serve(listener, state, app::shutdown_signal()).await?;
    Ok(())
}

#[allow(clippy::print_stdout)] // The admin commands' output is their result.
async fn admin(settings: &Settings, command: Admin) -> anyhow::Result<()> {
    if let Admin::RotateToken = command {
        let path = &settings.api.admin_token_file;
        let generation = mailroom_api::admin_token::AdminToken::rotate(path)?;
        println!("admin token generation {generation} written to {}; the old one no longer works", path.display());
        return Ok(());
    }
    let pool = app::pool(settings).await?;
    match command {
        Admin::CreateWorkspace { name } => {
            let vault = app::vault(settings, &pool).await?;
            let id = mailroom_api::provision::create_workspace(&pool, &vault, &name, "cli").await?;
            println!("{id}");
        }
        Admin::CreateApiKey { workspace, name } => {
            let (_, token) = mailroom_api::provision::create_api_key(&pool, workspace, &name, "cli").await?;
            println!("{}", token.expose_secret());
        }
        Admin::DeleteWorkspace { workspace, confirm, actor } => {
            keys::delete_workspace(settings, workspace, confirm, &format!("cli:{actor}")).await?;
        }
        Admin::RotateToken => unreachable!("handled above"),
    }
    Ok(())
}

#[allow(clippy::print_stdout)] // The listing is the command's result.
async fn sends(settings: &Settings, command: SendsCmd) -> anyhow::Result<()> {
    let pool = app::pool(settings).await?;
    match command {
        SendsCmd::Ambiguous { workspace } => {
            let mut conn = pool.acquire().await?;
            let mut after = None;
            loop {
                let state = mailroom_domain::SendState::Ambiguous;
                let page = mailroom_store::sends::list(&mut conn, workspace, state, after, 500).await?;
                for s in &page {
                    let reason = s.failure_reason.as_deref().unwrap_or("");
                    println!("{}\t{}\t{}\t{}", s.send_id(), s.message_id, s.updated_at.to_rfc3339(), reason);
                }
                match page.last() {
                    Some(last) if page.len() == 500 => after = Some(last.send_id()),
                    _ => break,
                }
            }
        }
        SendsCmd::Resolve { workspace, send, action, note, actor } => {
            let resolution = mailroom_api::ops::parse_resolution(&action)?;
            let actor = format!("cli:{actor}");
            let actor = mailroom_store::audit::Actor::local(&actor);
            let row = mailroom_api::ops::resolve(&pool, workspace, send, resolution, &actor, &note).await?;
            println!("{} is now {}", row.send_id(), row.state);
        }
    }
    Ok(())
}
