//! One check of a Microsoft 365 mailbox through Microsoft Graph: the Inbox's delta query from
//! the stored link; on the first look, or when Graph has dropped that delta state (410), a new
//! round of messages received since a day before the last look, deduplicated like an IMAP
//! re-scan. At most one batch is read per check; a round left mid-way stores its next-page
//! link and the mailbox is looked at again at once.

use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_store::replies::CursorRow;
use mailroom_transport::graph_inbox::{self, DeltaError, Link};

use crate::{Ctx, check::Checked};

pub(crate) async fn check(
    ctx: &Ctx,
    ws: WorkspaceId,
    mbx: MailboxId,
    cursor: &CursorRow,
) -> anyhow::Result<(Checked, Link)> {
    let mailbox = crate::check::mailbox(ctx, ws, mbx).await?;
    let oauth = &ctx.config.oauth;
    let provider = oauth.provider("microsoft").ok_or_else(|| anyhow::anyhow!("Microsoft is not configured"))?;
    let token = crate::token::access(ctx, ws, mbx).await?;
    let (http, base, batch) = (&oauth.http, provider.api_base.as_str(), ctx.config.batch);
    let since = crate::check::rescan_since(cursor, &mailbox);
    let delta = match cursor.delta_link.as_deref() {
        Some(link) => match graph_inbox::read(http, base, &token, link, batch).await {
            Err(DeltaError::Expired) => {
                tracing::info!(mailbox.id = %mbx, "Graph delta state expired; re-reading by date");
                graph_inbox::read(http, base, &token, &graph_inbox::initial_url(base, since)?, batch).await?
            }
            other => other?,
        },
        None => graph_inbox::read(http, base, &token, &graph_inbox::initial_url(base, since)?, batch).await?,
    };
    let mut checked = Checked { read: delta.ids.len(), events: 0 };
    for id in &delta.ids {
        let raw = graph_inbox::raw(http, base, &token, id).await?;
        checked.events += usize::from(crate::check::record_raw(ctx, ws, mbx, &raw).await?);
    }
    Ok((checked, delta.link))
}
