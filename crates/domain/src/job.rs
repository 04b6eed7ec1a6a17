//! The payload of a send job: ids only, never content or secrets.

use serde::{Deserialize, Serialize};

use crate::{SendId, WorkspaceId};

/// Asks a send worker to drive one send forward. Carries ids only: the worker reads everything
/// else from the ledger, so a queue row never holds a secret or a message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendJob {
    /// The send to drive.
    pub send_id: SendId,
    /// Its workspace (checked again against the ledger row).
    pub workspace_id: WorkspaceId,
}

impl SendJob {
    /// The queue name: fixed and stable, since rows already queued carry it.
    pub const QUEUE: &'static str = "mailroom.send";
}
