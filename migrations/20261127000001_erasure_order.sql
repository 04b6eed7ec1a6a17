-- Ordering erasures against the workers, and the one-address rule as a constraint.

-- The reply worker reads the sends an inbound message answers through this function, which
-- locks them (FOR KEY SHARE) until the worker's transaction ends: an erasure of the send's
-- contact (which locks its sends FOR UPDATE) then comes wholly before the message is recorded
-- (and the worker keeps nothing of the contact) or wholly after (and rewrites what it kept).
-- A locking read needs UPDATE on the table, which the reply worker does not hold; the lock
-- is all this function adds to its SELECT.
CREATE FUNCTION sends_answered(p_workspace uuid, p_message_ids text[])
RETURNS TABLE (id uuid, mailbox_id uuid, message_id text, metadata jsonb, sequence text, erased boolean)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT s.id, s.mailbox_id, s.message_id, s.metadata, s.sequence, s.erased_at IS NOT NULL
    FROM sends s
    WHERE s.workspace_id = p_workspace AND s.message_id = ANY (p_message_ids)
    ORDER BY s.id
    FOR KEY SHARE
$$;
REVOKE EXECUTE ON FUNCTION sends_answered(uuid, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sends_answered(uuid, text[]) TO mailroom_reply;

-- One address, one mailbox per workspace (disconnected ones aside). Connecting checks this
-- under a lock first to answer with the existing mailbox; the index makes it a rule. A
-- database that already holds two such mailboxes stops here with what to do.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM mailboxes WHERE status <> 'disconnected'
               GROUP BY workspace_id, lower(from_address) HAVING count(*) > 1) THEN
        RAISE EXCEPTION 'a workspace has two connected mailboxes for one address'
            USING HINT = 'find them with: SELECT workspace_id, lower(from_address), array_agg(id) FROM mailboxes '
                         'WHERE status <> ''disconnected'' GROUP BY 1, 2 HAVING count(*) > 1; disconnect one of '
                         'each (DELETE /v1/mailboxes/{id}), then migrate again';
    END IF;
END
$$;
CREATE UNIQUE INDEX mailboxes_one_address ON mailboxes (workspace_id, lower(from_address))
    WHERE status <> 'disconnected';

-- An erasure moves a stopped sequence to its rewritten id (a stop recorded meanwhile under
-- that id is kept): it deletes the old row and inserts the new one.
GRANT INSERT, DELETE ON sequence_stops TO mailroom_api;
