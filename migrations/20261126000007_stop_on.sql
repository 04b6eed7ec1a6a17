-- What stops a send's sequence: the inbound messages (of any send of the same sequence) that
-- cancel it while it waits. By default a person's reply, an unsubscribe request and a hard
-- bounce; an automatic reply only when asked; nothing for a send that opts out ('{}').
ALTER TABLE sends ADD COLUMN stop_on text[] NOT NULL DEFAULT '{reply,unsubscribe,bounce}'
    CHECK (stop_on <@ '{reply,auto_reply,unsubscribe,bounce}'::text[]);


-- A stopped sequence stays stopped: a step enqueued after the reply, or one a worker held at
-- that moment whose attempt failed and comes round again, is cancelled before it is tried.
CREATE TABLE sequence_stops (
    workspace_id uuid NOT NULL,
    sequence     text NOT NULL,
    trigger      text NOT NULL CHECK (trigger IN ('reply', 'auto_reply', 'unsubscribe', 'bounce')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, sequence, trigger)
);
GRANT SELECT ON sequence_stops TO mailroom_send;

-- The reply worker stops a sequence in the transaction that records the reply, through this
-- one function: it records the stop and cancels the sequence's waiting steps, each with its
-- event, and can do nothing else to a send (the reply worker holds no UPDATE on sends).
CREATE FUNCTION stop_sequence(p_workspace uuid, p_sequence text, p_trigger text, p_reason text)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH stop AS (
        INSERT INTO sequence_stops (workspace_id, sequence, trigger) VALUES (p_workspace, p_sequence, p_trigger)
        ON CONFLICT DO NOTHING),
    t AS (
        SELECT id FROM sends
        WHERE workspace_id = p_workspace AND sequence = p_sequence AND state IN ('queued', 'retry_wait')
          AND reconcile_reason IS NULL AND p_trigger = ANY (stop_on)
        ORDER BY id FOR UPDATE),
    c AS (
        UPDATE sends SET state = 'cancelled', failure_reason = p_reason, next_attempt_at = NULL,
            finished_at = now(), updated_at = now()
        FROM t WHERE sends.id = t.id AND sends.state IN ('queued', 'retry_wait') AND sends.reconcile_reason IS NULL
        RETURNING sends.id, sends.workspace_id, sends.mailbox_id, sends.message_id),
    e AS (
        INSERT INTO events (id, workspace_id, kind, send_id, mailbox_id, data)
        SELECT gen_random_uuid(), workspace_id, 'send.cancelled', id, mailbox_id,
               jsonb_build_object('reason', p_reason, 'message_id', message_id)
        FROM c)
    SELECT count(*) FROM c
$$;
REVOKE EXECUTE ON FUNCTION stop_sequence(uuid, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stop_sequence(uuid, text, text, text) TO mailroom_reply;
