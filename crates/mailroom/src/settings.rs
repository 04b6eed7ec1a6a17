//! The one typed configuration: defaults, then an optional TOML file, then `MAILROOM_`
//! environment variables (`MAILROOM_WORKER__CONCURRENCY=32`), loaded once and validated at
//! start-up. `DATABASE_URL` is honoured as well, as every Postgres tool does.

use std::{net::SocketAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Everything Mailroom can be told.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Settings {
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
    /// Logging.
    pub log: Log,
}

/// PostgreSQL settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Database {
    /// Connection URL (`postgres://user@host:port/db`).
    #[serde(serialize_with = "hide")]
    pub url: SecretString,
    /// Pool size per process.
    pub max_connections: u32,
}

/// HTTP API settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Api {
    /// Address to listen on; loopback unless configured otherwise.
    pub bind: SocketAddr,
    /// Largest request body in bytes.
    pub max_request_bytes: usize,
    /// Largest text + HTML body of one send in bytes.
    pub max_message_bytes: usize,
    /// Most recipients per send.
    pub max_recipients: usize,
    /// Most items per batch.
    pub max_batch: usize,
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

/// A setting that cannot be loaded or is out of range.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Parsing the file or environment failed (names the key).
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value is out of range.
    #[error("invalid configuration: `{field}` {problem}")]
    Invalid {
        /// The dotted key.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database: Database { url: SecretString::from(""), max_connections: 20 },
            api: Api {
                bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
                max_request_bytes: 64 << 20,
                max_message_bytes: 1 << 20,
                max_recipients: 50,
                max_batch: 1_000,
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
            log: Log { filter: "info".into(), format: "text".into() },
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` (if given), then the environment, and validates the result.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, SettingsError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            fig = fig.merge(Toml::file_exact(file));
        }
        let fig = fig
            .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database.url".into()))
            .merge(Env::prefixed("MAILROOM_").split("__"));
        let settings: Settings = fig.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks ranges that types alone do not.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |field, problem| Err(SettingsError::Invalid { field, problem });
        use secrecy::ExposeSecret;
        let url = self.database.url.expose_secret();
        if !(url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return bad("database.url", "must start with postgres:// or postgresql://");
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "must be at least 1");
        }
        match self.vault.provider.as_str() {
            "local" => {}
            "aws-kms" if self.vault.aws.key_id.trim().is_empty() => {
                return bad(
                    "vault.aws.key_id",
                    "must name the KMS key (id, ARN or alias/...) with vault.provider = aws-kms",
                );
            }
            "aws-kms" => {}
            _ => return bad("vault.provider", "must be `local` or `aws-kms`"),
        }
        if self.vault.cache_ttl_secs == 0 || self.vault.cache_max_uses == 0 || self.vault.cache_max_entries == 0 {
            return bad("vault.cache_ttl_secs", "the key cache's TTL, uses and entries must all be positive");
        }
        if self.worker.concurrency == 0 || self.worker.concurrency > 1_000 {
            return bad("worker.concurrency", "must be 1 to 1000");
        }
        if self.worker.max_attempts == 0 {
            return bad("worker.max_attempts", "must be at least 1");
        }
        if self.worker.lease_secs < self.smtp.data_timeout_secs + self.smtp.command_timeout_secs {
            return bad(
                "worker.lease_secs",
                "must exceed smtp.data_timeout_secs + smtp.command_timeout_secs, or a live attempt could lose its lease",
            );
        }
        if self.worker.retry_base_secs == 0 || self.worker.retry_cap_secs < self.worker.retry_base_secs {
            return bad("worker.retry_cap_secs", "must be at least worker.retry_base_secs, which must be positive");
        }
        if self.reply.concurrency == 0 || self.reply.every_secs == 0 || self.reply.batch == 0 {
            return bad("reply.concurrency", "reply.concurrency, reply.every_secs and reply.batch must be positive");
        }
        if self.reply.lease_secs <= self.reply.imap_timeout_secs {
            return bad(
                "reply.lease_secs",
                "must exceed reply.imap_timeout_secs, or a live check could lose its mailbox",
            );
        }
        if self.api.max_batch == 0 || self.api.max_batch > 1_000 {
            return bad("api.max_batch", "must be 1 to 1000");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad("log.format", "must be `text` or `json`");
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bind_loopback() {
        let s = Settings::default();
        s.validate().unwrap();
        assert!(s.api.bind.ip().is_loopback());
    }

    #[test]
    fn an_out_of_range_value_names_its_field() {
        let mut s = Settings::default();
        s.worker.concurrency = 0;
        assert!(s.validate().unwrap_err().to_string().contains("`worker.concurrency`"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type.
    fn the_deploy_example_loads_and_aws_kms_needs_a_key_id() {
        figment::Jail::expect_with(|jail| {
            let example = include_str!("../../../deploy/mailroom.example.toml");
            jail.create_file("m.toml", example)?;
            jail.set_env("DATABASE_URL", "postgres://u@db/mailroom");
            let s = Settings::load(Some(std::path::Path::new("m.toml"))).unwrap();
            assert_eq!((s.vault.provider.as_str(), s.vault.aws.key_id.as_str()), ("aws-kms", "alias/mailroom"));
            jail.set_env("MAILROOM_VAULT__AWS__KEY_ID", "");
            let err = Settings::load(Some(std::path::Path::new("m.toml"))).unwrap_err().to_string();
            assert!(err.contains("vault.aws.key_id"), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type.
    fn a_file_value_of_the_wrong_type_names_its_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("m.toml", "[worker]\nconcurrency = \"many\"")?;
            let err = Settings::load(Some(std::path::Path::new("m.toml"))).unwrap_err().to_string();
            assert!(err.contains("concurrency"), "{err}");
            jail.set_env("MAILROOM_WORKER__CONCURRENCY", "7");
            jail.create_file("ok.toml", "")?;
            assert_eq!(Settings::load(Some(std::path::Path::new("ok.toml"))).unwrap().worker.concurrency, 7);
            Ok(())
        });
    }
}
