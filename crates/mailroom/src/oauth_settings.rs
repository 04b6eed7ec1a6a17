//! The `[oauth]` settings: the app an operator registered with Google and Microsoft. A
//! provider with no `client_id` is off (connecting over it answers 422).

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use mailroom_keyring::oauth_config::{OAuthProvider, OAuthSettings};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// OAuth settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OAuth {
    /// The callback URL registered with both providers (`https://<api>/v1/oauth/callback`).
    pub redirect_url: String,
    /// Seconds a started connection stays valid.
    pub state_ttl_secs: u64,
    /// Extra trusted CAs (PEM) for the providers' endpoints (test servers).
    pub extra_ca_file: Option<PathBuf>,
    /// Google.
    pub google: Provider,
    /// Microsoft.
    pub microsoft: Provider,
    /// Origins a finished connection may send the browser back to (`["https://app.example.com"]`).
    pub return_origins: Vec<String>,
}

/// One provider, as the library takes it.
pub type Provider = OAuthProvider;

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for OAuth {
    fn default() -> Self {
        let google = Provider {
            client_id: String::new(),
            client_secret: SecretString::from(""),
            auth_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            revoke_url: Some("https://oauth2.googleapis.com/revoke".into()),
            userinfo_url: "https://openidconnect.googleapis.com/v1/userinfo".into(),
            smtp_scopes: strings(&["https://mail.google.com/", "openid", "email"]),
            api_scopes: strings(&[
                "https://www.googleapis.com/auth/gmail.send",
                "https://www.googleapis.com/auth/gmail.readonly",
                "openid",
                "email",
            ]),
            api_base: "https://gmail.googleapis.com".into(),
            smtp_host: "smtp.gmail.com".into(),
            smtp_port: 587,
            imap_host: "imap.gmail.com".into(),
            imap_port: 993,
            imap_tls: "implicit".into(),
            sent_folder: "[Gmail]/Sent Mail".into(),
        };
        let microsoft = Provider {
            client_id: String::new(),
            client_secret: SecretString::from(""),
            auth_url: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize".into(),
            token_url: "https://login.microsoftonline.com/common/oauth2/v2.0/token".into(),
            revoke_url: None,
            userinfo_url: "https://graph.microsoft.com/v1.0/me".into(),
            smtp_scopes: strings(&[
                "https://outlook.office.com/SMTP.Send",
                "https://outlook.office.com/IMAP.AccessAsUser.All",
                "offline_access",
                "openid",
                "email",
            ]),
            api_scopes: strings(&["Mail.Send", "Mail.Read", "User.Read", "offline_access"]),
            api_base: "https://graph.microsoft.com/v1.0".into(),
            smtp_host: "smtp.office365.com".into(),
            smtp_port: 587,
            imap_host: "outlook.office365.com".into(),
            imap_port: 993,
            imap_tls: "implicit".into(),
            sent_folder: "Sent Items".into(),
        };
        Self {
            redirect_url: "http://127.0.0.1:8080/v1/oauth/callback".into(),
            state_ttl_secs: 600,
            extra_ca_file: None,
            google,
            microsoft,
            return_origins: vec![],
        }
    }
}

impl OAuth {
    /// The API's view of these settings.
    pub fn build(&self) -> anyhow::Result<OAuthSettings> {
        let roots = match &self.extra_ca_file {
            Some(p) => {
                vec![std::fs::read(p).with_context(|| format!("cannot read oauth.extra_ca_file {}", p.display()))?]
            }
            None => vec![],
        };
        let mut return_origins = vec![];
        for (i, o) in self.return_origins.iter().enumerate() {
            let origin =
                mailroom_keyring::oauth_config::origin_of(o).filter(|n| n == o.trim_end_matches('/')).with_context(
                    || format!("oauth.return_origins[{i}] `{o}` is not an origin such as https://app.example.com"),
                )?;
            return_origins.push(origin);
        }
        Ok(OAuthSettings {
            return_origins,
            redirect_url: self.redirect_url.clone(),
            state_ttl: Duration::from_secs(self.state_ttl_secs),
            google: Some(self.google.clone()).filter(|p| !p.client_id.is_empty()),
            microsoft: Some(self.microsoft.clone()).filter(|p| !p.client_id.is_empty()),
            http: OAuthSettings::client(&roots),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_origin_must_be_an_origin_and_is_named_when_it_is_not() {
        let mut o = OAuth { return_origins: vec!["https://app.example.com".into()], ..OAuth::default() };
        assert_eq!(o.build().unwrap().return_origins, ["https://app.example.com"]);
        for bad in ["https://app.example.com/path", "app.example.com", "ftp://x.example", "https://u@x.example"] {
            o.return_origins = vec!["https://ok.example".into(), bad.into()];
            let e = o.build().unwrap_err().to_string();
            assert!(e.contains("oauth.return_origins[1]"), "{bad}: {e}");
        }
    }
}
