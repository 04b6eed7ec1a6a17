//! The send worker.
//!
//! Pulls [`SendJob`]s from the apalis-postgres queue and drives each send through the ledger:
//! claim (a conditional update with a lease), open the mailbox's credential only if a new SMTP
//! session is needed, deliver, and record the verdict, its event and any follow-up job in one
//! transaction. Retries are rescheduled as new jobs with backoff, never left to apalis's
//! immediate re-fetch.
#![deny(missing_docs)]

mod attempt;
mod housekeeping;
mod job;
mod outcome;
mod pace;
mod reconcile;
mod secrets;

use std::{future::Future, sync::Arc, time::Duration};

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use mailroom_domain::{SendJob, backoff::Backoff};
use mailroom_store::PgPool;
use mailroom_transport::{SessionPool, SmtpSettings};
use mailroom_vault::Vault;
use sqlx::postgres::PgPoolOptions;

/// Interruptions of one send's handling (worker deaths while it was held, Sent folder searches
/// that could not be made) before it is settled as ambiguous. Reconciliation only reads, so it
/// may be retried many times; delivery attempts have their own, lower cap.
pub(crate) const MAX_RECOVERIES: i32 = 20;

/// How the send worker behaves.
#[derive(Clone)]
pub struct SendWorkerConfig {
    /// This process's worker name: unique per process, or a dead twin's jobs are never rescued.
    pub name: String,
    /// Jobs handled at once.
    pub concurrency: usize,
    /// How long a claimed send belongs to its worker.
    pub lease: Duration,
    /// Attempts before a transiently failing send is given up.
    pub max_attempts: u32,
    /// Age after which a transiently failing send is given up.
    pub max_age: Duration,
    /// Delays between transient retries.
    pub retry_backoff: Backoff,
    /// Mailbox pauses after a throttle answer with no hint.
    pub throttle_backoff: Backoff,
    /// Mailbox pause after a daily-quota answer.
    pub quota_pause: Duration,
    /// How long after an uncertain attempt its Sent folder is searched (time for the provider
    /// to file the message).
    pub reconcile_delay: Duration,
    /// How often the worker looks for jobs that became due (pub/sub wakes it for new ones).
    pub poll_interval: Duration,
    /// apalis heartbeat: orphaned jobs of a dead worker are re-queued after ten of these.
    pub heartbeat: Duration,
    /// Finished queue rows older than this are deleted (the ledger keeps its own rows).
    pub prune_after: Duration,
    /// A due send with no live queue job for this long gets a new job.
    pub sweep_after: Duration,
    /// How often to sweep and prune.
    pub housekeeping_every: Duration,
    /// How long a retired key version stays (unused) before it is destroyed.
    pub key_grace: Duration,
    /// SMTP client settings.
    pub smtp: SmtpSettings,
    /// OAuth providers, for refreshing access tokens.
    pub oauth: mailroom_keyring::oauth_config::OAuthSettings,
}

/// What every job needs, shared by all of them.
pub(crate) struct Ctx {
    pub(crate) pool: PgPool,
    pub(crate) vault: Vault,
    pub(crate) sessions: SessionPool,
    pub(crate) config: SendWorkerConfig,
    /// Provider (KMS, OAuth token endpoint) failures in a row, driving how long sends wait.
    pub(crate) provider_failures: std::sync::atomic::AtomicU32,
}

/// Runs the send worker until `shutdown` completes, then lets jobs in flight finish.
pub async fn run(
    pool: PgPool,
    vault: Vault,
    config: SendWorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The queue gets connections of its own: jobs waiting for the shared pool must never stop
    // the worker from fetching, acknowledging and heartbeating (missed heartbeats would make
    // apalis re-queue live jobs as orphans).
    let queue_pool = PgPoolOptions::new().max_connections(4).connect_with((*pool.connect_options()).clone()).await?;
    let name = config.name.clone();
    let ctx = Arc::new(Ctx {
        sessions: SessionPool::new(config.smtp.clone()),
        pool,
        vault,
        config,
        provider_failures: Default::default(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let housekeeping = tokio::spawn(housekeeping::run(ctx.clone(), stop_rx.clone()));
    // apalis stops a worker when its backend fails (the database restarted, say). Start it
    // again under a new name, so the jobs the failed instance held are seen as orphans and
    // re-queued, instead of exiting and waiting for a supervisor.
    for generation in 0.. {
        let instance = if generation == 0 { name.clone() } else { format!("{name}-r{generation}") };
        let result = run_queue_worker(&ctx, &queue_pool, &instance, stop_rx.clone()).await;
        if *stop_rx.borrow() {
            break;
        }
        if let Err(e) = result {
            tracing::error!(worker.name = %instance, error = %e, "the queue failed; restarting the worker in 2 s");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let _ = housekeeping.await;
    tracing::info!(worker.name = %name, "send worker stopped");
    Ok(())
}

/// One apalis worker instance, until `stop` turns true or its backend fails.
async fn run_queue_worker(
    ctx: &Arc<Ctx>,
    queue_pool: &PgPool,
    name: &str,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let c = &ctx.config;
    let queue = Config::default()
        .queue(SendJob::QUEUE)
        .batch_size(c.concurrency.max(1))
        .heartbeat_interval(c.heartbeat)
        .missed_heartbeats(10);
    let backend = PostgresStorage::<SendJob>::new(queue_pool)
        .with_config(queue)
        .with_pubsub()
        .poll_with_interval(c.poll_interval);
    let concurrency = c.concurrency.max(1);
    tracing::info!(worker.name = %name, concurrency, "send worker started");
    let worker =
        WorkerBuilder::new(name).backend(backend).data(ctx.clone()).concurrency(concurrency).build(job::handle);
    worker
        .run_until(async move {
            let _ = stop.wait_for(|s| *s).await;
            Ok::<(), WorkerError>(())
        })
        .await
}
