//! Periodic upkeep run by every send worker: re-queueing orphaned sends, pruning finished
//! queue rows, folding usage counters, and advancing workspace-key rotations (activate,
//! re-seal, destroy).
//!
//! The sweep is the last line of "never silently drop": a send that is due (or leased by a
//! worker long dead) but has no live queue job, because apalis killed the job after too many
//! failed runs or the job row was lost, gets a new job. Concurrent sweepers skip each other's
//! rows.
//!
//! apalis never deletes a finished job; without this the queue table grows by one row per
//! attempt for ever. Every worker prunes (a `DELETE` of old rows is idempotent), with jitter so
//! a fleet started together does not prune in lockstep. Ledger rows are kept: they hold the
//! idempotency keys.

use std::sync::Arc;

use chrono::Utc;
use rand::Rng;
use tokio::sync::watch;

use crate::Ctx;

pub(crate) async fn run(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    loop {
        let jitter = rand::rng().random_range(0.5..1.5);
        let wait = ctx.config.housekeeping_every.mul_f64(jitter);
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if let Err(e) = sweep(&ctx).await {
            tracing::warn!(error = ?e, "sweeping for orphaned sends failed; will try again");
        }
        if let Err(e) = prune(&ctx).await {
            tracing::warn!(error = ?e, "pruning finished jobs failed; will try again");
        }
        if let Err(e) = fold_usage(&ctx).await {
            tracing::warn!(error = ?e, "folding usage counters failed; will try again");
        }
        let v = ctx.vault.stats();
        tracing::debug!(provider_calls = v.provider_calls, hits = v.hits, misses = v.misses, "vault key cache");
        if let Err(e) = mailroom_keyring::rotate::advance(&ctx.pool, &ctx.vault, ctx.config.key_grace, 100).await {
            tracing::warn!(error = %e, "advancing key rotations failed; will try again");
        }
    }
}

async fn sweep(ctx: &Ctx) -> anyhow::Result<()> {
    let cutoff =
        Utc::now() - chrono::Duration::from_std(ctx.config.sweep_after).unwrap_or(chrono::Duration::minutes(5));
    let mut tx = ctx.pool.begin().await?;
    let orphans = mailroom_store::queue::orphaned_sends(&mut tx, cutoff, 1_000).await?;
    if orphans.is_empty() {
        return Ok(());
    }
    mailroom_store::queue::requeue(&mut tx, &orphans, Utc::now()).await?;
    tx.commit().await?;
    tracing::warn!(count = orphans.len(), "re-queued sends whose queue job was lost");
    Ok(())
}

/// Folds the ledger's usage deltas into per-day rows, so reading usage stays cheap.
async fn fold_usage(ctx: &Ctx) -> anyhow::Result<()> {
    let mut conn = ctx.pool.acquire().await?;
    while mailroom_store::usage::fold(&mut conn, 10_000).await? == 10_000 {}
    Ok(())
}

async fn prune(ctx: &Ctx) -> anyhow::Result<()> {
    let cutoff = Utc::now() - chrono::Duration::from_std(ctx.config.prune_after).unwrap_or(chrono::Duration::hours(1));
    let mut conn = ctx.pool.acquire().await?;
    let removed = mailroom_store::queue::prune_finished(&mut conn, cutoff).await?;
    if removed > 0 {
        tracing::info!(removed, "pruned finished jobs");
    }
    Ok(())
}
