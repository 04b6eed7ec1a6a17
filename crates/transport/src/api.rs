//! Sending through the providers' HTTP APIs, with the composed MIME message so the ledger's
//! Message-ID travels unchanged: the Gmail API (`users.messages.send`, base64url `raw`) and
//! Microsoft Graph (`POST /me/sendMail` with the base64 MIME as a `text/plain` body, answered
//! `202 Accepted`). Answers are mapped onto docs/design.md section 4 by [`classify_http`]: 429 and
//! `rateLimitExceeded` throttle the mailbox, a 5xx or a lost response after the request was
//! sent is ambiguous (Graph's 504 may still deliver). Such a send is reconciled by searching
//! the mailbox for its Message-ID ([`sent_contains`]): Gmail's `rfc822msgid:` (every folder,
//! Spam and Trash too), Graph's `internetMessageId` (every folder, the Outbox included).

use std::time::Duration;

use base64::Engine as _;
use mailroom_domain::{Answer, Phase, answer::classify_http};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::AttemptFailure;

fn failure(
    phase: Phase,
    answer: Option<Answer>,
    detail: String,
    reason: Option<&str>,
    handed_over: bool,
) -> AttemptFailure {
    let verdict = classify_http(
        answer.as_ref().map(|a| a.code),
        reason,
        answer.as_ref().and_then(|a| a.retry_after),
        handed_over,
    );
    AttemptFailure { phase, answer, detail, recipient: None, api_verdict: Some(verdict) }
}

/// Sends `mime` through the Gmail API as the mailbox whose access token is `token`; `base` is
/// the API's root (`https://gmail.googleapis.com`). `Ok` carries the accepted answer.
pub async fn gmail(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    mime: &[u8],
) -> Result<Answer, AttemptFailure> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mime);
    let url = format!("{}/gmail/v1/users/me/messages/send", base.trim_end_matches('/'));
    let req = http.post(url).bearer_auth(token.expose_secret()).json(&serde_json::json!({ "raw": raw }));
    call(req, "the Gmail API").await
}

/// Sends `mime` through Microsoft Graph; `base` is Graph's root
/// (`https://graph.microsoft.com/v1.0`).
pub async fn graph(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    mime: &[u8],
) -> Result<Answer, AttemptFailure> {
    let body = base64::engine::general_purpose::STANDARD.encode(mime);
    let url = format!("{}/me/sendMail", base.trim_end_matches('/'));
    let req = http.post(url).bearer_auth(token.expose_secret()).header("content-type", "text/plain").body(body);
    call(req, "Microsoft Graph").await
}

async fn call(req: reqwest::RequestBuilder, who: &str) -> Result<Answer, AttemptFailure> {
    let resp = match req.send().await {
        Ok(r) => r,
        // A connect failure sent nothing; anything later (a timeout, a reset) may have delivered.
        Err(e) => {
            let handed_over = !e.is_connect();
            let phase = if handed_over { Phase::Body } else { Phase::Connect };
            let detail = format!("no answer from {who}: {}", e.without_url());
            return Err(failure(phase, None, detail, None, handed_over));
        }
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        let id = body["id"].as_str().map(|id| format!(", id {id}")).unwrap_or_default();
        let text = format!("accepted by {who}{id}");
        return Ok(Answer { code: status, enhanced: None, text, retry_after: None });
    }
    // Gmail: error.errors[0].reason; Graph: error.code.
    let reason = body["error"]["errors"][0]["reason"].as_str().or_else(|| body["error"]["code"].as_str());
    let message = body["error"]["message"].as_str().unwrap_or_default();
    let answer = Answer { code: status, enhanced: None, text: format!("{who}: {message}"), retry_after };
    let detail = answer.to_string();
    Err(failure(Phase::Body, Some(answer), detail, reason, true))
}

/// Whether the mailbox holds a message with `message_id` (with its angle brackets), searched
/// through `provider`'s API (`google` or `microsoft`). Both file every message sent through
/// them, so a successful search that finds nothing proves it was not accepted.
pub async fn sent_contains(
    http: &reqwest::Client,
    provider: &str,
    base: &str,
    token: &SecretString,
    message_id: &str,
) -> Result<bool, String> {
    let base = base.trim_end_matches('/');
    let (url, list) = match provider {
        "google" => {
            let mut url = parse(&format!("{base}/gmail/v1/users/me/messages"))?;
            url.query_pairs_mut()
                .append_pair("q", &format!("rfc822msgid:{message_id}"))
                .append_pair("includeSpamTrash", "true");
            (url, "messages")
        }
        "microsoft" => {
            let mut url = parse(&format!("{base}/me/messages"))?;
            // OData string literals double their single quotes; our Message-IDs have none.
            let filter = format!("internetMessageId eq '{}'", message_id.replace('\'', "''"));
            url.query_pairs_mut().append_pair("$filter", &filter).append_pair("$select", "id");
            (url, "value")
        }
        other => return Err(format!("no API search for provider {other}")),
    };
    let resp = http.get(url).bearer_auth(token.expose_secret()).send().await;
    let resp = resp.map_err(|e| format!("the search failed: {}", e.without_url()))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(format!("the search answered HTTP {status}"));
    }
    let body: Value = resp.json().await.map_err(|e| format!("the search answer is not JSON: {e}"))?;
    Ok(body[list].as_array().is_some_and(|found| !found.is_empty()))
}

fn parse(url: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(url).map_err(|e| format!("the API root is not a URL: {e}"))
}
