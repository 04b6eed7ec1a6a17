//! SMTP delivery over lettre's connection API, with a per-mailbox pool of authenticated
//! sessions.
//!
//! We drive `MAIL`/`RCPT`/`DATA` ourselves rather than through lettre's transport so that every
//! failure carries the phase it happened in (the dangerous window starts with the body), and so
//! the pool keeps authenticated connections, not credentials: a credential is needed only to
//! open a new session, and is dropped as soon as AUTH is done.

use std::{
    collections::HashMap,
    error::Error as _,
    future::Future,
    sync::Mutex,
    time::{Duration, Instant},
};

use lettre::transport::smtp::{
    authentication::{Credentials, Mechanism},
    client::{AsyncSmtpConnection, Certificate, TlsParameters},
    commands::{Data, Mail, Rcpt},
    extension::ClientId,
};
use mailroom_domain::{Answer, MailboxId, Phase, Verdict, answer::classify};
use secrecy::{ExposeSecret, SecretString};

use crate::Composed;

/// How the SMTP session is encrypted. Plain text is not offered: credentials never cross the
/// network unencrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// Plain connect, then `STARTTLS` (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// Where and as whom to log in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Server host name (also the TLS name checked).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Encryption.
    pub tls: TlsMode,
    /// Login name.
    pub username: String,
    /// Log in with `AUTH XOAUTH2` and an OAuth access token instead of a password.
    pub xoauth2: bool,
}

/// Process-wide SMTP settings.
#[derive(Clone)]
pub struct SmtpSettings {
    /// The name sent in `EHLO`.
    pub hello_name: String,
    /// Timeout for connecting and for each command.
    pub command_timeout: Duration,
    /// Timeout for the message body and its final answer.
    pub data_timeout: Duration,
    /// How long an idle session is kept for reuse.
    pub idle_timeout: Duration,
    /// Where connections may go, and extra trusted roots.
    pub reach: crate::Reach,
}

/// An attempt that did not end in acceptance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    /// How far it got.
    pub phase: Phase,
    /// The server's reply, if the attempt ended with one.
    pub answer: Option<Answer>,
    /// What happened, for the ledger (never a credential).
    pub detail: String,
    /// The recipient refused, when the failure came at `RCPT`.
    pub recipient: Option<String>,
    /// The verdict, when the attempt was an API call (its answers are HTTP, not SMTP).
    pub api_verdict: Option<Verdict>,
}

impl AttemptFailure {
    /// What the failure means (docs/design.md section 4).
    pub fn verdict(&self) -> Verdict {
        if let Some(v) = &self.api_verdict {
            return v.clone();
        }
        classify(self.phase, self.answer.as_ref())
    }

    fn from_lettre(phase: Phase, e: &lettre::transport::smtp::Error) -> Self {
        let answer = e.status().map(|code| {
            let code = code.to_string().parse().unwrap_or(0);
            let text = e.source().map(|s| s.to_string()).unwrap_or_default();
            Answer::smtp(code, text)
        });
        let detail = match &answer {
            Some(a) => a.to_string(),
            // Without an SMTP answer the error may quote whatever the peer sent (it may not
            // even be a mail server): the ledger gets the phase's plain words, the operator's
            // log the full error.
            None => {
                // Debug-formatted: the peer's bytes are escaped, so they cannot forge log lines.
                tracing::info!(?phase, error = ?e, "SMTP attempt failed without an answer");
                plain_words(phase).to_owned()
            }
        };
        Self { phase, answer, detail, recipient: None, api_verdict: None }
    }

    /// The egress policy refused the server's address: nothing was sent. A forbidden address
    /// will be forbidden at every attempt, so the send fails at once; a name that did not
    /// resolve may resolve later.
    fn refused(e: crate::Refused) -> Self {
        let api_verdict = match &e {
            crate::Refused::Unresolved { .. } => None,
            _ => Some(Verdict::Permanent),
        };
        Self { phase: Phase::Connect, answer: None, detail: e.to_string(), recipient: None, api_verdict }
    }

    /// What a tenant may learn of a failed login check: the phase in plain words and, when
    /// the server answered, its reply code and enhanced status only, never its text.
    pub fn for_tenant(&self) -> String {
        match &self.answer {
            Some(a) => {
                let enhanced = a.enhanced.as_deref().map(|e| format!(" {e}")).unwrap_or_default();
                format!("{} ({}{enhanced})", plain_words(self.phase), a.code)
            }
            None => self.detail.clone(),
        }
    }

    fn timeout(phase: Phase) -> Self {
        Self {
            phase,
            answer: None,
            detail: "timed out waiting for the server".into(),
            recipient: None,
            api_verdict: None,
        }
    }
}

/// A phase's failure in plain words.
fn plain_words(phase: Phase) -> &'static str {
    match phase {
        Phase::Connect => "could not connect to the SMTP server",
        Phase::Tls => "the TLS handshake with the SMTP server failed",
        Phase::Auth => "the SMTP server refused the login",
        _ => "the SMTP session failed before the server answered",
    }
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.phase, self.detail)
    }
}

/// Why [`SessionPool::deliver`] failed.
#[derive(Debug)]
pub enum DeliverError<E> {
    /// The credential could not be obtained (vault or store failure).
    Secret(E),
    /// The SMTP attempt failed.
    Smtp(AttemptFailure),
    /// The caller's check before the body refused or failed: the body was not sent, and the
    /// session, left mid-transaction, was closed.
    BeforeBody(E),
}

async fn timed<T>(
    limit: Duration,
    phase: Phase,
    fut: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, AttemptFailure> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(AttemptFailure::from_lettre(phase, &e)),
        Err(_) => Err(AttemptFailure::timeout(phase)),
    }
}

fn tls_parameters(settings: &SmtpSettings, host: &str) -> Result<TlsParameters, AttemptFailure> {
    let mut b = TlsParameters::builder(host.to_owned());
    for pem in &settings.reach.extra_roots {
        let cert = Certificate::from_pem(pem).map_err(|e| AttemptFailure::from_lettre(Phase::Tls, &e))?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls().map_err(|e| AttemptFailure::from_lettre(Phase::Tls, &e))
}

/// Connects, secures and authenticates a session. The password is used for AUTH only.
async fn open(
    settings: &SmtpSettings,
    ep: &Endpoint,
    password: &SecretString,
) -> Result<AsyncSmtpConnection, AttemptFailure> {
    let client_id = ClientId::Domain(settings.hello_name.clone());
    let tls = tls_parameters(settings, &ep.host)?;
    let t = settings.command_timeout;
    let (implicit, phase) = match ep.tls {
        TlsMode::Implicit => (Some(tls.clone()), Phase::Tls),
        TlsMode::StartTls => (None, Phase::Connect),
    };
    // Connect only to the addresses the egress policy checked (TLS still checks the name).
    let addrs = match tokio::time::timeout(t, settings.reach.egress.resolve(&ep.host, ep.port)).await {
        Ok(resolved) => resolved.map_err(AttemptFailure::refused)?,
        Err(_) => return Err(AttemptFailure::timeout(Phase::Connect)),
    };
    let mut conn =
        timed(t, phase, AsyncSmtpConnection::connect_tokio1(&addrs[..], Some(t), &client_id, implicit, None)).await?;
    if ep.tls == TlsMode::StartTls {
        timed(t, Phase::Tls, conn.starttls(tls, &client_id)).await?;
    }
    // lettre's Credentials are plain Strings; this copy lives only until AUTH returns.
    let credentials = Credentials::new(ep.username.clone(), password.expose_secret().to_owned());
    let mechanisms: &[Mechanism] =
        if ep.xoauth2 { &[Mechanism::Xoauth2] } else { &[Mechanism::Plain, Mechanism::Login] };
    let auth = timed(t, Phase::Auth, conn.auth(mechanisms, &credentials)).await;
    drop(credentials);
    auth?;
    Ok(conn)
}

/// Runs one mail transaction on an open session; `Ok` carries the final answer. `before_body`
/// runs after the last RCPT, the last moment at which nothing can have been delivered.
async fn transact<E, G, GFut>(
    settings: &SmtpSettings,
    conn: &mut AsyncSmtpConnection,
    msg: &Composed,
    before_body: &G,
) -> Result<Answer, DeliverError<E>>
where
    G: Fn() -> GFut,
    GFut: Future<Output = Result<(), E>>,
{
    let t = settings.command_timeout;
    let from = Mail::new(msg.envelope.from().cloned(), vec![]);
    timed(t, Phase::MailFrom, conn.command(from)).await.map_err(DeliverError::Smtp)?;
    for rcpt in msg.envelope.to() {
        timed(t, Phase::Rcpt, conn.command(Rcpt::new(rcpt.clone(), vec![])))
            .await
            .map_err(|f| DeliverError::Smtp(AttemptFailure { recipient: Some(rcpt.to_string()), ..f }))?;
    }
    before_body().await.map_err(DeliverError::BeforeBody)?;
    timed(t, Phase::Data, conn.command(Data)).await.map_err(DeliverError::Smtp)?;
    let reply =
        timed(settings.data_timeout, Phase::Body, conn.message(&msg.bytes)).await.map_err(DeliverError::Smtp)?;
    let code = reply.code().to_string().parse().unwrap_or(250);
    Ok(Answer::smtp(code, reply.message().collect::<Vec<_>>().join(" ")))
}

/// Checks that `password` logs in to `ep`: connect, TLS, AUTH, QUIT.
pub async fn verify(settings: &SmtpSettings, ep: &Endpoint, password: &SecretString) -> Result<(), AttemptFailure> {
    let mut conn = open(settings, ep, password).await?;
    let _ = tokio::time::timeout(settings.command_timeout, conn.quit()).await;
    Ok(())
}

struct Idle {
    endpoint: Endpoint,
    since: Instant,
    conn: AsyncSmtpConnection,
}

/// Authenticated SMTP sessions kept per mailbox between jobs.
pub struct SessionPool {
    settings: SmtpSettings,
    idle: Mutex<HashMap<MailboxId, Vec<Idle>>>,
}

impl SessionPool {
    /// An empty pool.
    pub fn new(settings: SmtpSettings) -> Self {
        Self { settings, idle: Mutex::new(HashMap::new()) }
    }

    fn checkout(&self, mailbox: MailboxId, ep: &Endpoint) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(&mailbox)?;
        list.retain(|i| i.since.elapsed() < self.settings.idle_timeout && &i.endpoint == ep);
        list.pop().map(|i| i.conn)
    }

    fn checkin(&self, mailbox: MailboxId, ep: &Endpoint, conn: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.entry(mailbox).or_default().push(Idle { endpoint: ep.clone(), since: Instant::now(), conn });
    }

    /// Drops every idle session of a mailbox (its credentials changed or were refused).
    pub fn forget(&self, mailbox: MailboxId) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).remove(&mailbox);
    }

    /// Delivers `msg` for `mailbox`, reusing an idle session or opening one with the password
    /// that `password` yields (called only when a new session is needed). `before_body` runs
    /// once the recipients are accepted and before `DATA`; if it fails, the body is not sent.
    pub async fn deliver<E, F, Fut, G, GFut>(
        &self,
        mailbox: MailboxId,
        ep: &Endpoint,
        password: F,
        before_body: G,
        msg: &Composed,
    ) -> Result<Answer, DeliverError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SecretString, E>>,
        G: Fn() -> GFut,
        GFut: Future<Output = Result<(), E>>,
    {
        if let Some(mut conn) = self.checkout(mailbox, ep) {
            match transact(&self.settings, &mut conn, msg, &before_body).await {
                Ok(answer) => {
                    self.checkin(mailbox, ep, conn);
                    return Ok(answer);
                }
                // A stale pooled session dies at MAIL FROM: nothing was sent, open a new one.
                Err(DeliverError::Smtp(f)) if f.phase == Phase::MailFrom && f.answer.is_none() => {
                    tracing::debug!(mailbox.id = %mailbox, "pooled SMTP session was stale");
                }
                Err(e) => return Err(e),
            }
        }
        let secret = password().await.map_err(DeliverError::Secret)?;
        let mut conn = open(&self.settings, ep, &secret).await.map_err(DeliverError::Smtp)?;
        drop(secret);
        let result = transact(&self.settings, &mut conn, msg, &before_body).await;
        if result.is_ok() {
            self.checkin(mailbox, ep, conn);
        }
        result
    }
}
