-- Erasure of a contact (`POST /v1/contacts/erase`) and the workspace export.

-- A send whose recipient was erased keeps its ledger row (id, idempotency key, payload hash,
-- Message-ID, state, timestamps), so no request can make it go out again; its payload is
-- replaced and this instant recorded. A worker never sends an erased payload.
ALTER TABLE sends ADD COLUMN erased_at timestamptz;

-- Per-workspace secrets that belong to no mailbox, sealed like credentials. One for now: the
-- key of the erased addresses' hashes (`erasure`), created at a workspace's first erasure.
-- Sealed under the workspace key, so a dump of the database alone cannot test guesses
-- against the hashes; re-sealed by key rotation like every other sealed value.
CREATE TABLE workspace_secrets (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name IN ('erasure')),
    sealed       bytea NOT NULL,
    key_version  integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, name)
);
ALTER TABLE workspace_secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON workspace_secrets TO mailroom_api
    USING (workspace_id = (SELECT mailroom_scope())) WITH CHECK (workspace_id = (SELECT mailroom_scope()));
CREATE POLICY workers ON workspace_secrets TO mailroom_send USING (true) WITH CHECK (true);

-- The API creates and reads the key; the send worker re-seals it during rotation.
GRANT SELECT, INSERT ON workspace_secrets TO mailroom_api;
GRANT SELECT, UPDATE ON workspace_secrets TO mailroom_send;
-- Erasure rewrites the payloads of events that name the address.
GRANT UPDATE (data) ON events TO mailroom_api;
-- ... and the scheduler's sequence ids that contain it.
GRANT SELECT, UPDATE (sequence) ON sequence_stops TO mailroom_api;
