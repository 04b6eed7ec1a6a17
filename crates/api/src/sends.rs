//! `POST /v1/sends`, `POST /v1/sends/batch` and `GET /v1/sends/{id}`.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use mailroom_domain::{IdempotencyKey, MailboxId, MessageId, SendId, SendJob, WorkspaceId};
use mailroom_store::{
    PgConnection,
    mailboxes::{self, MailboxRow},
    queue,
    sends::{self, NewSend, Recorded, SendRow},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    ApiError, AppState, Code,
    auth::Auth,
    json::{ApiJson, ApiJsonParts},
    validate::{self, SendRequest, ValidSend},
    views::SendView,
};

fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, ApiError> {
    let raw = headers
        .get("idempotency-key")
        .ok_or_else(|| ApiError::new(Code::MissingIdempotencyKey, "the `Idempotency-Key` header is required"))?;
    let text = raw
        .to_str()
        .map_err(|_| ApiError::new(Code::InvalidIdempotencyKey, "the idempotency key must be printable ASCII"))?;
    IdempotencyKey::parse(text).map_err(|e| ApiError::new(Code::InvalidIdempotencyKey, e.to_string()))
}

/// How recording one send went.
enum Outcome {
    Created(SendRow),
    Replayed(SendRow),
}

/// Records one validated send in the caller's transaction. The caller pushes the job of a
/// created send, so a batch queues all of its jobs in one statement.
async fn record(
    conn: &mut PgConnection,
    state: &AppState,
    ws: WorkspaceId,
    key: &IdempotencyKey,
    v: &ValidSend,
    mailbox: &MailboxRow,
) -> Result<Outcome, ApiError> {
    // A disconnected mailbox takes no new sends; a replay of one it took before still answers.
    if mailbox.status == "disconnected" && !sends::key_exists(conn, ws, key).await? {
        return Err(ApiError::new(
            Code::MailboxDisconnected,
            "the mailbox was disconnected and its credentials destroyed; connect it again to send from it",
        ));
    }
    let mailbox_from = mailbox.from_address.as_str();
    let recipients: Vec<String> = v.message.recipients().map(|a| a.as_str().to_owned()).collect();
    crate::contacts::screen(conn, state, ws, &recipients).await?;
    let from = mailroom_domain::EmailAddress::parse(mailbox_from).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let message_id = MessageId::generate(&from);
    let threaded;
    let message = match v.in_reply_to {
        // A replay answers with the send recorded first, whatever became of its parent since.
        Some(parent) if !sends::key_exists(conn, ws, key).await? => {
            threaded = crate::thread::follow_up(conn, ws, parent, v).await?;
            &threaded
        }
        _ => &v.message,
    };
    let new = NewSend {
        id: SendId::new(),
        workspace: ws,
        mailbox: v.mailbox,
        key,
        payload_hash: &v.hash,
        payload: &serde_json::to_value(message).map_err(|e| ApiError::Internal(Box::new(e)))?,
        message_id: message_id.as_str(),
        send_at: v.send_at,
        metadata: v.metadata.as_ref(),
        sequence: v.sequence.as_deref(),
        stop_on: v.stop_on.as_deref(),
        in_reply_to: v.in_reply_to,
    };
    match sends::insert_or_replay(conn, &new).await? {
        Recorded::Created(row) => Ok(Outcome::Created(row)),
        Recorded::Replayed(row) => Ok(Outcome::Replayed(row)),
        Recorded::Conflict(row) => Err(ApiError::Conflict(format!(
            "idempotency key `{key}` was already used for a different request (send {})",
            row.send_id()
        ))),
    }
}

fn job_for(row: &SendRow) -> (SendJob, chrono::DateTime<Utc>) {
    let at = row.send_at.unwrap_or_else(Utc::now);
    (SendJob { send_id: row.send_id(), workspace_id: row.workspace() }, at)
}

/// `POST /v1/sends`.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SendRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let valid = validate::send(req, &state.limits)?;
    let mut tx = state.begin_enqueue(auth.workspace).await?;
    let mailbox = mailboxes::get(&mut tx, auth.workspace, valid.mailbox).await?.ok_or(ApiError::NotFound("mailbox"))?;
    match record(&mut tx, &state, auth.workspace, &key, &valid, &mailbox).await? {
        Outcome::Created(row) => {
            let priority = queue::fairness_priority(sends::backlog(&mut tx, auth.workspace).await?);
            queue::push_sends_with_priority(&mut tx, &[job_for(&row)], priority).await?;
            tx.commit().await?;
            tracing::info!(send.id = %row.send_id(), mailbox.id = %valid.mailbox, "send accepted");
            Ok((StatusCode::CREATED, Json(view(&row, false))).into_response())
        }
        Outcome::Replayed(row) => {
            let mut resp = (StatusCode::OK, Json(view(&row, true))).into_response();
            resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(resp)
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    // Read without the body-wide check for unstorable text (`ApiJsonParts`): each item is
    // checked on its own below, and `deny_unknown_fields` leaves no other field unchecked.
    // Kept as raw text, so one item that cannot be read (a lone surrogate, a NUL) is rejected
    // on its own while the good items are created.
    /// Up to 1,000 send requests (`SendRequest`), each with its own `idempotency_key`. Each item
    /// is checked on its own: one that is not a valid send is `rejected` in the results, with
    /// the error it would have had alone, and the others are created.
    #[schema(value_type = Vec<Value>)]
    items: Vec<Box<serde_json::value::RawValue>>,
}

/// One batch item, parsed: its key and its validated send.
fn parse_item(
    i: usize,
    item: &serde_json::value::RawValue,
    state: &AppState,
) -> Result<(IdempotencyKey, ValidSend), ApiError> {
    let at = format!("items[{i}]");
    let Value::Object(mut map) = crate::json::parse::<Value>(item.get(), &at)? else {
        return Err(ApiError::new(Code::InvalidItem, format!("`{at}` must be a JSON object")));
    };
    let key = match map.remove("idempotency_key") {
        Some(Value::String(k)) => {
            IdempotencyKey::parse(&k).map_err(|e| ApiError::new(Code::InvalidIdempotencyKey, e.to_string()))?
        }
        _ => {
            return Err(ApiError::new(Code::MissingIdempotencyKey, "each item needs an `idempotency_key` string"));
        }
    };
    let req: SendRequest = serde_path_to_error::deserialize(Value::Object(map))
        .map_err(|e| ApiError::new(Code::InvalidItem, crate::json::at(&at, &e.path().to_string(), e.inner())))?;
    Ok((key, validate::send(req, &state.limits)?))
}

/// `POST /v1/sends/batch`: up to 1,000 sends, each with its own key; answered per item.
pub(crate) async fn create_batch(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    ApiJsonParts(req): ApiJsonParts<BatchRequest>,
) -> Result<Json<Value>, ApiError> {
    let n = req.items.len();
    if n == 0 || n > state.limits.max_batch {
        return Err(ApiError::new(
            Code::InvalidBatchSize,
            format!("a batch holds 1 to {} items; this one has {n}", state.limits.max_batch),
        ));
    }
    let parsed: Vec<_> = req.items.iter().enumerate().map(|(i, item)| parse_item(i, item, &state)).collect();
    let mut results: Vec<Value> = parsed
        .iter()
        .map(|p| match p {
            Err(e) => json!({ "status": "rejected", "error": e.body() }),
            Ok(_) => Value::Null,
        })
        .collect();
    let created = record_batch(&state, auth.workspace, &parsed, &mut results).await?;
    tracing::info!(items = n, created, "batch accepted");
    for (i, r) in results.iter_mut().enumerate() {
        r["index"] = json!(i);
    }
    Ok(Json(json!({ "results": results })))
}

/// Records the valid items of a batch in one transaction, filling in their results; returns
/// how many sends were created.
async fn record_batch(
    state: &AppState,
    ws: WorkspaceId,
    parsed: &[Result<(IdempotencyKey, ValidSend), ApiError>],
    results: &mut [Value],
) -> Result<usize, ApiError> {
    // Insert in key order so two concurrent batches sharing keys cannot deadlock.
    let mut order: Vec<(usize, &IdempotencyKey, &ValidSend)> =
        parsed.iter().enumerate().filter_map(|(i, p)| p.as_ref().ok().map(|(k, v)| (i, k, v))).collect();
    order.sort_by(|a, b| a.1.as_str().cmp(b.1.as_str()));
    let mut tx = state.begin_enqueue(ws).await?;
    let mut senders: HashMap<MailboxId, Option<MailboxRow>> = HashMap::new();
    let mut jobs = vec![];
    for (i, key, valid) in order {
        if let std::collections::hash_map::Entry::Vacant(e) = senders.entry(valid.mailbox) {
            e.insert(mailboxes::get(&mut tx, ws, valid.mailbox).await?);
        }
        let outcome = match &senders[&valid.mailbox] {
            None => Err(ApiError::NotFound("mailbox")),
            Some(mailbox) => record(&mut tx, state, ws, key, valid, mailbox).await,
        };
        results[i] = match outcome {
            Ok(Outcome::Created(row)) => {
                jobs.push(job_for(&row));
                json!({ "status": "created", "send": view(&row, false) })
            }
            Ok(Outcome::Replayed(row)) => json!({ "status": "replayed", "send": view(&row, true) }),
            Err(ApiError::Internal(e)) => return Err(ApiError::Internal(e)),
            Err(e) => json!({ "status": "rejected", "error": e.body() }),
        };
    }
    let priority = queue::fairness_priority(sends::backlog(&mut tx, ws).await?);
    queue::push_sends_with_priority(&mut tx, &jobs, priority).await?;
    tx.commit().await?;
    Ok(jobs.len())
}

/// `GET /v1/sends/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<SendView>, ApiError> {
    let id: SendId = id.parse().map_err(|_| ApiError::NotFound("send"))?;
    let mut conn = state.begin(auth.workspace).await?;
    let row = sends::get(&mut conn, auth.workspace, id).await?.ok_or(ApiError::NotFound("send"))?;
    Ok(Json(view(&row, false)))
}

pub(crate) fn view(row: &SendRow, replayed: bool) -> SendView {
    SendView::of(row, replayed)
}
