//! Operator actions shared by the API and the CLI: resolving ambiguous sends.

use mailroom_domain::{SendId, WorkspaceId};
use mailroom_store::{
    PgPool, events, queue,
    sends::{self, Resolution, SendRow},
};

use crate::{ApiError, Code, provision::Actor};

/// Parses `mark-sent`, `resend` or `cancel` (underscores accepted too).
pub fn parse_resolution(action: &str) -> Result<Resolution, ApiError> {
    match action.replace('_', "-").as_str() {
        "mark-sent" => Ok(Resolution::MarkSent),
        "resend" => Ok(Resolution::Resend),
        "cancel" => Ok(Resolution::Cancel),
        _ => Err(ApiError::new(Code::InvalidField, "`action` must be one of mark-sent, resend, cancel")),
    }
}

/// Resolves an ambiguous send, with its event, its job (for `resend`) and an audit record, in
/// one transaction.
pub async fn resolve(
    pool: &PgPool,
    ws: WorkspaceId,
    id: SendId,
    r: Resolution,
    actor: &Actor<'_>,
    note: &str,
) -> Result<SendRow, ApiError> {
    let mut tx = mailroom_store::scope::begin(pool, ws).await?;
    let what = format!("resolved by {}: {r:?}{}{note}", actor.name, if note.is_empty() { "" } else { ": " });
    let Some(row) = sends::resolve(&mut tx, ws, id, r, &what).await? else {
        return match sends::get(&mut tx, ws, id).await? {
            None => Err(ApiError::NotFound("send")),
            Some(s) => Err(ApiError::new(
                Code::SendNotAmbiguous,
                format!("send {id} is `{}`, not `ambiguous`: only an ambiguous send is resolved", s.state),
            )),
        };
    };
    let kind = match r {
        Resolution::MarkSent => Some("send.sent"),
        Resolution::Cancel => Some("send.cancelled"),
        Resolution::Resend => None,
    };
    if let Some(kind) = kind {
        let data = serde_json::json!({ "message_id": row.message_id, "resolution": what });
        let e = events::NewEvent { workspace: ws, kind, send: Some(id), mailbox: Some(row.mailbox()), data };
        events::insert(&mut tx, &e).await?;
    }
    if r == Resolution::Resend {
        queue::reschedule(&mut tx, &row, chrono::Utc::now()).await?;
    }
    mailroom_store::audit::record(&mut tx, Some(ws), actor, &format!("send.resolve.{r:?}"), Some(&id.to_string()))
        .await?;
    tx.commit().await?;
    tracing::info!(send.id = %id, resolution = ?r, "ambiguous send resolved");
    Ok(row)
}
