//! Outbound mail: MIME composition and SMTP delivery.
//!
//! Shared by the API (which verifies credentials when a mailbox is connected) and the send
//! worker. Every outcome is reported with the [`Phase`](mailroom_domain::Phase) it reached, so
//! the caller can tell a harmless failure from one after which the message may have arrived.
#![deny(missing_docs)]
// An attempt's failure carries the server's full answer for the ledger; failures are the rare
// path, so moving ~130 bytes beats a heap allocation per error.
#![allow(clippy::result_large_err)]

pub mod api;
mod compose;
pub mod egress;
pub mod gmail_inbox;
pub mod graph_inbox;
pub mod imap;
pub mod inbox;
mod smtp;

pub use compose::{ComposeError, Composed, compose};
pub use egress::{EgressPolicy, Refused};
pub use smtp::{AttemptFailure, DeliverError, Endpoint, SessionPool, SmtpSettings, TlsMode, verify};

/// How to reach a tenant's servers: where connections may go, and which extra CA roots are
/// trusted besides the usual ones.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// Which addresses may be connected to.
    pub egress: EgressPolicy,
    /// Extra trusted root certificates (PEM), for private servers and tests.
    pub extra_roots: Vec<Vec<u8>>,
}
