-- What stops a send's sequence: the inbound messages (of any send of the same sequence) that
-- cancel it while it waits. By default a person's reply, an unsubscribe request and a hard
-- bounce; an automatic reply only when asked; nothing for a send that opts out ('{}').
ALTER TABLE sends ADD COLUMN stop_on text[] NOT NULL DEFAULT '{reply,unsubscribe,bounce}'
    CHECK (stop_on <@ '{reply,auto_reply,unsubscribe,bounce}'::text[]);

-- The reply worker stops sequences in the transaction that records the reply: it may cancel
-- a waiting send, and change nothing else of it.
GRANT UPDATE (state, failure_reason, next_attempt_at, finished_at, updated_at) ON sends TO mailroom_reply;

-- A stopped sequence stays stopped: a step enqueued after the reply, or one a worker held at
-- that moment whose attempt failed and comes round again, is cancelled before it is tried.
CREATE TABLE sequence_stops (
    workspace_id uuid NOT NULL,
    sequence     text NOT NULL,
    trigger      text NOT NULL CHECK (trigger IN ('reply', 'auto_reply', 'unsubscribe', 'bounce')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, sequence, trigger)
);
GRANT SELECT, INSERT ON sequence_stops TO mailroom_reply;
GRANT SELECT ON sequence_stops TO mailroom_send;
