//! The one typed configuration: defaults, then an optional TOML file, then `MAILROOM_`
//! environment variables (`MAILROOM_WORKER__CONCURRENCY=32`), loaded once and validated at
//! start-up. `DATABASE_URL` is honoured as well, as every Postgres tool does. A key Mailroom
//! does not know, in the file or the environment, is an error that suggests the nearest one;
//! relative paths are resolved against one base directory (see [`Settings::base_dir`]).

mod known;
mod paths;
#[cfg(test)]
mod tests;
mod validate;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Everything Mailroom can be told.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Settings {
    /// The directory relative paths are resolved against; when unset, the configuration
    /// file's directory, or the working directory when there is no file.
    pub state_dir: Option<PathBuf>,
    /// PostgreSQL.
    pub database: Database,
    /// The HTTP API.
    pub api: Api,
    /// The vault.
    pub vault: Vault,
    /// The send worker.
    pub worker: Worker,
    /// The reply-detection worker.
    pub reply: Reply,
    /// OAuth mailbox connection.
    pub oauth: crate::oauth_settings::OAuth,
    /// The SMTP client.
    pub smtp: Smtp,
    /// Where Mailroom may connect on a tenant's word.
    pub egress: Egress,
    /// API rate limits.
    pub rate_limits: RateLimits,
    /// Logging.
    pub log: Log,
    /// Where relative paths were resolved from (not a setting: computed at load).
    #[serde(skip)]
    base_dir: PathBuf,
}

/// PostgreSQL settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Database {
    /// Connection URL (`postgres://user@host:port/db`): the owner's, for `migrate` and the
    /// operator's commands, and each service's unless it has its own below.
    #[serde(serialize_with = "hide")]
    pub url: SecretString,
    /// Pool size per process.
    pub max_connections: u32,
    /// `mailroom serve`'s own login (a member of `mailroom_api`); else `url`.
    #[serde(serialize_with = "hide_some")]
    pub api_url: Option<SecretString>,
    /// `mailroom worker send`'s own login (a member of `mailroom_send`); else `url`.
    #[serde(serialize_with = "hide_some")]
    pub send_worker_url: Option<SecretString>,
    /// `mailroom worker reply`'s own login (a member of `mailroom_reply`); else `url`.
    #[serde(serialize_with = "hide_some")]
    pub reply_worker_url: Option<SecretString>,
}

/// HTTP API settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Api {
    /// Address to listen on: loopback by default. Any other address also needs
    /// `allow_network` and an admin token rotated within 30 days.
    pub bind: SocketAddr,
    /// Opt-in to serve beyond loopback (see `bind`).
    pub allow_network: bool,
    /// Seconds a client has to send a request's headers (and an idle connection its next
    /// request) before the connection is closed.
    pub header_timeout_secs: u64,
    /// Seconds a whole request may take, body included, before it is answered 408.
    pub request_timeout_secs: u64,
    /// Connections open at once; when full, the oldest that sent no request makes room.
    pub max_connections: usize,
    /// Largest request body in bytes.
    pub max_request_bytes: usize,
    /// Largest text + HTML body of one send in bytes.
    pub max_message_bytes: usize,
    /// Most recipients per send.
    pub max_recipients: usize,
    /// Most items per batch.
    pub max_batch: usize,
    /// Hours a webhook's secret keeps signing after it was rotated (both sign meanwhile).
    pub webhook_secret_overlap_hours: u64,
    /// The operator's admin token (mode 0600; created on the first `serve`; rotated with
    /// `mailroom admin rotate-token`).
    pub admin_token_file: PathBuf,
    /// A header a trusted reverse proxy sets to the client's address (`x-forwarded-for`); the
    /// audit log records it instead of the proxy's address. None trusts no header.
    pub trusted_proxy_header: Option<String>,
}

/// Vault settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Vault {
    /// `local` (a master-key file, for development) or `aws-kms`.
    pub provider: String,
    /// The local master-key file (created with mode 0600 if missing).
    pub master_key_file: PathBuf,
    /// Earlier local master-key files, kept while `mailroom keys rewrap --all` moves every
    /// workspace key to the current one.
    pub previous_master_key_files: Vec<PathBuf>,
    /// Seconds an unwrapped workspace key stays cached.
    pub cache_ttl_secs: u64,
    /// Uses of a cached key before it is unwrapped again.
    pub cache_max_uses: u64,
    /// Most workspace keys cached at once.
    pub cache_max_entries: usize,
    /// AWS KMS (with `provider = "aws-kms"`). Credentials come from the standard AWS sources
    /// (environment, profile, instance or task role), never from this file.
    pub aws: AwsKms,
}

/// The AWS KMS master key.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AwsKms {
    /// Key id, ARN or `alias/...`.
    pub key_id: String,
    /// Region; empty means the AWS default chain's.
    pub region: String,
    /// Another endpoint than AWS's (an emulator).
    pub endpoint: Option<String>,
}

/// Reply-detection worker settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Reply {
    /// Mailboxes checked at once per process.
    pub concurrency: usize,
    /// Seconds between checks of one mailbox (jittered by ±20%).
    pub every_secs: u64,
    /// Seconds a process holds a mailbox for one check.
    pub lease_secs: u64,
    /// Messages read per check at most.
    pub batch: usize,
    /// IMAP mailboxes a process keeps in IDLE between checks (one connection each), so replies
    /// are read within seconds; 0 turns IDLE off.
    pub idle_watchers: usize,
    /// Seconds one IMAP session may take.
    pub imap_timeout_secs: u64,
    /// Webhook retries: first wait, and the longest, in seconds (doubling, jittered).
    pub webhook_retry_base_secs: u64,
    /// The longest wait between webhook retries.
    pub webhook_retry_cap_secs: u64,
    /// Hours after its event a webhook delivery is given up.
    pub webhook_max_age_hours: u64,
    /// Seconds one webhook request may take.
    pub webhook_timeout_secs: u64,
    /// Hours a webhook endpoint may fail every delivery before it is switched off.
    pub webhook_disable_after_hours: u64,
}

/// Send worker settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Worker {
    /// Jobs per process at once.
    pub concurrency: usize,
    /// Seconds a claimed send belongs to its worker.
    pub lease_secs: u64,
    /// Attempts before a transiently failing send is given up.
    pub max_attempts: u32,
    /// Hours after which a transiently failing send is given up.
    pub max_age_hours: u64,
    /// First retry delay in seconds (doubles per attempt, with jitter).
    pub retry_base_secs: u64,
    /// Longest retry delay in seconds.
    pub retry_cap_secs: u64,
    /// First mailbox pause after a throttle answer without a hint, in seconds.
    pub throttle_base_secs: u64,
    /// Longest mailbox pause after throttling, in seconds.
    pub throttle_cap_secs: u64,
    /// Mailbox pause after a daily-quota answer, in seconds.
    pub quota_pause_secs: u64,
    /// Seconds after an uncertain attempt before its Sent folder is searched.
    pub reconcile_delay_secs: u64,
    /// Finished queue rows older than this many seconds are deleted.
    pub prune_after_secs: u64,
    /// Seconds a due send may go without a live queue job before the sweeper re-queues it.
    pub sweep_after_secs: u64,
    /// Seconds between sweeps and prunes.
    pub housekeeping_every_secs: u64,
    /// How often to look for jobs that became due, in milliseconds.
    pub poll_interval_ms: u64,
    /// Queue heartbeat in seconds (a dead worker's jobs are re-queued after 10 of these).
    pub heartbeat_secs: u64,
}

/// SMTP client settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Smtp {
    /// Name sent in EHLO.
    pub hello_name: String,
    /// Seconds to wait for a connection or a command's reply.
    pub command_timeout_secs: u64,
    /// Seconds to wait for the message body's final reply.
    pub data_timeout_secs: u64,
    /// Seconds an idle authenticated session is kept for reuse.
    pub idle_timeout_secs: u64,
    /// Extra trusted CA certificates (PEM), for private servers.
    pub extra_ca_file: Option<PathBuf>,
}

/// Egress settings: the public internet only, unless the operator allows more.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Egress {
    /// Networks, addresses or host names (each optionally with `:port`) that tenants' SMTP,
    /// IMAP and webhook addresses may reach besides the public internet, e.g.
    /// `["10.1.2.0/24", "smtp.internal:587"]`. Plain-text IMAP only goes to these.
    pub allow: Vec<String>,
}

/// API rate limits, in requests per minute, shared by every API process on the database.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RateLimits {
    /// Off: no limit at all (a private deployment behind its own gateway).
    pub enabled: bool,
    /// A burst may take this many seconds' worth of a rate at once.
    pub burst_secs: u32,
    /// `POST /v1/sends` and `/v1/sends/batch`, per API key.
    pub sends_per_key: u32,
    /// The same, per workspace.
    pub sends_per_workspace: u32,
    /// Every `GET`, per API key.
    pub reads_per_key: u32,
    /// The same, per workspace.
    pub reads_per_workspace: u32,
    /// Every other change (mailboxes, webhooks, keys, workspaces, grants), per API key.
    pub writes_per_key: u32,
    /// The same, per workspace.
    pub writes_per_workspace: u32,
    /// Failed authentications per source address (then 429 instead of 401).
    pub failed_auth_per_source: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            burst_secs: 10,
            sends_per_key: 600,
            sends_per_workspace: 1_200,
            reads_per_key: 1_200,
            reads_per_workspace: 2_400,
            writes_per_key: 60,
            writes_per_workspace: 120,
            failed_auth_per_source: 30,
        }
    }
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Log {
    /// `tracing` filter, e.g. `info,mailroom_api=debug`.
    pub filter: String,
    /// `text` or `json`.
    pub format: String,
}

fn hide<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("")
}

fn hide_some<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str(""),
        None => s.serialize_none(),
    }
}

/// A setting that cannot be loaded or is out of range.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Parsing the file or environment failed (names the key).
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A key in the file or the environment that Mailroom does not know.
    #[error("unknown configuration key `{key}` {origin}{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    Unknown {
        /// The key as written (dotted, or the variable's name).
        key: String,
        /// Where it was written (`in /etc/mailroom.toml`, `in the environment`).
        origin: String,
        /// The nearest valid key, written the same way.
        suggestion: Option<String>,
    },
    /// A value is out of range.
    #[error("invalid configuration: `{field}` {problem}")]
    Invalid {
        /// The dotted key.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// An `egress.allow` entry cannot be read.
    #[error("invalid configuration: `egress.allow`: {0}")]
    Egress(#[source] mailroom_transport::egress::BadAllowEntry),
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            state_dir: None,
            base_dir: PathBuf::new(),
            database: Database {
                url: SecretString::from(""),
                max_connections: 20,
                api_url: None,
                send_worker_url: None,
                reply_worker_url: None,
            },
            api: Api {
                bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
                allow_network: false,
                header_timeout_secs: 10,
                request_timeout_secs: 60,
                max_connections: 1_024,
                max_request_bytes: 64 << 20,
                max_message_bytes: 1 << 20,
                max_recipients: 50,
                max_batch: 1_000,
                webhook_secret_overlap_hours: 24,
                admin_token_file: PathBuf::from("admin.token"),
                trusted_proxy_header: None,
            },
            vault: Vault {
                provider: "local".into(),
                master_key_file: PathBuf::from(".mailroom/master.key"),
                previous_master_key_files: vec![],
                cache_ttl_secs: 300,
                cache_max_uses: 100_000,
                cache_max_entries: 1_000,
                aws: AwsKms::default(),
            },
            oauth: crate::oauth_settings::OAuth::default(),
            reply: Reply {
                concurrency: 8,
                every_secs: 120,
                lease_secs: 300,
                batch: 200,
                idle_watchers: 100,
                imap_timeout_secs: 120,
                webhook_retry_base_secs: 10,
                webhook_retry_cap_secs: 3_600,
                webhook_max_age_hours: 24,
                webhook_timeout_secs: 10,
                webhook_disable_after_hours: 72,
            },
            worker: Worker {
                concurrency: 16,
                lease_secs: 55,
                max_attempts: 8,
                max_age_hours: 72,
                retry_base_secs: 30,
                retry_cap_secs: 3_600,
                throttle_base_secs: 60,
                throttle_cap_secs: 3_600,
                quota_pause_secs: 3_600,
                reconcile_delay_secs: 60,
                prune_after_secs: 3_600,
                sweep_after_secs: 120,
                housekeeping_every_secs: 30,
                poll_interval_ms: 1_000,
                heartbeat_secs: 5,
            },
            smtp: Smtp {
                hello_name: "localhost".into(),
                command_timeout_secs: 15,
                data_timeout_secs: 35,
                idle_timeout_secs: 60,
                extra_ca_file: None,
            },
            egress: Egress::default(),
            rate_limits: RateLimits::default(),
            log: Log { filter: "info".into(), format: "text".into() },
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` (if given), then the environment; refuses unknown keys,
    /// resolves relative paths and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            known::refuse_unknown_in_file(file)?;
            fig = fig.merge(Toml::file_exact(file));
        }
        known::refuse_unknown_in_env(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))))?;
        let fig = fig
            .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database.url".into()))
            .merge(Env::prefixed("MAILROOM_").ignore(&[known::CONFIG_VAR]).split("__"));
        let mut settings: Settings = fig.extract().map_err(Box::new)?;
        settings.resolve_paths(file)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The database URL, or an error saying how to set it.
    pub fn database_url(&self) -> Result<&str, SettingsError> {
        use secrecy::ExposeSecret;
        match self.database.url.expose_secret() {
            "" => Err(SettingsError::Invalid {
                field: "database.url",
                problem: "is required (set DATABASE_URL or MAILROOM_DATABASE__URL)",
            }),
            url => Ok(url),
        }
    }
}
