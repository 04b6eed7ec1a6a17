-- Row-level security under the application's own workspace filters. The API works in one
-- workspace per transaction, named by the transaction-local setting `mailroom.workspace`
-- (`set_config(..., true)`, set by `mailroom_store::scope` from the authenticated key): its
-- role sees and writes only that workspace's rows, whatever a statement's WHERE clause says.
-- A connection back in the pool carries no setting, and without one the API sees nothing.
--
-- The workers' work spans workspaces by nature (claiming due sends, sweeping leases, checking
-- every mailbox): their roles have a policy of their own on each table, and their walls are the
-- per-table and per-column grants of the roles migration. The few API reads that must precede
-- or span workspaces (a key looked up by its id, a failed authentication, an OAuth callback,
-- publishing feed positions, the operator's list, the start-up check of the master key) go
-- through the SECURITY DEFINER functions at the end, each returning only what its caller needs.
-- Tables stay owned by the migrating user, who is no service; RLS is not FORCEd, so these
-- functions (and `stop_sequence`) run as the owner.

-- The workspace a transaction works in, or NULL. The policies call it as a scalar subquery,
-- `(SELECT mailroom_scope())`: an init plan evaluated once per statement whose value the
-- tables' indexes can use, rather than once per row examined.
CREATE FUNCTION mailroom_scope() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('mailroom.workspace', true), '')::uuid
$$;

-- The reply worker's policy on sealed credentials (no SMTP passwords) stays; the API's
-- becomes the tenant wall below.
DROP POLICY secrets_every_field ON mailbox_secrets;
CREATE POLICY send_worker ON mailbox_secrets TO mailroom_send USING (true) WITH CHECK (true);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['workspace_keys', 'api_keys', 'mailboxes', 'mailbox_secrets', 'sends', 'events',
        'suppressions', 'audit_log', 'mailbox_cursors', 'inbound_messages', 'webhooks', 'webhook_deliveries',
        'oauth_states', 'usage_daily', 'usage_deltas', 'sequence_stops']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant ON %I TO mailroom_api
                            USING (workspace_id = (SELECT mailroom_scope()))
                            WITH CHECK (workspace_id = (SELECT mailroom_scope()))', t);
        IF t <> 'mailbox_secrets' THEN
            EXECUTE format('CREATE POLICY workers ON %I TO mailroom_send, mailroom_reply USING (true) WITH CHECK (true)', t);
        END IF;
    END LOOP;
END $$;

-- A workspace sees itself and the sub-workspaces it created, never its parent or siblings;
-- it writes only its own row (a sub-workspace is created in its own scope).
ALTER TABLE workspaces ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON workspaces FOR SELECT TO mailroom_api
    USING (id = (SELECT mailroom_scope()) OR parent_id = (SELECT mailroom_scope()));
CREATE POLICY tenant ON workspaces TO mailroom_api
    USING (id = (SELECT mailroom_scope())) WITH CHECK (id = (SELECT mailroom_scope()));
CREATE POLICY workers ON workspaces TO mailroom_send, mailroom_reply USING (true) WITH CHECK (true);

-- A grant belongs to the child it opens (`workspace_id`), which alone writes it, and is seen by
-- the parent it opens it to (`grantee_id`): the parent's key checks its reach through it.
ALTER TABLE workspace_grants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON workspace_grants FOR SELECT TO mailroom_api
    USING (workspace_id = (SELECT mailroom_scope()) OR grantee_id = (SELECT mailroom_scope()));
CREATE POLICY tenant ON workspace_grants TO mailroom_api
    USING (workspace_id = (SELECT mailroom_scope())) WITH CHECK (workspace_id = (SELECT mailroom_scope()));
CREATE POLICY workers ON workspace_grants TO mailroom_send, mailroom_reply USING (true) WITH CHECK (true);
CREATE INDEX workspace_grants_grantee ON workspace_grants (grantee_id, workspace_id);

-- The tenant tables whose policy column led no index.
CREATE INDEX mailbox_secrets_workspace ON mailbox_secrets (workspace_id, mailbox_id);
CREATE INDEX webhook_deliveries_workspace ON webhook_deliveries (workspace_id, webhook_id);
CREATE INDEX oauth_states_workspace ON oauth_states (workspace_id);
CREATE INDEX mailbox_cursors_workspace ON mailbox_cursors (workspace_id, mailbox_id);
CREATE INDEX inbound_messages_workspace ON inbound_messages (workspace_id, mailbox_id);

-- The narrow paths across workspaces, each for the API only unless said otherwise.

-- A key by its id: authentication learns the workspace from it.
CREATE FUNCTION mailroom_api_key(p_id uuid) RETURNS SETOF api_keys
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT * FROM api_keys WHERE id = p_id
$$;

-- A failed authentication, at most once a minute per source address, in the named key's
-- workspace (or none). Whether a row was written.
CREATE FUNCTION mailroom_failed_auth(p_key uuid, p_actor text, p_role text, p_target text, p_source text,
    p_request_id text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH written AS (
        INSERT INTO audit_log (workspace_id, actor, role, action, target, source, request_id)
        SELECT (SELECT workspace_id FROM api_keys WHERE id = p_key), p_actor, p_role, 'auth.failed', p_target,
               p_source, p_request_id
        WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE action = 'auth.failed' AND source = p_source
                            AND created_at > now() - interval '1 minute')
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM written)
$$;

-- An OAuth state, used up: the callback carries no key, only the state.
CREATE FUNCTION mailroom_consume_oauth_state(p_hash bytea) RETURNS SETOF oauth_states
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE oauth_states SET used_at = now() WHERE state_hash = p_hash AND used_at IS NULL RETURNING *
$$;

-- Feed positions for committed events of every workspace, publishers taking turns (see
-- `mailroom_store::events::publish`). The reply worker publishes too.
CREATE FUNCTION mailroom_publish_events() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7243001);
    UPDATE events e SET pos = p.pos
    FROM (SELECT seq, nextval('events_pos') AS pos
          FROM (SELECT seq FROM events WHERE pos IS NULL ORDER BY seq LIMIT 10000) t) p
    WHERE e.seq = p.seq;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Every live workspace, for the operator's admin token.
CREATE FUNCTION mailroom_workspaces() RETURNS SETOF workspaces
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT * FROM workspaces WHERE deleted_at IS NULL
$$;

-- Up to `p_per_master` wrapped keys per master key with how many keys it wraps: the start-up
-- check of the configured master key (every service runs it). Wrapped keys only, which open
-- nothing without the master key.
CREATE FUNCTION mailroom_master_key_samples(p_per_master bigint)
RETURNS TABLE (workspace_id uuid, version integer, wrapped_key bytea, provider text, kms_key_id text, state text,
    wrapped bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT k.workspace_id, k.version, k.wrapped_key, k.provider, k.kms_key_id, k.state, k.wrapped FROM (
        SELECT w.*, count(*) OVER (PARTITION BY w.provider, w.kms_key_id) AS wrapped,
               row_number() OVER (PARTITION BY w.provider, w.kms_key_id
                                  ORDER BY (w.state = 'active') DESC, w.created_at DESC) AS n
        FROM workspace_keys w WHERE w.wrapped_key IS NOT NULL) k
    WHERE k.n <= LEAST(p_per_master, 3) -- a check needs a few, never the whole table
    ORDER BY k.provider, k.kms_key_id, k.n
$$;

REVOKE EXECUTE ON FUNCTION mailroom_api_key(uuid), mailroom_failed_auth(uuid, text, text, text, text, text),
    mailroom_consume_oauth_state(bytea), mailroom_publish_events(), mailroom_workspaces(),
    mailroom_master_key_samples(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mailroom_api_key(uuid), mailroom_failed_auth(uuid, text, text, text, text, text),
    mailroom_consume_oauth_state(bytea), mailroom_workspaces() TO mailroom_api;
GRANT EXECUTE ON FUNCTION mailroom_publish_events() TO mailroom_api, mailroom_reply;
GRANT EXECUTE ON FUNCTION mailroom_master_key_samples(bigint) TO mailroom_api, mailroom_send, mailroom_reply;
