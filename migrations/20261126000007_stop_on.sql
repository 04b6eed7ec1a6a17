-- What stops a send's sequence: the inbound messages (of any send of the same sequence) that
-- cancel it while it waits. By default a person's reply, an unsubscribe request and a hard
-- bounce; an automatic reply only when asked; nothing for a send that opts out ('{}').
ALTER TABLE sends ADD COLUMN stop_on text[] NOT NULL DEFAULT '{reply,unsubscribe,bounce}'
    CHECK (stop_on <@ '{reply,auto_reply,unsubscribe,bounce}'::text[]);

-- The reply worker stops sequences in the transaction that records the reply: it may cancel
-- a waiting send, and change nothing else of it.
GRANT UPDATE (state, failure_reason, next_attempt_at, finished_at, updated_at) ON sends TO mailroom_reply;
