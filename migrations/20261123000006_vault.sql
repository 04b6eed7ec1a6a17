-- The vault for real: key rotation, crypto-shredding, unusable mailboxes.

-- A new workspace key version is `pending` for one cache TTL before it becomes active, so
-- every process sees it before anything is sealed under it. A destroyed key keeps its row
-- (the history of versions) but not its wrapped bytes.
ALTER TABLE workspace_keys DROP CONSTRAINT workspace_keys_state_check;
ALTER TABLE workspace_keys ADD CONSTRAINT workspace_keys_state_check
    CHECK (state IN ('pending', 'active', 'retired', 'destroyed'));
ALTER TABLE workspace_keys ALTER COLUMN wrapped_key DROP NOT NULL;
ALTER TABLE workspace_keys ADD CONSTRAINT workspace_keys_destroyed_empty
    CHECK ((state = 'destroyed') = (wrapped_key IS NULL));
ALTER TABLE workspace_keys ADD COLUMN activate_after timestamptz;
ALTER TABLE workspace_keys ADD COLUMN state_changed_at timestamptz NOT NULL DEFAULT now();
CREATE UNIQUE INDEX workspace_keys_one_pending ON workspace_keys (workspace_id) WHERE state = 'pending';

-- unusable: its credential cannot be opened (wrong encryption context, tampered or destroyed
-- key); disconnected: its credentials were destroyed on request.
ALTER TABLE mailboxes DROP CONSTRAINT mailboxes_status_check;
ALTER TABLE mailboxes ADD CONSTRAINT mailboxes_status_check
    CHECK (status IN ('active', 'needs_reauth', 'disabled', 'unusable', 'disconnected'));
ALTER TABLE mailboxes ADD COLUMN status_reason text;

-- A deleted workspace keeps its rows' skeleton for the audit trail; its keys are destroyed.
ALTER TABLE workspaces ADD COLUMN deleted_at timestamptz;
