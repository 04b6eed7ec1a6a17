-- Least privilege between services. The roles themselves are cluster-wide and are created
-- before the migrations run (`mailroom_store::roles::ensure`, or deploy/sql/roles.sql where
-- the migrating user cannot create roles). Each service connects (or `SET ROLE`s) as its own
-- role, which owns nothing and so cannot bypass row-level security; migrations run as the
-- owner. `SELECT ... FOR UPDATE` needs UPDATE, so some grants below name UPDATE for a lock.
-- Boundaries, each tested with the role itself:
--   * the reply worker cannot read SMTP passwords (the policy on mailbox_secrets below);
--   * the send worker cannot write inbound messages;
--   * nothing but the API writes API keys;
--   * the audit log takes INSERT (and the API's reads) only, from every service.

GRANT USAGE ON SCHEMA public TO mailroom_api, mailroom_send, mailroom_reply;

-- The API: the control plane, connecting mailboxes, accepting sends, serving the feed.
GRANT SELECT, INSERT, UPDATE ON workspaces, workspace_keys, api_keys, mailboxes, sends, webhooks,
    oauth_states, workspace_grants TO mailroom_api;
GRANT SELECT, INSERT, DELETE ON mailbox_secrets TO mailroom_api;
GRANT SELECT, INSERT ON events TO mailroom_api;
GRANT UPDATE (pos) ON events TO mailroom_api;
GRANT SELECT ON suppressions, usage_daily TO mailroom_api;
GRANT SELECT, INSERT ON audit_log, usage_deltas TO mailroom_api;
GRANT SELECT, DELETE ON webhook_deliveries TO mailroom_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_buckets TO mailroom_api;
GRANT USAGE, SELECT ON SEQUENCE events_seq_seq, audit_log_id_seq, events_pos TO mailroom_api;

-- The send worker: claiming and finishing sends, pacing, rotation's re-sealing, housekeeping.
GRANT SELECT, UPDATE ON workspace_keys, sends, webhooks TO mailroom_send;
-- A mailbox's status, pauses and pacing slot; never where it connects or as whom.
GRANT SELECT ON mailboxes TO mailroom_send;
GRANT UPDATE (status, status_reason, paused_until, pause_reason, throttle_count, next_slot_at, token_expires_at,
    updated_at) ON mailboxes TO mailroom_send;
GRANT SELECT, INSERT, UPDATE ON mailbox_secrets, usage_daily TO mailroom_send;
GRANT SELECT, INSERT, UPDATE, DELETE ON mailbox_sessions, usage_deltas TO mailroom_send;
GRANT SELECT, INSERT ON events, suppressions TO mailroom_send;
GRANT INSERT ON audit_log TO mailroom_send;
GRANT USAGE, SELECT ON SEQUENCE events_seq_seq, audit_log_id_seq TO mailroom_send;

-- The reply worker: reading inboxes, recording replies and bounces, delivering webhooks.
GRANT SELECT ON workspace_keys, sends, mailboxes, webhooks TO mailroom_reply;
-- A refused grant marks the mailbox (and a refreshed token its expiry); a webhook's position
-- moves; events get their feed position. Nothing about where a mailbox connects.
GRANT UPDATE (status, status_reason, token_expires_at, updated_at) ON mailboxes TO mailroom_reply;
GRANT UPDATE (last_pos) ON webhooks TO mailroom_reply;
GRANT SELECT, INSERT ON events TO mailroom_reply;
GRANT UPDATE (pos) ON events TO mailroom_reply;
GRANT SELECT, INSERT, UPDATE ON mailbox_secrets, mailbox_cursors, webhook_deliveries TO mailroom_reply;
GRANT SELECT, INSERT ON inbound_messages, suppressions TO mailroom_reply;
GRANT USAGE, SELECT ON SEQUENCE events_seq_seq, events_pos TO mailroom_reply;

-- The rate limiter's function runs as its caller: the API only.
REVOKE EXECUTE ON FUNCTION rate_draw(text[], float8[], float8[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rate_draw(text[], float8[], float8[]) TO mailroom_api;

-- Sealed credentials: every field for the API and the send worker; the reply worker never
-- sees a row holding an SMTP password (it reads IMAP passwords and OAuth tokens only).
ALTER TABLE mailbox_secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY secrets_every_field ON mailbox_secrets TO mailroom_api, mailroom_send USING (true) WITH CHECK (true);
CREATE POLICY secrets_but_smtp_passwords ON mailbox_secrets TO mailroom_reply
    USING (field <> 'smtp_password') WITH CHECK (field <> 'smtp_password');
