//! OAuth providers as configured: client credentials, endpoints (overridable, so tests can
//! point them at local servers), scopes per transport, and the HTTP client for token calls.

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// One provider (Google or Microsoft) as an operator registered the app with it. Also the
/// shape of its `[oauth.google]` / `[oauth.microsoft]` settings (an empty `client_id` is off).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OAuthProvider {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret (never written back out).
    #[serde(serialize_with = "hide")]
    pub client_secret: SecretString,
    /// The authorization endpoint.
    pub auth_url: String,
    /// The token endpoint.
    pub token_url: String,
    /// The revocation endpoint, where the provider has one (Google does, Microsoft does not).
    pub revoke_url: Option<String>,
    /// Where the account's address is read with the access token (Google userinfo, Graph /me).
    pub userinfo_url: String,
    /// Scopes asked for a mailbox sending over SMTP (XOAUTH2).
    pub smtp_scopes: Vec<String>,
    /// Scopes asked for a mailbox sending through the provider's API.
    pub api_scopes: Vec<String>,
    /// The provider's mail API root (`https://gmail.googleapis.com`, Graph's `v1.0` root).
    pub api_base: String,
    /// The provider's SMTP submission server.
    pub smtp_host: String,
    /// Its port (STARTTLS).
    pub smtp_port: u16,
    /// The provider's IMAP server, where SMTP-transport mailboxes are read for replies and
    /// searched for sent mail (XOAUTH2 with the same access token).
    pub imap_host: String,
    /// Its port.
    pub imap_port: u16,
    /// `implicit` (TLS from the first byte, port 993), `starttls`, or `none` (test servers).
    pub imap_tls: String,
    /// The folder the provider files submitted mail in (`[Gmail]/Sent Mail`, `Sent Items`).
    pub sent_folder: String,
}

fn hide<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("")
}

/// The OAuth settings of the API.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The callback URL registered with the providers (`.../v1/oauth/callback`).
    pub redirect_url: String,
    /// How long a started connection may take.
    pub state_ttl: Duration,
    /// Google, when configured.
    pub google: Option<OAuthProvider>,
    /// Microsoft, when configured.
    pub microsoft: Option<OAuthProvider>,
    /// For token, userinfo and revocation calls: follows no redirects.
    pub http: reqwest::Client,
    /// Origins (`https://app.example.com`) a connection may return the browser to when it
    /// ends (`return_url` of `start`): the platform's own pages, never a tenant's choice.
    pub return_origins: Vec<String>,
}

/// The origin of `url` (`scheme://host[:port]`), if it is an `http(s)` URL with a host and no
/// user name or password.
pub fn origin_of(url: &str) -> Option<String> {
    let u = oauth2::url::Url::parse(url).ok()?;
    let usable = matches!(u.scheme(), "https" | "http") && u.host().is_some() && u.username().is_empty();
    (usable && u.password().is_none()).then(|| u.origin().ascii_serialization())
}

impl OAuthSettings {
    /// The settings with no provider configured (connecting over OAuth answers 422).
    pub fn disabled() -> Self {
        Self {
            redirect_url: "http://127.0.0.1:8080/v1/oauth/callback".into(),
            state_ttl: Duration::from_secs(600),
            google: None,
            microsoft: None,
            return_origins: vec![],
            http: Self::client(&[]),
        }
    }

    /// The HTTP client for calls to providers: no redirects (as the oauth2 crate asks), bounded
    /// waits, `extra_roots` trusted besides the usual roots.
    pub fn client(extra_roots: &[Vec<u8>]) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .user_agent("mailroom");
        for pem in extra_roots {
            for cert in reqwest::Certificate::from_pem_bundle(pem).unwrap_or_default() {
                b = b.add_root_certificate(cert);
            }
        }
        b.build().expect("a TLS backend is compiled in")
    }

    /// The same settings with another HTTP client (extra trusted CAs).
    pub fn with_client(self, http: reqwest::Client) -> Self {
        Self { http, ..self }
    }

    /// The provider named in a path segment.
    pub fn provider(&self, name: &str) -> Option<&OAuthProvider> {
        match name {
            "google" => self.google.as_ref(),
            "microsoft" => self.microsoft.as_ref(),
            _ => None,
        }
    }
}
