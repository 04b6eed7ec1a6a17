//! Creating and dropping whole databases (tests and tooling, never the request path).

use std::str::FromStr;

use sqlx::{
    AssertSqlSafe, Connection, PgConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{PgPool, Result};

/// A database name safe to splice into DDL (which cannot take bind parameters).
fn checked_name(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok { Ok(name) } else { Err(crate::StoreError::Corrupt { column: "database name" }) }
}

/// Creates database `name` on the server of `url`.
pub async fn create_database(url: &str, name: &str) -> Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    let sql = format!("CREATE DATABASE \"{}\"", checked_name(name)?);
    sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await?;
    Ok(())
}

/// Drops database `name`, disconnecting anyone still using it.
pub async fn drop_database(url: &str, name: &str) -> Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", checked_name(name)?);
    sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await?;
    Ok(())
}

/// A pool on database `name` of the server of `url`.
pub async fn connect_to(url: &str, name: &str, max_connections: u32) -> Result<PgPool> {
    let opts = PgConnectOptions::from_str(url)?.database(name);
    Ok(PgPoolOptions::new().max_connections(max_connections).connect_with(opts).await?)
}

/// Runs a `SELECT count(*) ...` and returns the count (tests' assertions on stored state).
pub async fn scalar_count(pool: &PgPool, sql: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(AssertSqlSafe(sql.to_owned())).fetch_one(pool).await?)
}

/// One text column of a query's rows (tests and benchmarks reading what the engine wrote).
pub async fn scalar_strings(pool: &PgPool, sql: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(AssertSqlSafe(sql.to_owned())).fetch_all(pool).await?)
}

/// Runs one statement (tests that stage a fault, such as a lost queue row).
pub async fn execute(pool: &PgPool, sql: &str) -> Result<u64> {
    Ok(sqlx::query(AssertSqlSafe(sql.to_owned())).execute(pool).await?.rows_affected())
}

/// [`scalar_count`] on one connection (a test's query inside a transaction it opened).
pub async fn scalar_count_on(conn: &mut PgConnection, sql: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(AssertSqlSafe(sql.to_owned())).fetch_one(conn).await?)
}

/// [`execute`] on one connection.
pub async fn execute_on(conn: &mut PgConnection, sql: &str) -> Result<u64> {
    Ok(sqlx::query(AssertSqlSafe(sql.to_owned())).execute(conn).await?.rows_affected())
}
