//! Periodic upkeep run by every send worker: pruning finished queue rows.
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
        let wait = ctx.config.prune_every.mul_f64(jitter);
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if let Err(e) = prune(&ctx).await {
            tracing::warn!(error = ?e, "pruning finished jobs failed; will try again");
        }
    }
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
