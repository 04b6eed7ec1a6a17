//! `GET /v1/export`: a workspace's data, streamed: its sends (ledger states, timestamps and
//! metadata, never a body), published events, mailboxes (never a secret), suppression list and
//! audit trail, read in one snapshot.
//!
//! JSON lines by default, one `{"type", "data"}` object per row and a last `{"type": "end"}`
//! line with the counts, so a reader knows it got everything; or `format=csv&table=...`, one
//! table with a header line. Rows are written as the database returns them into a channel of
//! a few 64 KiB chunks that the response body drains: a slow reader holds the database back
//! instead of the server buffering, and memory stays bounded whatever the workspace's size.
//! A failure mid-way aborts the response, so a cut export never looks complete; so does a
//! reader that takes nothing for [`STALL`] (its database connection is freed).
//!
//! Each export is audited (`export.read`, with its format) before it starts. `export:read`
//! reads every table of the workspace, audit trail included, whatever read scopes the key
//! lacks: it is an owner's or admin's scope. CSV cells that a spreadsheet would run as a
//! formula (text starting with `=`, `+`, `-`, `@`, a tab or a carriage return) are prefixed with
//! `'`; JSON lines are exact.

use std::{io, sync::Arc};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use futures::{StreamExt, stream::BoxStream};
use mailroom_domain::WorkspaceId;
use mailroom_store::{StoreError, export, scope::Scoped};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::Instrument;

use crate::{ApiError, AppState, Code, auth::Auth, json::ApiQuery};

/// Exports one process streams at once.
const SLOTS: usize = 2;
/// Bytes gathered before a chunk is handed to the response.
const CHUNK: usize = 64 * 1024;
/// Chunks waiting for the reader, at most.
const QUEUED: usize = 4;
/// How long a reader may take no chunk before the export is cut.
const STALL: std::time::Duration = std::time::Duration::from_secs(60);

/// The export slots of a process.
#[derive(Clone)]
pub struct Slots(Arc<Semaphore>);

impl Default for Slots {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(SLOTS)))
    }
}

/// One table of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Sends,
    Events,
    Mailboxes,
    Suppressions,
    Audit,
}

impl Table {
    const ALL: [Table; 5] = [Table::Sends, Table::Events, Table::Mailboxes, Table::Suppressions, Table::Audit];

    fn name(self) -> &'static str {
        match self {
            Table::Sends => "sends",
            Table::Events => "events",
            Table::Mailboxes => "mailboxes",
            Table::Suppressions => "suppressions",
            Table::Audit => "audit",
        }
    }

    /// The `type` of one of its rows in JSON lines.
    fn row_type(self) -> &'static str {
        match self {
            Table::Sends => "send",
            Table::Events => "event",
            Table::Mailboxes => "mailbox",
            Table::Suppressions => "suppression",
            Table::Audit => "audit",
        }
    }
}

/// `GET /v1/export?format=jsonl|csv&table=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportQuery {
    format: Option<String>,
    table: Option<String>,
}

enum Format {
    Lines,
    Csv(Table),
}

fn format(q: &ExportQuery) -> Result<Format, ApiError> {
    let table = q
        .table
        .as_deref()
        .map(|t| {
            Table::ALL.into_iter().find(|x| x.name() == t).ok_or_else(|| {
                ApiError::new(Code::InvalidQuery, "`table` must be sends, events, mailboxes, suppressions or audit")
            })
        })
        .transpose()?;
    match (q.format.as_deref().unwrap_or("jsonl"), table) {
        ("jsonl", None) => Ok(Format::Lines),
        ("jsonl", Some(_)) => Err(ApiError::new(Code::InvalidQuery, "JSON lines hold every table; drop `table`")),
        ("csv", Some(t)) => Ok(Format::Csv(t)),
        ("csv", None) => Err(ApiError::new(Code::InvalidQuery, "CSV holds one table: add `table=sends` (or ...)")),
        _ => Err(ApiError::new(Code::InvalidQuery, "`format` must be jsonl or csv")),
    }
}

/// `GET /v1/export`: streams the export (see the module's documentation).
pub(crate) async fn export(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = format(&q)?;
    let permit = state.exports.0.clone().try_acquire_owned().map_err(|e| ApiError::Unavailable {
        code: Code::ExportsBusy,
        message: format!("{SLOTS} exports are already streaming from this server; try again when one ends"),
        source: Box::new(e),
    })?;
    let what = match &format {
        Format::Lines => "jsonl".to_owned(),
        Format::Csv(t) => format!("csv {}", t.name()),
    };
    let mut audit = state.begin(auth.workspace).await?;
    mailroom_store::audit::record(&mut audit, Some(auth.workspace), &auth.actor(), "export.read", Some(&what)).await?;
    audit.commit().await?;
    let tx = mailroom_store::scope::begin_snapshot(&state.pool, auth.workspace).await?;
    let (sender, receiver) = mpsc::channel::<Result<Bytes, io::Error>>(QUEUED);
    let (kind, file) = match format {
        Format::Lines => ("application/x-ndjson", "jsonl".to_owned()),
        Format::Csv(t) => ("text/csv; charset=utf-8", format!("{}.csv", t.name())),
    };
    let ws = auth.workspace;
    let task = write(tx, ws, format, Out { sender, buf: Vec::with_capacity(CHUNK) }, permit);
    tokio::spawn(task.instrument(tracing::Span::current()));
    let body =
        Body::from_stream(futures::stream::unfold(receiver, |mut r| async move { r.recv().await.map(|c| (c, r)) }));
    let disposition = format!("attachment; filename=\"mailroom-{ws}.{file}\"");
    Ok(([(header::CONTENT_TYPE, kind.to_owned()), (header::CONTENT_DISPOSITION, disposition)], body).into_response())
}

/// Where rows go: a buffer handed to the response a chunk at a time.
struct Out {
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

/// The reader went away: stop reading the database.
struct Gone;

impl Out {
    async fn flush(&mut self) -> Result<(), Gone> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        match tokio::time::timeout(STALL, self.sender.send(Ok(chunk))).await {
            Ok(sent) => sent.map_err(|_| Gone),
            Err(_) => {
                tracing::warn!(
                    stalled_s = STALL.as_secs(),
                    "the export's reader took nothing for too long; cutting it"
                );
                Err(Gone)
            }
        }
    }

    async fn wrote(&mut self) -> Result<(), Gone> {
        if self.buf.len() >= CHUNK { self.flush().await } else { Ok(()) }
    }
}

/// Why an export stopped early.
enum Stop {
    Gone,
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl From<Gone> for Stop {
    fn from(_: Gone) -> Self {
        Stop::Gone
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Failed(Box::new(e))
    }
}

async fn write(mut tx: Scoped, ws: WorkspaceId, format: Format, mut out: Out, permit: OwnedSemaphorePermit) {
    let result = match format {
        Format::Lines => lines(&mut tx, ws, &mut out).await,
        Format::Csv(t) => csv(&mut tx, ws, t, &mut out).await,
    };
    let result = match result {
        Ok(()) => out.flush().await.map_err(Stop::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => tracing::info!(workspace.id = %ws, "export streamed"),
        Err(Stop::Gone) => tracing::info!(workspace.id = %ws, "export abandoned by its reader"),
        Err(Stop::Failed(e)) => {
            tracing::error!(workspace.id = %ws, error = ?e, "export failed; the response is cut short");
            let _ = out.sender.send(Err(io::Error::other("the export failed"))).await;
        }
    }
    drop(permit);
}

/// The rows of `table` as the API shows them, one at a time.
fn rows<'c>(tx: &'c mut Scoped, ws: WorkspaceId, table: Table) -> BoxStream<'c, Result<Value, StoreError>> {
    match table {
        Table::Sends => export::sends(tx, ws).map(|r| r.map(|s| json!(crate::sends::view(&s, false)))).boxed(),
        Table::Events => export::events(tx, ws).map(|r| r.map(|e| json!(e.wire()))).boxed(),
        Table::Mailboxes => export::mailboxes(tx, ws).map(|r| r.map(|m| json!(crate::mailboxes::view_row(&m)))).boxed(),
        Table::Suppressions => {
            export::suppressions(tx, ws).map(|r| r.map(|s| json!(crate::suppressions::view(&s)))).boxed()
        }
        Table::Audit => export::audit(tx, ws).map(|r| r.map(|a| json!(crate::audit::view(&a)))).boxed(),
    }
}

async fn lines(tx: &mut Scoped, ws: WorkspaceId, out: &mut Out) -> Result<(), Stop> {
    let mut counts = serde_json::Map::new();
    for table in Table::ALL {
        let mut n = 0u64;
        let mut stream = rows(tx, ws, table);
        while let Some(row) = stream.next().await {
            let line = json!({ "type": table.row_type(), "data": row? });
            serde_json::to_writer(&mut out.buf, &line).map_err(|e| Stop::Failed(Box::new(e)))?;
            out.buf.push(b'\n');
            out.wrote().await?;
            n += 1;
        }
        counts.insert(table.name().to_owned(), json!(n));
    }
    serde_json::to_writer(&mut out.buf, &json!({ "type": "end", "data": { "counts": counts } }))
        .map_err(|e| Stop::Failed(Box::new(e)))?;
    out.buf.push(b'\n');
    Ok(())
}

/// One table as CSV: the columns are the keys of its first row (an empty table is an empty
/// file); text as it is, other values as JSON, null as an empty cell.
async fn csv(tx: &mut Scoped, ws: WorkspaceId, table: Table, out: &mut Out) -> Result<(), Stop> {
    let failed = |e: csv::Error| Stop::Failed(Box::new(e));
    let mut columns: Option<Vec<String>> = None;
    let mut stream = rows(tx, ws, table);
    while let Some(row) = stream.next().await {
        let row = row?;
        let mut w = csv::Writer::from_writer(&mut out.buf);
        let cols = match &columns {
            Some(c) => c,
            None => {
                let keys: Vec<String> = row.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
                w.write_record(&keys).map_err(failed)?;
                columns.insert(keys)
            }
        };
        w.write_record(cols.iter().map(|c| cell(&row[c.as_str()]))).map_err(failed)?;
        w.flush().map_err(|e| Stop::Failed(Box::new(e)))?;
        drop(w);
        out.wrote().await?;
    }
    Ok(())
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{s}"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_cell_a_spreadsheet_would_run_is_defused_and_others_are_kept() {
        assert_eq!(super::cell(&json!("=HYPERLINK(\"x\")")), "'=HYPERLINK(\"x\")");
        assert_eq!(super::cell(&json!("@SUM(A1)")), "'@SUM(A1)");
        assert_eq!(super::cell(&json!("plain")), "plain");
        assert_eq!(super::cell(&json!(-3)), "-3");
        assert_eq!(super::cell(&json!(null)), "");
    }
}
