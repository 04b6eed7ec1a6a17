-- A mailbox paused by hand (`POST /v1/mailboxes/{id}/pause`): it sends nothing and its sends
-- wait, parked, until it is resumed; its replies are still read.
ALTER TABLE mailboxes DROP CONSTRAINT mailboxes_status_check;
ALTER TABLE mailboxes ADD CONSTRAINT mailboxes_status_check
    CHECK (status IN ('active', 'paused', 'needs_reauth', 'disabled', 'unusable', 'disconnected'));
