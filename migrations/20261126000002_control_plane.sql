-- The control plane over the API: API keys listed and revoked (who made them, when last
-- used), and grants through which a parent agency acts in a client sub-workspace.
ALTER TABLE api_keys ADD COLUMN created_by text, ADD COLUMN last_used_at timestamptz;
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, created_at);
CREATE INDEX workspaces_parent ON workspaces (parent_id) WHERE parent_id IS NOT NULL;

-- A grant lets the parent (`grantee_id`) act in the child (`workspace_id`) within `scopes`.
-- One live grant per pair; revoking is instant (every request looks the grant up).
CREATE TABLE workspace_grants (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    grantee_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    scopes       text[] NOT NULL CHECK (cardinality(scopes) > 0),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CHECK (workspace_id <> grantee_id)
);
CREATE UNIQUE INDEX workspace_grants_live ON workspace_grants (workspace_id, grantee_id) WHERE revoked_at IS NULL;

-- The audit trail read per workspace, newest last.
CREATE INDEX audit_log_workspace ON audit_log (workspace_id, id);

-- Each audit row also names the acting key's role and the request that did it.
ALTER TABLE audit_log ADD COLUMN role text, ADD COLUMN request_id text;

-- Failed authentications are recorded at most once a minute per source address.
CREATE INDEX audit_log_failed_auth ON audit_log (source, created_at) WHERE action = 'auth.failed';

-- A key an agency makes in a client through a grant lives only as long as that grant: revoking
-- the grant cuts off every key made through it too.
ALTER TABLE api_keys ADD COLUMN via_grant uuid REFERENCES workspace_grants (id);
