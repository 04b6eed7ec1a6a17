//! Opening the vault a process will use, and proving before it serves that the vault opens
//! what the database holds. A local master-key file is created only on a database that holds
//! no workspace key yet; anything else that does not fit refuses to start, naming the
//! configured key, the one the database expects, and the fix.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use mailroom_keyring::check::{self, CheckError, MasterKeyUse};
use mailroom_store::PgPool;
use mailroom_vault::{AwsKmsProvider, CacheLimits, KeyProvider, LocalProvider, Vault};

use crate::settings::Settings;

/// The vault, checked against the database (see the module documentation).
pub async fn checked(s: &Settings, pool: &PgPool) -> anyhow::Result<Vault> {
    let vault = open(s, pool).await?;
    let uses = check::master_keys(pool, &vault).await.map_err(|e| explain(s, &vault, e))?;
    for u in &uses {
        tracing::info!(master_key = %u.master, workspace_keys = u.keys, "vault check: the master key opens its workspace keys");
    }
    if uses.is_empty() {
        tracing::info!(master_key = %configured(s), "vault check: no workspace key stored yet");
    }
    Ok(vault)
}

/// The check alone, for `mailroom config check`: what it proved, or why it failed. Creates
/// nothing: a missing key file on an empty database is reported as what the first start will
/// create (`None`).
pub async fn report(s: &Settings, pool: &PgPool) -> anyhow::Result<Option<Vec<MasterKeyUse>>> {
    let missing_file = s.vault.provider != "aws-kms" && !s.vault.master_key_file.exists();
    if missing_file && !check::database_has_keys(pool).await.context("cannot read the stored workspace keys")? {
        return Ok(None);
    }
    let vault = open(s, pool).await?;
    check::master_keys(pool, &vault).await.map(Some).map_err(|e| explain(s, &vault, e))
}

async fn open(s: &Settings, pool: &PgPool) -> anyhow::Result<Vault> {
    let v = &s.vault;
    let provider: Arc<dyn KeyProvider> = match v.provider.as_str() {
        "aws-kms" => Arc::new(aws_kms(&v.aws).await),
        _ => Arc::new(local(s, pool).await?),
    };
    let limits = CacheLimits {
        ttl: Duration::from_secs(v.cache_ttl_secs),
        max_uses: v.cache_max_uses,
        max_entries: v.cache_max_entries,
    };
    Ok(Vault::new(provider, limits))
}

/// The local master key: read from its file; created only when the database holds no key.
async fn local(s: &Settings, pool: &PgPool) -> anyhow::Result<LocalProvider> {
    let v = &s.vault;
    let path = &v.master_key_file;
    let mut local = if path.exists() {
        LocalProvider::open(path)?
    } else if check::database_has_keys(pool).await.context("cannot read the stored workspace keys")? {
        anyhow::bail!(
            "vault.master_key_file {} does not exist, but the database already holds workspace keys: a new master \
             key would open none of them. Point vault.master_key_file at the file that wrapped them (relative paths \
             resolve against {}); Mailroom creates a master key by itself only for an empty database \
             (`mailroom keys create-master-key` makes one on purpose)",
            path.display(),
            s.base_dir().display()
        );
    } else {
        LocalProvider::open_or_create(path)?
    };
    for old in &v.previous_master_key_files {
        local = local.with_previous(LocalProvider::open(old).context("vault.previous_master_key_files")?);
    }
    Ok(local)
}

/// The AWS KMS provider, with credentials and region from the standard AWS sources.
async fn aws_kms(a: &crate::settings::AwsKms) -> AwsKmsProvider {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(AwsKmsProvider::http_client());
    if !a.region.is_empty() {
        loader = loader.region(aws_config::Region::new(a.region.clone()));
    }
    if let Some(endpoint) = &a.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let conf = loader.load().await;
    AwsKmsProvider::new(aws_sdk_kms::Client::new(&conf), a.key_id.clone())
}

/// The configured master key, as an operator wrote it.
fn configured(s: &Settings) -> String {
    match s.vault.provider.as_str() {
        "aws-kms" => format!("vault.aws.key_id = {} (region {:?})", s.vault.aws.key_id, s.vault.aws.region),
        _ => format!("vault.master_key_file = {}", s.vault.master_key_file.display()),
    }
}

/// A failed check as an operator needs to read it: what is configured, what the database
/// expects, and how to fix it.
fn explain(s: &Settings, vault: &Vault, e: CheckError) -> anyhow::Error {
    let held = format!("{}:{}", vault.provider_name(), vault.master_key_id());
    let fix = match &e {
        CheckError::Foreign { .. } => {
            "point the vault settings at the master key that wrapped them (for a master-key change, keep the old one \
             in vault.previous_master_key_files and run `mailroom keys rewrap --all`)"
        }
        CheckError::Provider(_) | CheckError::Unwrap { .. } => {
            "check the key id, its region, and that this process's role may use it (kms:DescribeKey, kms:Decrypt)"
        }
        CheckError::Store(_) => "check database.url, and that `mailroom migrate` has run",
    };
    anyhow::Error::new(e).context(format!(
        "the vault check failed; this process will not start. Configured: {} (holds `{held}`). Fix: {fix}",
        configured(s)
    ))
}
