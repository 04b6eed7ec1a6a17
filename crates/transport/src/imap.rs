//! IMAP access to a mailbox's Sent folder: find a Message-ID (reconciliation) and append a
//! copy of what was sent (for servers that do not file submitted mail themselves).

use std::{fmt, sync::Arc, time::Duration};

use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, rustls};

/// How the IMAP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapTls {
    /// No TLS (loopback test servers only).
    None,
    /// Plain connect, then `STARTTLS`.
    StartTls,
    /// TLS from the first byte (port 993).
    Implicit,
}

/// Where a mailbox's IMAP server is.
#[derive(Debug, Clone)]
pub struct ImapEndpoint {
    /// Host name (also the TLS name checked).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Encryption.
    pub tls: ImapTls,
    /// Login.
    pub username: String,
    /// The folder holding sent mail.
    pub sent_folder: String,
}

impl ImapEndpoint {
    /// The endpoint from a mailbox's stored IMAP columns, when they are all set.
    pub fn from_stored(
        host: Option<&str>,
        port: Option<i32>,
        tls: Option<&str>,
        username: Option<&str>,
        sent_folder: &str,
    ) -> Option<Self> {
        let tls = match tls? {
            "implicit" => ImapTls::Implicit,
            "starttls" => ImapTls::StartTls,
            _ => ImapTls::None,
        };
        Some(Self {
            host: host?.to_owned(),
            port: u16::try_from(port?).ok()?,
            tls,
            username: username?.to_owned(),
            sent_folder: sent_folder.to_owned(),
        })
    }
}

/// How a mailbox logs in to IMAP.
#[derive(Clone, Copy)]
pub enum ImapCredential<'a> {
    /// `LOGIN` with the mailbox's IMAP password.
    Password(&'a SecretString),
    /// `AUTHENTICATE XOAUTH2` with an OAuth access token (Gmail, Microsoft 365).
    Bearer(&'a SecretString),
}

impl fmt::Debug for ImapCredential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Password(_) => "Password(..)",
            Self::Bearer(_) => "Bearer(..)",
        })
    }
}

/// The XOAUTH2 client response, `user=...^Aauth=Bearer ...^A^A`, zeroized when dropped. A
/// refused token gets a challenge (JSON naming the error) that is answered with an empty line,
/// after which the server sends the failure.
struct XOAuth2<'a> {
    user: &'a str,
    token: &'a SecretString,
    sent: bool,
}

impl async_imap::Authenticator for XOAuth2<'_> {
    type Response = Zeroizing<Vec<u8>>;

    fn process(&mut self, _challenge: &[u8]) -> Self::Response {
        if std::mem::replace(&mut self.sent, true) {
            return Zeroizing::new(Vec::new());
        }
        let token = self.token.expose_secret();
        Zeroizing::new(format!("user={}\x01auth=Bearer {token}\x01\x01", self.user).into_bytes())
    }
}

/// An IMAP failure. Never carries the password.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// Connecting or the TLS handshake failed.
    #[error("cannot connect to the IMAP server")]
    Connect(#[source] std::io::Error),
    /// The server refused the login.
    #[error("the IMAP server refused the login")]
    Login(#[source] async_imap::error::Error),
    /// A command failed.
    #[error("IMAP command failed")]
    Protocol(#[from] async_imap::error::Error),
    /// The server did not answer in time.
    #[error("the IMAP server did not answer in time")]
    Timeout,
    /// The egress policy refused the server's address.
    #[error(transparent)]
    Refused(#[from] crate::Refused),
}

pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Stream for T {}

pub(crate) type Session = async_imap::Session<Box<dyn Stream>>;

fn tls_connector(extra_roots: &[Vec<u8>]) -> Result<TlsConnector, ImapError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in extra_roots {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| ImapError::Connect(std::io::Error::other(e.to_string())))?;
            roots.add(cert).map_err(|e| ImapError::Connect(std::io::Error::other(e)))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Connect(std::io::Error::other(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

async fn upgrade(tcp: TcpStream, host: &str, extra_roots: &[Vec<u8>]) -> Result<Box<dyn Stream>, ImapError> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| ImapError::Connect(std::io::Error::other(e)))?;
    let tls = tls_connector(extra_roots)?.connect(name, tcp).await.map_err(ImapError::Connect)?;
    Ok(Box::new(tls))
}

pub(crate) async fn login(
    ep: &ImapEndpoint,
    credential: ImapCredential<'_>,
    reach: &crate::Reach,
) -> Result<Session, ImapError> {
    // Connect only to the addresses the egress policy checked (TLS still checks the name).
    let addrs = reach.egress.resolve(&ep.host, ep.port).await?;
    if ep.tls == ImapTls::None && !reach.egress.allows_plain_text(&ep.host, ep.port, &addrs) {
        return Err(ImapError::Refused(crate::Refused::PlainText));
    }
    let tcp = TcpStream::connect(&addrs[..]).await.map_err(ImapError::Connect)?;
    let roots = &reach.extra_roots;
    let stream: Box<dyn Stream> = match ep.tls {
        ImapTls::Implicit => upgrade(tcp, &ep.host, roots).await?,
        ImapTls::None => Box::new(tcp),
        ImapTls::StartTls => {
            let mut client = async_imap::Client::new(tcp);
            client.read_response().await.map_err(ImapError::Connect)?;
            client.run_command_and_check_ok("STARTTLS", None).await?;
            upgrade(client.into_inner(), &ep.host, roots).await?
        }
    };
    let mut client = async_imap::Client::new(stream);
    if ep.tls != ImapTls::StartTls {
        client.read_response().await.map_err(ImapError::Connect)?;
    }
    match credential {
        ImapCredential::Password(password) => {
            client.login(&ep.username, password.expose_secret()).await.map_err(|(e, _)| ImapError::Login(e))
        }
        ImapCredential::Bearer(token) => {
            let auth = XOAuth2 { user: &ep.username, token, sent: false };
            client.authenticate("XOAUTH2", auth).await.map_err(|(e, _)| ImapError::Login(e))
        }
    }
}

pub(crate) async fn timed<T>(limit: Duration, fut: impl Future<Output = Result<T, ImapError>>) -> Result<T, ImapError> {
    tokio::time::timeout(limit, fut).await.map_err(|_| ImapError::Timeout)?
}

/// Whether the Sent folder holds a message with `message_id` (with its angle brackets).
pub async fn sent_contains(
    ep: &ImapEndpoint,
    credential: ImapCredential<'_>,
    reach: &crate::Reach,
    message_id: &str,
    limit: Duration,
) -> Result<bool, ImapError> {
    timed(limit, async {
        let mut session = login(ep, credential, reach).await?;
        session.select(&ep.sent_folder).await?;
        // Our Message-IDs are `<hex@domain>`: nothing in them needs escaping in a quoted string.
        let query = format!("HEADER Message-ID \"{}\"", message_id.replace(['"', '\\'], ""));
        let found = !session.uid_search(query).await?.is_empty();
        session.logout().await.ok();
        Ok(found)
    })
    .await
}

/// Appends a copy of a sent message to the Sent folder, marked as seen.
pub async fn append_sent(
    ep: &ImapEndpoint,
    credential: ImapCredential<'_>,
    reach: &crate::Reach,
    message: &[u8],
    limit: Duration,
) -> Result<(), ImapError> {
    timed(limit, async {
        let mut session = login(ep, credential, reach).await?;
        session.append(&ep.sent_folder, Some("(\\Seen)"), None, message).await?;
        session.logout().await.ok();
        Ok(())
    })
    .await
}

/// Checks that `credential` logs in to `ep` (at connect time).
pub async fn verify(
    ep: &ImapEndpoint,
    credential: ImapCredential<'_>,
    reach: &crate::Reach,
    limit: Duration,
) -> Result<(), ImapError> {
    timed(limit, async {
        let mut session = login(ep, credential, reach).await?;
        session.logout().await.ok();
        Ok(())
    })
    .await
}
