-- OAuth mailboxes (Google, Microsoft): the connect flow's single-use states, and what a
-- mailbox connected over OAuth records.
CREATE TABLE oauth_states (
    state_hash    bytea PRIMARY KEY,          -- SHA-256 of the state: the value itself is not kept
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    api_key_id    uuid NOT NULL,              -- the key that started the flow
    provider      text NOT NULL CHECK (provider IN ('google', 'microsoft')),
    transport     text NOT NULL CHECK (transport IN ('smtp', 'api')),
    pkce_verifier text NOT NULL,              -- single-use, minutes-long, useless without the code
    request       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);

ALTER TABLE mailboxes ADD COLUMN auth_kind text NOT NULL DEFAULT 'password'
    CHECK (auth_kind IN ('password', 'oauth'));
ALTER TABLE mailboxes ADD COLUMN oauth_provider text CHECK (oauth_provider IN ('google', 'microsoft'));
ALTER TABLE mailboxes ADD COLUMN transport text NOT NULL DEFAULT 'smtp' CHECK (transport IN ('smtp', 'api'));
ALTER TABLE mailboxes ADD COLUMN oauth_scopes text[];
ALTER TABLE mailboxes ADD COLUMN token_expires_at timestamptz;
