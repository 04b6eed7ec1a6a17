-- Webhooks signed as the Standard Webhooks specification says, secret rotation with an
-- overlap, switching an endpoint off (by hand, or by the engine after it failed for too long),
-- replays, and the feed filtered by type and mailbox.

ALTER TABLE webhooks
    -- Off: the endpoint gets nothing (events published meanwhile are skipped, not kept).
    ADD COLUMN enabled          boolean NOT NULL DEFAULT true,
    ADD COLUMN disabled_reason  text,
    -- Since when every delivery attempt has failed (NULL after any success), and the last
    -- failure (a failure long after the last one starts the count again).
    ADD COLUMN failing_since    timestamptz,
    ADD COLUMN last_failure_at  timestamptz,
    -- The secret before the last rotation, still signing until `previous_until`.
    ADD COLUMN previous_sealed      bytea,
    ADD COLUMN previous_key_version integer,
    ADD COLUMN previous_until       timestamptz,
    -- Endpoints registered before the standard scheme also get the old `Mailroom-Signature`
    -- and `Mailroom-Event-Id` headers, until their owner turns it off.
    ADD COLUMN legacy_signature boolean NOT NULL DEFAULT true;
ALTER TABLE webhooks ALTER COLUMN legacy_signature SET DEFAULT false;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_previous_whole
    CHECK ((previous_sealed IS NULL) = (previous_key_version IS NULL)
           AND (previous_sealed IS NULL) = (previous_until IS NULL));

-- The delivering worker notes failures and switches an endpoint off; the API changes the
-- rest, and replays a delivery.
GRANT UPDATE (failing_since, last_failure_at, enabled, disabled_reason) ON webhooks TO mailroom_reply;
GRANT UPDATE (state, last_status, locked_until, finished_at) ON webhook_deliveries TO mailroom_reply;
GRANT UPDATE (state, next_attempt_at, finished_at, locked_until, last_status) ON webhook_deliveries TO mailroom_api;

-- The feed by type, and by mailbox.
CREATE INDEX events_workspace_kind_pos ON events (workspace_id, kind, pos);
CREATE INDEX events_workspace_mailbox_pos ON events (workspace_id, mailbox_id, pos) WHERE mailbox_id IS NOT NULL;
