//! Sending through the providers' HTTP APIs, with the composed MIME message so the ledger's
//! Message-ID travels unchanged: the Gmail API (`users.messages.send`, base64url `raw`) and
//! Microsoft Graph (`POST /me/sendMail` with the base64 MIME as a `text/plain` body, answered
//! `202 Accepted`). Answers are mapped onto DESIGN.md section 4 by [`classify_http`]: 429 and
//! `rateLimitExceeded` throttle the mailbox, a 5xx or a lost response after the request was
//! sent is ambiguous (Graph's 504 may still deliver).

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
