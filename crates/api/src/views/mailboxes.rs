//! A mailbox as the API shows it: where and how it connects, its state and its pace; never a
//! secret.

use chrono::{DateTime, Utc};
use mailroom_domain::MailboxId;
use mailroom_store::mailboxes::MailboxRow;
use serde::Serialize;
use utoipa::ToSchema;

/// The SMTP server a mailbox sends through.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SmtpView {
    pub host: String,
    pub port: i32,
    /// `starttls` or `implicit`.
    pub tls: String,
    pub username: String,
}

/// The IMAP server a mailbox's replies and Sent folder are read on.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImapView {
    pub host: String,
    pub port: Option<i32>,
    pub tls: Option<String>,
    pub username: Option<String>,
    pub sent_folder: String,
}

/// How an OAuth mailbox is reached.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OauthView {
    /// `google` or `microsoft`.
    pub provider: String,
    /// `smtp` (XOAUTH2) or `api` (the Gmail API or Graph).
    pub transport: String,
    pub scopes: Option<Vec<String>>,
}

/// A send window in the mailbox's time zone.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WindowView {
    /// `HH:MM`.
    pub start: String,
    /// `HH:MM`.
    pub end: String,
    pub time_zone: String,
}

/// A mailbox's pace.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PacingView {
    /// Sends in any rolling 24 hours (none: no cap).
    pub daily_cap: Option<i32>,
    pub min_gap_secs: f64,
    pub jitter_secs: f64,
    pub window: Option<WindowView>,
    pub max_sessions: i32,
}

/// A mailbox.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MailboxView {
    pub id: MailboxId,
    pub from_address: String,
    pub from_name: Option<String>,
    /// `active`, `paused`, `needs_reauth`, `unusable` or `disconnected`.
    pub status: String,
    pub status_reason: Option<String>,
    pub paused_until: Option<DateTime<Utc>>,
    pub smtp: SmtpView,
    pub imap: Option<ImapView>,
    /// `provider`, `append` or `none`.
    pub sent_copy: String,
    /// `password` or `oauth`.
    pub auth: String,
    pub oauth: Option<OauthView>,
    pub pacing: PacingView,
    pub created_at: DateTime<Utc>,
    /// Parked sends woken by this change (reconnect, resume).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_sends: Option<u64>,
}

impl MailboxView {
    /// The view of a mailbox row.
    pub(crate) fn of(m: &MailboxRow) -> Self {
        let p = m.pacing();
        let window = match (p.window_start, p.window_end) {
            (Some(s), Some(e)) => Some(WindowView {
                start: s.format("%H:%M").to_string(),
                end: e.format("%H:%M").to_string(),
                time_zone: p.time_zone.clone(),
            }),
            _ => None,
        };
        Self {
            id: MailboxId::from_uuid(m.id),
            from_address: m.from_address.clone(),
            from_name: m.from_name.clone(),
            status: m.status.clone(),
            status_reason: m.status_reason.clone(),
            paused_until: m.paused_until,
            smtp: SmtpView {
                host: m.smtp_host.clone(),
                port: m.smtp_port,
                tls: m.smtp_tls.clone(),
                username: m.smtp_username.clone(),
            },
            imap: m.imap_host.as_ref().map(|h| ImapView {
                host: h.clone(),
                port: m.imap_port,
                tls: m.imap_tls.clone(),
                username: m.imap_username.clone(),
                sent_folder: m.sent_folder.clone(),
            }),
            sent_copy: m.sent_copy.clone(),
            auth: m.auth_kind.clone(),
            oauth: m.oauth_provider.as_ref().map(|provider| OauthView {
                provider: provider.clone(),
                transport: m.transport.clone(),
                scopes: m.oauth_scopes.clone(),
            }),
            pacing: PacingView {
                daily_cap: p.daily_cap,
                min_gap_secs: f64::from(p.min_gap_ms) / 1000.0,
                jitter_secs: f64::from(p.jitter_ms) / 1000.0,
                window,
                max_sessions: p.max_sessions,
            },
            created_at: m.created_at,
            resumed_sends: None,
        }
    }

    /// The view after a change that woke `n` parked sends.
    pub(crate) fn resumed(m: &MailboxRow, n: u64) -> Self {
        Self { resumed_sends: Some(n), ..Self::of(m) }
    }
}

/// A page of mailboxes: `next` reads the following one.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MailboxPage {
    pub mailboxes: Vec<MailboxView>,
    pub next: Option<String>,
}
