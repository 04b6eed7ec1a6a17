//! Matching an inbound message to a send of the same workspace and recording what it is:
//! one event per message, however often it is read, written in the same transaction as the
//! sighting that makes it the first; hard bounces and unsubscribe requests suppress the
//! address for the workspace; and a reply, an unsubscribe request or a hard bounce stops the
//! waiting sends of the matched send's sequence in that same transaction.

use mailroom_domain::{MailboxId, SendId, StopOn, SuppressionReason, WorkspaceId, mask_email};
use mailroom_store::{PgPool, events, replies, sends, suppressions};
use serde_json::json;

use crate::{
    classify::{Kind, classify},
    parse::Inbound,
};

/// What an inbound message of this kind stops in its sequence (a soft bounce stops nothing).
fn stops(kind: &Kind) -> Option<StopOn> {
    match kind {
        Kind::Reply => Some(StopOn::Reply),
        Kind::AutoReply => Some(StopOn::AutoReply),
        Kind::Unsubscribe => Some(StopOn::Unsubscribe),
        Kind::BounceHard(_) => Some(StopOn::Bounce),
        Kind::BounceSoft(_) => None,
    }
}

/// Records one message; returns the event written, if any.
pub(crate) async fn record(
    pool: &PgPool,
    ws: WorkspaceId,
    mbx: MailboxId,
    m: &Inbound,
) -> anyhow::Result<Option<&'static str>> {
    let kind = classify(m);
    // A bounce names the original in its report; anything else by the ids it answers.
    let candidates: Vec<String> = match (&kind, &m.report) {
        (Kind::BounceHard(_) | Kind::BounceSoft(_), Some(r)) => r.original_message_id.iter().cloned().collect(),
        _ => m.refs.clone(),
    };
    let mut tx = pool.begin().await?;
    let found =
        if candidates.is_empty() { vec![] } else { replies::sends_by_message_id(&mut tx, ws, &candidates).await? };
    let matched = candidates.iter().find_map(|id| found.iter().find(|s| &s.message_id == id));
    let Some(send) = matched else {
        replies::first_sighting(&mut tx, ws, mbx, &m.dedupe_key, None, "unmatched").await?;
        tx.commit().await?;
        return Ok(None);
    };
    if !replies::first_sighting(&mut tx, ws, mbx, &m.dedupe_key, Some(send.id), kind.event()).await? {
        return Ok(None); // seen before: its event exists
    }
    // A message about an erased send (a late reply, a bounce) is recorded without what it
    // says about the erased contact, and adds nothing to the list: the keyed hash suppresses.
    let mut data = json!({ "message_id": send.message_id });
    if send.erased {
        data["erased"] = json!(true);
    } else {
        data["inbound_message_id"] = json!(m.message_id);
        data["from"] = json!(m.from);
        data["subject"] = json!(m.subject);
        match &kind {
            Kind::BounceHard(r) | Kind::BounceSoft(r) => {
                data["recipient"] = json!(r.recipient);
                data["status"] = json!(r.status);
                data["action"] = json!(r.action);
                data["diagnostic"] = json!(r.diagnostic);
            }
            _ => data["excerpt"] = json!(m.excerpt),
        }
    }
    let event = events::NewEvent {
        workspace: ws,
        kind: kind.event(),
        send: Some(SendId::from_uuid(send.id)),
        mailbox: Some(MailboxId::from_uuid(send.mailbox_id)),
        data,
    };
    events::insert(&mut tx, &event).await?;
    match (&kind, &m.from) {
        _ if send.erased => {}
        (Kind::BounceHard(r), _) => {
            let detail = format!("hard bounce {}", r.status);
            suppressions::add(&mut tx, ws, &r.recipient, SuppressionReason::HardBounce, &detail).await?
        }
        (Kind::Unsubscribe, Some(from)) => {
            suppressions::add(&mut tx, ws, from, SuppressionReason::Unsubscribe, "unsubscribe request").await?
        }
        _ => {}
    }
    // Stop the rest of the sequence in this same transaction: a follow-up is either cancelled
    // here or was already claimed by a worker before this commits, never sent after it.
    if let (Some(sequence), Some(trigger)) = (&send.sequence, stops(&kind)) {
        let stopped = sends::stop_sequence(&mut tx, ws, sequence, trigger).await?;
        if stopped > 0 {
            tracing::info!(send.id = %SendId::from_uuid(send.id), stopped, reason = trigger.reason(), "sequence stopped");
        }
    }
    tx.commit().await?;
    let who = m.from.as_deref().map(mask_email).unwrap_or_default();
    tracing::info!(send.id = %SendId::from_uuid(send.id), event = kind.event(), from = %who, "inbound message matched");
    Ok(Some(kind.event()))
}
