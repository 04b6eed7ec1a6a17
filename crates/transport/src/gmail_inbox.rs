//! Reading a Gmail mailbox's new mail through the Gmail API, for reply detection: the
//! `historyId` cursor (`users.history.list`, messages added to INBOX), a bounded listing by
//! date for the first look or when Gmail no longer has the stored history id (404), and each
//! message's raw RFC 5322 bytes.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// Why a history read failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Gmail no longer keeps history that far back: re-scan by date.
    #[error("the stored history id has expired")]
    Expired,
    /// Any other failure.
    #[error("the Gmail API failed: {0}")]
    Failed(String),
}

async fn get(http: &reqwest::Client, url: String, token: &SecretString) -> Result<Value, HistoryError> {
    let resp = http.get(url).bearer_auth(token.expose_secret()).send().await;
    let resp = resp.map_err(|e| HistoryError::Failed(e.without_url().to_string()))?;
    match resp.status().as_u16() {
        200 => resp.json().await.map_err(|e| HistoryError::Failed(e.without_url().to_string())),
        404 => Err(HistoryError::Expired),
        s => Err(HistoryError::Failed(format!("HTTP {s}"))),
    }
}

fn root(base: &str) -> String {
    format!("{}/gmail/v1/users/me", base.trim_end_matches('/'))
}

/// The mailbox's current `historyId` (where the next history read starts).
pub async fn current_history(http: &reqwest::Client, base: &str, token: &SecretString) -> Result<String, HistoryError> {
    let profile = get(http, format!("{}/profile", root(base)), token).await?;
    profile["historyId"].as_str().map(str::to_owned).ok_or_else(|| HistoryError::Failed("no historyId".into()))
}

/// Ids of messages added to INBOX since `start`, and the history id read up to.
pub async fn added_since(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    start: &str,
) -> Result<(Vec<String>, String), HistoryError> {
    let (mut ids, mut last, mut page) = (vec![], start.to_owned(), None::<String>);
    loop {
        let mut url = format!("{}/history?startHistoryId={start}&historyTypes=messageAdded&labelId=INBOX", root(base));
        if let Some(p) = &page {
            url.push_str(&format!("&pageToken={p}"));
        }
        let body = get(http, url, token).await?;
        for h in body["history"].as_array().into_iter().flatten() {
            for added in h["messagesAdded"].as_array().into_iter().flatten() {
                if let Some(id) = added["message"]["id"].as_str() {
                    ids.push(id.to_owned());
                }
            }
        }
        if let Some(h) = body["historyId"].as_str() {
            last = h.to_owned();
        }
        match body["nextPageToken"].as_str() {
            Some(p) => page = Some(p.to_owned()),
            None => return Ok((ids, last)),
        }
    }
}

/// Ids of INBOX messages received after `after_unix`, at most `max`.
pub async fn listed_after(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    after_unix: i64,
    max: usize,
) -> Result<Vec<String>, HistoryError> {
    let url = format!("{}/messages?q=in:inbox%20after:{after_unix}&maxResults={max}", root(base));
    let body = get(http, url, token).await?;
    Ok(body["messages"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str().map(str::to_owned)).collect())
}

/// A message's raw bytes.
pub async fn raw(http: &reqwest::Client, base: &str, token: &SecretString, id: &str) -> Result<Vec<u8>, HistoryError> {
    let body = get(http, format!("{}/messages/{id}?format=raw", root(base)), token).await?;
    let raw = body["raw"].as_str().ok_or_else(|| HistoryError::Failed(format!("message {id} has no raw")))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .map_err(|e| HistoryError::Failed(e.to_string()))
}
