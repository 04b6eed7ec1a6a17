//! The database roles the services run as: `mailroom_api`, `mailroom_send` and
//! `mailroom_reply`. None owns a table, none can bypass row-level security, and each holds
//! only the grants its service needs (see the `roles` migration): the reply worker cannot read
//! SMTP passwords, the send worker cannot write inbound messages, only the API writes API keys,
//! and the audit log takes inserts only. Migrations run as the owner.
//!
//! Roles are cluster-wide while migrations are per database: [`ensure`] creates the missing
//! ones before the migrations run (several databases migrating at once may race to create the
//! same role; the loser retries), and lets the migrating user act as them. Every service
//! connection then acts as its role from its first statement (the role is a startup
//! parameter), so a service holds its role's privileges even when it logs in as the owner; a
//! deployment that gives each service its own login user (a member of its role:
//! `deploy/sql/roles.sql`) loses nothing.

use std::{str::FromStr, time::Duration};

use sqlx::{Executor as _, PgPool, postgres::PgConnectOptions};

use crate::Result;

/// Which service a pool serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceRole {
    /// `mailroom serve`.
    Api,
    /// `mailroom worker send`.
    SendWorker,
    /// `mailroom worker reply`.
    ReplyWorker,
}

impl ServiceRole {
    /// Every service role.
    pub const ALL: [Self; 3] = [Self::Api, Self::SendWorker, Self::ReplyWorker];

    /// The role's name in PostgreSQL.
    pub fn name(self) -> &'static str {
        match self {
            Self::Api => "mailroom_api",
            Self::SendWorker => "mailroom_send",
            Self::ReplyWorker => "mailroom_reply",
        }
    }
}

/// Why the roles could not be made ready.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database role `{role}` does not exist and this user cannot create it; create the roles \
     with deploy/sql/roles.sql as a user that can, then run `mailroom migrate` again"
)]
pub struct RolesMissing {
    /// The first missing role.
    pub role: &'static str,
    /// The refusal.
    #[source]
    pub source: sqlx::Error,
}

/// Creates the service roles that are missing and makes the current user a member of each
/// (so it can `SET ROLE`), retrying the races of concurrent migrations.
pub async fn ensure(pool: &PgPool) -> Result<()> {
    for role in ServiceRole::ALL {
        let name = role.name();
        for attempt in 0.. {
            match ensure_one(pool, name).await {
                Ok(()) => break,
                Err(e) if attempt < 10 && raced(&e) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42501") => {
                    return Err(crate::StoreError::Roles(RolesMissing { role: name, source: e }));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn ensure_one(pool: &PgPool, name: &'static str) -> sqlx::Result<()> {
    let (exists, member): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
                CASE WHEN COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) THEN true
                     WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) THEN false
                     ELSE pg_has_role(current_user, $1, 'MEMBER') END",
    )
    .bind(name)
    .fetch_one(pool)
    .await?;
    // `name` is one of three constants: no quoting needed.
    if !exists {
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE ROLE {name} NOLOGIN NOINHERIT"))).await?;
    }
    if !member {
        pool.execute(sqlx::AssertSqlSafe(format!("GRANT {name} TO current_user"))).await?;
    }
    Ok(())
}

/// A concurrent migration created the role (or changed the catalog row) first.
fn raced(e: &sqlx::Error) -> bool {
    let code = e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned());
    matches!(code.as_deref(), Some("23505" | "42710" | "XX000" | "40001"))
}

/// Opens a pool for `role`. The role rides in the connection's startup parameters
/// (`options=-c role=...`), so every connection made from these options acts as it from its
/// first statement, including those of a pool or a listener built from `connect_options()`
/// (the send worker's queue pool, apalis's LISTEN connection).
pub async fn connect_as(url: &str, max_connections: u32, role: ServiceRole) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?.options([("role", role.name())]);
    Ok(crate::pool_options(max_connections).connect_with(options).await?)
}

/// The grants on the job queue's schema, made after the queue's own migrations create it.
pub(crate) async fn grant_queue(pool: &PgPool) -> Result<()> {
    pool.execute(
        "GRANT USAGE ON SCHEMA apalis TO mailroom_api, mailroom_send;
         GRANT SELECT, INSERT ON apalis.jobs TO mailroom_api;
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA apalis TO mailroom_send;",
    )
    .await?;
    Ok(())
}
