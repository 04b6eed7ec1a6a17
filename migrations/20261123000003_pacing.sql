-- Per-mailbox pacing, shared by every worker process (docs/design.md section 5).
-- Defaults here only cover rows that existed before pacing; the API writes explicit values.
ALTER TABLE mailboxes
    ADD COLUMN daily_cap     integer CHECK (daily_cap > 0),
    ADD COLUMN min_gap_ms    integer NOT NULL DEFAULT 0 CHECK (min_gap_ms >= 0),
    ADD COLUMN jitter_ms     integer NOT NULL DEFAULT 0 CHECK (jitter_ms >= 0),
    ADD COLUMN window_start  time,
    ADD COLUMN window_end    time,
    ADD COLUMN time_zone     text NOT NULL DEFAULT 'UTC',
    ADD COLUMN max_sessions  integer NOT NULL DEFAULT 4 CHECK (max_sessions > 0),
    -- The earliest start of the mailbox's next send: each reservation pushes it forward.
    ADD COLUMN next_slot_at  timestamptz,
    ADD CONSTRAINT mailboxes_window_both_or_neither CHECK ((window_start IS NULL) = (window_end IS NULL));

-- The instant reserved for a send (it counts against the daily cap from then on).
ALTER TABLE sends ADD COLUMN slot_at timestamptz;
CREATE INDEX sends_mailbox_slot ON sends (mailbox_id, slot_at) WHERE slot_at IS NOT NULL;
CREATE INDEX sends_workspace_state ON sends (workspace_id, state);

-- Attempts in flight per mailbox, across processes. A row whose lease has passed belongs to a
-- dead worker and no longer counts.
CREATE TABLE mailbox_sessions (
    send_id      uuid PRIMARY KEY,
    mailbox_id   uuid NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    lease_until  timestamptz NOT NULL
);
CREATE INDEX mailbox_sessions_mailbox ON mailbox_sessions (mailbox_id);
