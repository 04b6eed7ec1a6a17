//! Reading a Microsoft 365 mailbox's new mail through Microsoft Graph, for reply detection: a
//! delta query on the Inbox (messages created only, received since a date on the first round),
//! followed page by page; the link to go on from (the next page, or the round's delta link) is
//! the cursor. Graph answers 410 for a delta link it no longer keeps: the caller starts a new
//! round from a date and dedupes what it sees again.
//!
//! Links come back from Graph as absolute URLs; one is followed only when it points into the
//! configured API root, so a stored or answered link can never send the token elsewhere.

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// Why a delta read failed.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// Graph no longer keeps this delta state (410): start a new round from a date.
    #[error("the stored delta link has expired")]
    Expired,
    /// A link points outside the API root.
    #[error("refusing a link outside the Graph API root")]
    ForeignLink,
    /// Any other failure.
    #[error("Microsoft Graph failed: {0}")]
    Failed(String),
}

/// Where a read stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// More pages wait in this round: go on from here, at once.
    Next(String),
    /// The round is complete: changes after it are read from here next time.
    Delta(String),
}

impl Link {
    /// The URL to store.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Next(s) | Self::Delta(s) => s,
        }
    }
}

/// What a read found.
#[derive(Debug)]
pub struct Delta {
    /// Ids of messages created in the Inbox, in Graph's order.
    pub ids: Vec<String>,
    /// Where to go on from.
    pub link: Link,
}

/// The first request of a round: messages created in the Inbox, received at or after `since`.
pub fn initial_url(base: &str, since: DateTime<Utc>) -> Result<String, DeltaError> {
    let mut url = parse(&format!("{}/me/mailFolders/inbox/messages/delta", root(base)))?;
    let since = since.to_rfc3339_opts(SecondsFormat::Secs, true);
    url.query_pairs_mut()
        .append_pair("changeType", "created")
        .append_pair("$select", "id,internetMessageId")
        .append_pair("$filter", &format!("receivedDateTime ge {since}"));
    Ok(url.into())
}

fn parse(url: &str) -> Result<reqwest::Url, DeltaError> {
    reqwest::Url::parse(url).map_err(|e| DeltaError::Failed(format!("the Graph API root is not a URL: {e}")))
}

fn root(base: &str) -> &str {
    base.trim_end_matches('/')
}

/// Whether `link` points into the API root `base`.
fn inside(base: &str, link: &str) -> bool {
    link.strip_prefix(root(base)).is_some_and(|rest| rest.starts_with('/'))
}

async fn get(http: &reqwest::Client, url: &str, token: &SecretString) -> Result<reqwest::Response, DeltaError> {
    let req = http.get(url).bearer_auth(token.expose_secret()).header("Prefer", "odata.maxpagesize=50");
    let resp = req.send().await.map_err(|e| DeltaError::Failed(e.without_url().to_string()))?;
    match resp.status().as_u16() {
        200 => Ok(resp),
        410 => Err(DeltaError::Expired),
        s => Err(DeltaError::Failed(format!("HTTP {s}"))),
    }
}

/// Reads from `from` (a stored link, or [`initial_url`]) until the round completes or at least
/// `max` messages are found.
pub async fn read(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    from: &str,
    max: usize,
) -> Result<Delta, DeltaError> {
    let (mut ids, mut url) = (vec![], from.to_owned());
    loop {
        if !inside(base, &url) {
            return Err(DeltaError::ForeignLink);
        }
        let page: Value = get(http, &url, token).await?.json().await.map_err(|e| DeltaError::Failed(e.to_string()))?;
        let items = page["value"].as_array().into_iter().flatten();
        // Removed items (`@removed`) are of no interest: a reply that was deleted was still sent.
        ids.extend(items.filter(|m| m.get("@removed").is_none()).filter_map(|m| m["id"].as_str().map(str::to_owned)));
        if let Some(delta) = page["@odata.deltaLink"].as_str() {
            return Ok(Delta { ids, link: Link::Delta(delta.to_owned()) });
        }
        let Some(next) = page["@odata.nextLink"].as_str() else {
            return Err(DeltaError::Failed("a delta page with neither a next nor a delta link".into()));
        };
        if ids.len() >= max {
            return Ok(Delta { ids, link: Link::Next(next.to_owned()) });
        }
        url = next.to_owned();
    }
}

/// A message's raw MIME bytes (`GET /me/messages/{id}/$value`).
pub async fn raw(http: &reqwest::Client, base: &str, token: &SecretString, id: &str) -> Result<Vec<u8>, DeltaError> {
    let mut url = parse(&format!("{}/me/messages", root(base)))?;
    url.path_segments_mut()
        .map_err(|()| DeltaError::Failed("the Graph API root cannot have a path".into()))?
        .extend([id, "$value"]);
    let resp = get(http, url.as_str(), token).await?;
    Ok(resp.bytes().await.map_err(|e| DeltaError::Failed(e.without_url().to_string()))?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_links_into_the_api_root_are_followed() {
        let base = "https://graph.microsoft.com/v1.0";
        assert!(inside(base, "https://graph.microsoft.com/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=x"));
        assert!(!inside(base, "https://graph.microsoft.com/v1.0.evil.example/me"));
        assert!(!inside(base, "https://evil.example/v1.0/me"));
        assert!(!inside(base, "https://graph.microsoft.com/beta/me"));
    }

    #[test]
    fn the_first_round_asks_for_created_messages_since_a_date() {
        let since = DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z").unwrap().with_timezone(&Utc);
        let url = initial_url("https://graph.microsoft.com/v1.0/", since).unwrap();
        let parsed = reqwest::Url::parse(&url).unwrap();
        assert_eq!(parsed.path(), "/v1.0/me/mailFolders/inbox/messages/delta");
        let q: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert!(q.contains(&("changeType".into(), "created".into())));
        assert!(q.contains(&("$filter".into(), "receivedDateTime ge 2026-11-22T00:00:00Z".into())));
    }
}
