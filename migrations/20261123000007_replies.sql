-- Reply detection and the event feed.

-- One cursor per mailbox and source, claimed by one reply worker at a time (a lease).
CREATE TABLE mailbox_cursors (
    workspace_id  uuid NOT NULL,
    mailbox_id    uuid NOT NULL,
    source        text NOT NULL CHECK (source IN ('imap', 'gmail', 'graph')),
    uidvalidity   bigint,
    last_uid      bigint NOT NULL DEFAULT 0,
    history_id    text,
    delta_link    text,
    next_check_at timestamptz NOT NULL DEFAULT now(),
    locked_by     text,
    lease_until   timestamptz,
    checked_at    timestamptz,
    last_error    text,
    PRIMARY KEY (mailbox_id, source),
    FOREIGN KEY (workspace_id, mailbox_id) REFERENCES mailboxes (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX mailbox_cursors_due ON mailbox_cursors (next_check_at);

-- Every inbound message seen, once: its event is written only by the insert that creates
-- this row, so a message read twice (a re-scan, a crash before the cursor moved) yields one.
CREATE TABLE inbound_messages (
    workspace_id uuid NOT NULL,
    mailbox_id   uuid NOT NULL,
    dedupe_key   text NOT NULL,
    send_id      uuid,
    kind         text NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, dedupe_key)
);

-- The scheduler's own data, passed at enqueue and returned in every event of the send.
ALTER TABLE sends ADD COLUMN metadata jsonb;

-- Events get their feed position when published, in commit order, so a reader paging by
-- position never skips an event whose transaction committed late.
CREATE SEQUENCE events_pos;
ALTER TABLE events ADD COLUMN pos bigint UNIQUE;
CREATE INDEX events_unpublished ON events (seq) WHERE pos IS NULL;
CREATE INDEX events_workspace_pos ON events (workspace_id, pos);
