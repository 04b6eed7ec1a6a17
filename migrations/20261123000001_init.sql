-- Mailroom's schema: tenancy, vault keys, mailboxes, the send ledger, the event outbox.
-- Every tenant table carries workspace_id; composite foreign keys make a row's workspace
-- match its parent's, so no query can join across a workspace boundary by mistake.

CREATE TABLE workspaces (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    parent_id   uuid REFERENCES workspaces (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspace_keys (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    version      integer NOT NULL CHECK (version > 0),
    wrapped_key  bytea NOT NULL,
    provider     text NOT NULL,
    kms_key_id   text NOT NULL,
    state        text NOT NULL CHECK (state IN ('active', 'retired', 'destroyed')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, version)
);
CREATE UNIQUE INDEX workspace_keys_one_active ON workspace_keys (workspace_id) WHERE state = 'active';

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name          text NOT NULL,
    secret_hash   bytea NOT NULL,
    scopes        text[] NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mailboxes (
    id             uuid PRIMARY KEY,
    workspace_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    from_address   text NOT NULL,
    from_name      text,
    smtp_host      text NOT NULL,
    smtp_port      integer NOT NULL CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_tls       text NOT NULL CHECK (smtp_tls IN ('starttls', 'implicit')),
    smtp_username  text NOT NULL,
    imap_host      text,
    imap_port      integer CHECK (imap_port BETWEEN 1 AND 65535),
    imap_tls       text CHECK (imap_tls IN ('starttls', 'implicit', 'none')),
    imap_username  text,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_reauth', 'disabled')),
    paused_until   timestamptz,
    pause_reason   text,
    throttle_count integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, id)
);

CREATE TABLE mailbox_secrets (
    workspace_id  uuid NOT NULL,
    mailbox_id    uuid NOT NULL,
    field         text NOT NULL CHECK (field IN ('smtp_password', 'imap_password', 'refresh_token', 'access_token')),
    sealed        bytea NOT NULL,
    key_version   integer NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, field),
    FOREIGN KEY (workspace_id, mailbox_id) REFERENCES mailboxes (workspace_id, id) ON DELETE CASCADE
);

CREATE TABLE sends (
    id               uuid PRIMARY KEY,
    workspace_id     uuid NOT NULL,
    mailbox_id       uuid NOT NULL,
    idempotency_key  text NOT NULL,
    payload_hash     bytea NOT NULL,
    payload          jsonb NOT NULL,
    message_id       text NOT NULL,
    state            text NOT NULL CHECK (state IN ('queued', 'sending', 'retry_wait', 'sent', 'failed', 'ambiguous', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    send_at          timestamptz,
    next_attempt_at  timestamptz,
    lease_until      timestamptz,
    locked_by        text,
    last_response    text,
    failure_reason   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (workspace_id, idempotency_key),
    UNIQUE (message_id),
    FOREIGN KEY (workspace_id, mailbox_id) REFERENCES mailboxes (workspace_id, id)
);
CREATE INDEX sends_mailbox_state ON sends (mailbox_id, state);

-- The outbox: written in the same transaction as the state change that causes it.
CREATE TABLE events (
    seq           bigserial PRIMARY KEY,
    id            uuid NOT NULL UNIQUE,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind          text NOT NULL,
    send_id       uuid,
    mailbox_id    uuid,
    data          jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_workspace_seq ON events (workspace_id, seq);

CREATE TABLE suppressions (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    address       text NOT NULL,
    reason        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, address)
);

-- Append-only: the trigger refuses UPDATE and DELETE for every role but a superuser's
-- explicit `ALTER TABLE ... DISABLE TRIGGER`.
CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,
    workspace_id  uuid,
    actor         text NOT NULL,
    action        text NOT NULL,
    target        text,
    source        text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
