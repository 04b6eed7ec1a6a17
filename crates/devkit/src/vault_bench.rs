//! The vault benchmark: seals/s and opens/s with a cached workspace key, and the KMS calls an
//! AWS-KMS vault makes for N sends' credential opens spread over W workspaces (moto behind a
//! counting proxy). Prints figures; asserts nothing.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_vault::{
    AwsKmsProvider, AwsKmsSettings, CacheLimits, Field, LocalProvider, SealContext, Vault, WrappedKey,
};
use secrecy::SecretString;

use crate::{Peers, kms};

/// What to measure.
pub struct VaultPlan {
    /// Seal and open operations timed with a cached key.
    pub ops: usize,
    /// Credential opens (one per send) for the KMS-call count.
    pub sends: usize,
    /// Workspaces the sends are spread over.
    pub workspaces: usize,
    /// Opens in flight at once.
    pub concurrency: usize,
}

/// Runs the benchmark and returns its report lines (also printed by the binary).
pub async fn run(plan: VaultPlan) -> anyhow::Result<Vec<String>> {
    let mut report = cached_throughput(plan.ops).await?;
    report.extend(kms_calls(&plan).await?);
    Ok(report)
}

async fn cached_throughput(ops: usize) -> anyhow::Result<Vec<String>> {
    let vault = Vault::new(Arc::new(LocalProvider::from_bytes(rand::random())), CacheLimits::default());
    let ws = WorkspaceId::new();
    let key = vault.create_workspace_key(ws, 1).await?;
    let ctx = SealContext { workspace: ws, mailbox: MailboxId::new(), field: Field::SmtpPassword };
    let secret = SecretString::from("a-typical-app-password-of-24c");
    let sealed = vault.seal(&key, &ctx, &secret).await?;
    let started = Instant::now();
    for _ in 0..ops {
        vault.seal(&key, &ctx, &secret).await?;
    }
    let seal_rate = ops as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..ops {
        vault.open(&key, &ctx, &sealed).await?;
    }
    let open_rate = ops as f64 / started.elapsed().as_secs_f64();
    Ok(vec![
        format!("cached key, one task: {seal_rate:.0} seals/s, {open_rate:.0} opens/s ({ops} each)"),
        format!("key provider calls for those {} operations: {}", 2 * ops, vault.stats().provider_calls),
    ])
}

async fn kms_calls(plan: &VaultPlan) -> anyhow::Result<Vec<String>> {
    let peers = tokio::task::spawn_blocking(Peers::start).await??;
    let moto = SocketAddr::from(([127, 0, 0, 1], peers.info.kms_port));
    kms::wait_for_moto(moto).await?;
    let proxy = kms::KmsProxy::start(moto).await?;
    let direct =
        AwsKmsSettings { key_id: String::new(), region: "us-east-1".into(), endpoint: Some(format!("http://{moto}")) };
    let admin = AwsKmsProvider::static_client(&direct, "bench", "bench");
    let key_id = admin.create_key().send().await?.key_metadata().map(|m| m.key_id().to_owned()).unwrap_or_default();
    let settings = AwsKmsSettings { key_id, endpoint: Some(proxy.endpoint()), ..direct };
    let provider = || Arc::new(AwsKmsProvider::with_static_credentials(&settings, "bench", "bench"));
    // Seal one credential per workspace with one vault (the API), open them with another (a
    // worker starting cold), as the engine does.
    let api = Vault::new(provider(), CacheLimits::default());
    let mut creds: Vec<(WrappedKey, SealContext, Vec<u8>)> = vec![];
    for _ in 0..plan.workspaces {
        let ws = WorkspaceId::new();
        let key = api.create_workspace_key(ws, 1).await?;
        let ctx = SealContext { workspace: ws, mailbox: MailboxId::new(), field: Field::SmtpPassword };
        let sealed = api.seal(&key, &ctx, &SecretString::from("pw")).await?;
        creds.push((key, ctx, sealed));
    }
    let worker = Vault::new(provider(), CacheLimits::default());
    let creds = Arc::new(creds);
    let before = proxy.connections();
    let started = Instant::now();
    let per_task = plan.sends.div_ceil(plan.concurrency.max(1));
    let tasks: Vec<_> = (0..plan.concurrency.max(1))
        .map(|t| {
            let (worker, creds) = (worker.clone(), creds.clone());
            tokio::spawn(async move {
                for i in 0..per_task {
                    let (key, ctx, sealed) = &creds[(t * per_task + i) % creds.len()];
                    worker.open(key, ctx, sealed).await?;
                }
                Ok::<_, mailroom_vault::VaultError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let took = started.elapsed();
    let stats = worker.stats();
    drop(peers);
    Ok(vec![format!(
        "AWS KMS (moto): {} credential opens over {} workspaces, {} at a time, in {:.2} s: {} KMS Decrypt calls \
         ({:.1} per workspace), {} new connections to KMS, cache hits {} misses {}",
        per_task * plan.concurrency.max(1),
        plan.workspaces,
        plan.concurrency,
        took.as_secs_f64(),
        stats.provider_calls,
        stats.provider_calls as f64 / plan.workspaces as f64,
        proxy.connections() - before,
        stats.hits,
        stats.misses,
    )])
}
