//! Every SQL statement Mailroom runs, and the migrations that make its schema.
//!
//! Query functions take `&mut PgConnection` so the caller owns the transaction: a state change,
//! its event and the job it schedules commit together or not at all.
#![deny(missing_docs)]

pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod erasure;
pub mod events;
pub mod export;
pub mod grants;
pub mod keys;
pub mod mailbox_state;
pub mod mailboxes;
pub mod oauth;
pub mod pacing;
pub mod queue;
pub mod rate_limits;
pub mod replies;
pub mod roles;
pub mod scope;
pub mod secrets;
pub mod sends;
pub mod suppressions;
pub mod unusable;
pub mod usage;
pub mod webhooks;
pub mod workspaces;

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
pub use sqlx::{Error as SqlxError, PgConnection, PgPool, Postgres, Transaction};
pub use uuid::Uuid;

/// A storage failure. Keeps the driver's error as its source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not run a statement.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The job queue failed.
    #[error("job queue error")]
    Queue(#[from] apalis_postgres::Error),
    /// The service roles are missing and cannot be created.
    #[error(transparent)]
    Roles(#[from] roles::RolesMissing),
    /// A row holds a value the code does not understand (a bug or a newer schema).
    #[error("unexpected value in column `{column}`")]
    Corrupt {
        /// The column.
        column: &'static str,
    },
}

impl StoreError {
    /// Whether the statement lost a deadlock or a serialisation conflict: nothing was changed
    /// and the same transaction run again may pass.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => matches!(e.code().as_deref(), Some("40P01" | "40001")),
            _ => false,
        }
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Opens a connection pool.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    Ok(pool_options(max_connections).connect(url).await?)
}

/// A connection idle for less than this is handed out without a ping first.
const PING_AFTER_IDLE: Duration = Duration::from_secs(2);

/// The options of every pool: a connection is pinged before it is handed out only when it has
/// been idle for a while (as HikariCP's alive-bypass window does). A connection used a moment
/// ago is alive for all practical purposes, and every connection is pinged anyway on its way
/// back to the pool; the default, a ping on every acquire, costs each transaction a round
/// trip on the request's path.
pub(crate) fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Makes the service roles ready, then applies Mailroom's migrations (which grant each role
/// its privileges) and the job queue's own (in schema `apalis`), and grants on the queue.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    roles::ensure(pool).await?;
    sqlx::migrate!("../../migrations").run(pool).await?;
    apalis_postgres::PostgresStorage::setup(pool).await?;
    roles::grant_queue(pool).await?;
    Ok(())
}
