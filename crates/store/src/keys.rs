//! Wrapped workspace data keys (`workspace_keys`) and their life cycle: pending → active →
//! retired → destroyed (docs/design.md section 2).

use mailroom_domain::WorkspaceId;
use sqlx::PgConnection;

use crate::Result;

/// A wrapped workspace key as stored.
#[derive(Clone, sqlx::FromRow)]
pub struct WorkspaceKeyRow {
    /// The workspace.
    pub workspace_id: uuid::Uuid,
    /// The key version.
    pub version: i32,
    /// The key wrapped by the master key; gone once destroyed.
    pub wrapped_key: Option<Vec<u8>>,
    /// The provider that wrapped it.
    pub provider: String,
    /// The master key's id at that provider.
    pub kms_key_id: String,
    /// `pending`, `active`, `retired` or `destroyed`.
    pub state: String,
}

/// A key version and how many sealed values use it (`mailroom keys status`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyStatusRow {
    /// The workspace.
    pub workspace_id: uuid::Uuid,
    /// The version.
    pub version: i32,
    /// Its state.
    pub state: String,
    /// The provider that wrapped it.
    pub provider: String,
    /// The master key that wrapped it.
    pub kms_key_id: String,
    /// When a pending key becomes active.
    pub activate_after: Option<chrono::DateTime<chrono::Utc>>,
    /// When its state last changed.
    pub state_changed_at: chrono::DateTime<chrono::Utc>,
    /// Sealed values under it.
    pub sealed_values: i64,
}

/// Up to `per_master` live wrapped keys of each master key the database uses (active ones
/// first, of different workspaces), with how many keys that master key wraps: the start-up
/// check unwraps them until one opens.
pub async fn master_key_samples(conn: &mut PgConnection, per_master: i64) -> Result<Vec<(WorkspaceKeyRow, i64)>> {
    // Across workspaces, through `mailroom_master_key_samples`.
    let rows: Vec<MasterKeySample> = sqlx::query_as(
        "SELECT workspace_id, version, wrapped_key, provider, kms_key_id, state, wrapped
         FROM mailroom_master_key_samples($1)",
    )
    .bind(per_master)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.key, r.wrapped)).collect())
}

#[derive(sqlx::FromRow)]
struct MasterKeySample {
    #[sqlx(flatten)]
    key: WorkspaceKeyRow,
    wrapped: i64,
}

/// Stores a new wrapped key.
pub async fn insert(conn: &mut PgConnection, row: &WorkspaceKeyRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO workspace_keys (workspace_id, version, wrapped_key, provider, kms_key_id, state)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(row.workspace_id)
    .bind(row.version)
    .bind(&row.wrapped_key)
    .bind(&row.provider)
    .bind(&row.kms_key_id)
    .bind(&row.state)
    .execute(conn)
    .await?;
    Ok(())
}

/// The workspace's active key, used for sealing.
pub async fn active(conn: &mut PgConnection, workspace: WorkspaceId) -> Result<Option<WorkspaceKeyRow>> {
    Ok(sqlx::query_as("SELECT * FROM workspace_keys WHERE workspace_id = $1 AND state = 'active'")
        .bind(workspace.as_uuid())
        .fetch_optional(conn)
        .await?)
}

/// A specific key version (named by a sealed value's header), unless destroyed.
pub async fn version(conn: &mut PgConnection, workspace: WorkspaceId, version: i32) -> Result<Option<WorkspaceKeyRow>> {
    Ok(sqlx::query_as("SELECT * FROM workspace_keys WHERE workspace_id = $1 AND version = $2 AND state <> 'destroyed'")
        .bind(workspace.as_uuid())
        .bind(version)
        .fetch_optional(conn)
        .await?)
}

/// Adds the next version of a workspace's key as `pending` until `activate_after`. Returns
/// the version, or `None` when a rotation of this workspace is already under way.
pub async fn add_pending(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    version: i32,
    wrapped: &WorkspaceKeyRow,
    activate_after: chrono::DateTime<chrono::Utc>,
) -> Result<Option<i32>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO workspace_keys (workspace_id, version, wrapped_key, provider, kms_key_id, state, activate_after)
         SELECT $1, $2, $3, $4, $5, 'pending', $6
         WHERE NOT EXISTS (SELECT 1 FROM workspace_keys WHERE workspace_id = $1 AND state = 'pending')
           AND $2 = (SELECT max(version) + 1 FROM workspace_keys WHERE workspace_id = $1)
         ON CONFLICT DO NOTHING
         RETURNING version",
    )
    .bind(ws.as_uuid())
    .bind(version)
    .bind(&wrapped.wrapped_key)
    .bind(&wrapped.provider)
    .bind(&wrapped.kms_key_id)
    .bind(activate_after)
    .fetch_optional(conn)
    .await?)
}

/// The highest version a workspace has.
pub async fn latest_version(conn: &mut PgConnection, ws: WorkspaceId) -> Result<Option<i32>> {
    Ok(sqlx::query_scalar("SELECT max(version) FROM workspace_keys WHERE workspace_id = $1")
        .bind(ws.as_uuid())
        .fetch_one(conn)
        .await?)
}

/// Makes every pending key whose wait is over active, retiring the version it replaces.
/// Returns the `(workspace, version)` pairs activated. Run in a transaction.
pub async fn activate_due(conn: &mut PgConnection) -> Result<Vec<(uuid::Uuid, i32)>> {
    // Retire first: the one-active-key index is checked row by row.
    sqlx::query(
        "UPDATE workspace_keys k SET state = 'retired', state_changed_at = now()
         WHERE k.state = 'active' AND EXISTS (
             SELECT 1 FROM workspace_keys p WHERE p.workspace_id = k.workspace_id
               AND p.state = 'pending' AND p.activate_after <= now())",
    )
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query_as(
        "UPDATE workspace_keys SET state = 'active', state_changed_at = now(), activate_after = NULL
         WHERE state = 'pending' AND activate_after <= now()
         RETURNING workspace_id, version",
    )
    .fetch_all(conn)
    .await?)
}

/// Destroys retired keys that no sealed value uses any more and that were retired at least
/// `grace` ago (a connect that read the old active key just before the switch has finished
/// writing by then). Returns the `(workspace, version)` pairs destroyed.
pub async fn destroy_unused_retired(conn: &mut PgConnection, grace_secs: f64) -> Result<Vec<(uuid::Uuid, i32)>> {
    Ok(sqlx::query_as(
        "UPDATE workspace_keys k SET state = 'destroyed', wrapped_key = NULL, state_changed_at = now()
         WHERE k.state = 'retired' AND k.state_changed_at < now() - make_interval(secs => $1)
           AND NOT EXISTS (SELECT 1 FROM mailbox_secrets s
                           WHERE s.workspace_id = k.workspace_id AND s.key_version = k.version)
           AND NOT EXISTS (SELECT 1 FROM webhooks w
                           WHERE w.workspace_id = k.workspace_id AND w.deleted_at IS NULL
                             AND (w.key_version = k.version
                                  OR (w.previous_key_version = k.version AND w.previous_until > now())))
           AND NOT EXISTS (SELECT 1 FROM workspace_secrets x
                           WHERE x.workspace_id = k.workspace_id AND x.key_version = k.version)
         RETURNING workspace_id, version",
    )
    .bind(grace_secs)
    .fetch_all(conn)
    .await?)
}

/// Live (not destroyed) keys after the cursor `(workspace, version)`, in order, a page at a time.
pub async fn live_page(
    conn: &mut PgConnection,
    after: Option<(uuid::Uuid, i32)>,
    limit: i64,
) -> Result<Vec<WorkspaceKeyRow>> {
    let (ws, version) = after.unwrap_or((uuid::Uuid::nil(), 0));
    Ok(sqlx::query_as(
        "SELECT * FROM workspace_keys WHERE state <> 'destroyed' AND (workspace_id, version) > ($1, $2)
         ORDER BY workspace_id, version LIMIT $3",
    )
    .bind(ws)
    .bind(version)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Replaces a key's wrapping if it is still `old` (compare-and-swap). Returns whether it did.
pub async fn replace_wrapping(conn: &mut PgConnection, old: &WorkspaceKeyRow, new: &WorkspaceKeyRow) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE workspace_keys SET wrapped_key = $4, provider = $5, kms_key_id = $6
         WHERE workspace_id = $1 AND version = $2 AND wrapped_key = $3 AND state <> 'destroyed'",
    )
    .bind(old.workspace_id)
    .bind(old.version)
    .bind(&old.wrapped_key)
    .bind(&new.wrapped_key)
    .bind(&new.provider)
    .bind(&new.kms_key_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every key version of one workspace, or of all, with the sealed values under each.
pub async fn status(conn: &mut PgConnection, ws: Option<WorkspaceId>) -> Result<Vec<KeyStatusRow>> {
    Ok(sqlx::query_as(
        "SELECT k.workspace_id, k.version, k.state, k.provider, k.kms_key_id, k.activate_after, k.state_changed_at,
                (SELECT count(*) FROM mailbox_secrets s
                 WHERE s.workspace_id = k.workspace_id AND s.key_version = k.version) AS sealed_values
         FROM workspace_keys k WHERE $1::uuid IS NULL OR k.workspace_id = $1
         ORDER BY k.workspace_id, k.version",
    )
    .bind(ws.map(|w| w.as_uuid()))
    .fetch_all(conn)
    .await?)
}

/// Destroys every key of a workspace: nothing sealed under them can be opened again.
/// Returns how many were destroyed.
pub async fn destroy_all(conn: &mut PgConnection, ws: WorkspaceId) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE workspace_keys SET state = 'destroyed', wrapped_key = NULL, activate_after = NULL,
            state_changed_at = now()
         WHERE workspace_id = $1 AND state <> 'destroyed'",
    )
    .bind(ws.as_uuid())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
