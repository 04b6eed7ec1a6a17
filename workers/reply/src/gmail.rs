//! One check of a Gmail mailbox through the Gmail API: messages added to INBOX since the stored
//! `historyId`; on the first look, or when Gmail has dropped that history (404), a bounded
//! listing by date instead, deduplicated like an IMAP re-scan. The cursor is taken before the
//! listing, so what arrives meanwhile is read next time (and deduplicated if read twice).

use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_store::replies::CursorRow;
use mailroom_transport::gmail_inbox::{self, HistoryError};

use crate::{Ctx, check::Checked};

pub(crate) async fn check(
    ctx: &Ctx,
    ws: WorkspaceId,
    mbx: MailboxId,
    cursor: &CursorRow,
) -> anyhow::Result<(Checked, String)> {
    let mailbox = crate::check::mailbox(ctx, ws, mbx).await?;
    let oauth = &ctx.config.oauth;
    let provider = oauth.provider("google").ok_or_else(|| anyhow::anyhow!("Google is not configured"))?;
    let token = crate::token::access(ctx, ws, mbx).await?;
    let (http, base) = (&oauth.http, provider.api_base.as_str());
    let since = crate::check::rescan_since(cursor, &mailbox).timestamp();
    let batch = ctx.config.batch;
    let (ids, history) = match cursor.history_id.as_deref() {
        Some(start) => match gmail_inbox::added_since(http, base, &token, start).await {
            Ok(found) => found,
            Err(HistoryError::Expired) => {
                tracing::info!(mailbox.id = %mbx, "Gmail history expired; re-reading by date");
                let now = gmail_inbox::current_history(http, base, &token).await?;
                (gmail_inbox::listed_after(http, base, &token, since, batch).await?, now)
            }
            Err(e) => return Err(e.into()),
        },
        None => {
            let now = gmail_inbox::current_history(http, base, &token).await?;
            (gmail_inbox::listed_after(http, base, &token, since, batch).await?, now)
        }
    };
    let mut checked = Checked { read: ids.len(), events: 0 };
    for id in &ids {
        let raw = gmail_inbox::raw(http, base, &token, id).await?;
        checked.events += usize::from(crate::check::record_raw(ctx, ws, mbx, &raw).await?);
    }
    Ok((checked, history))
}
