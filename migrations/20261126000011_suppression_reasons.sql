-- Why an address is suppressed, as a kind the API filters on (`reason` keeps the detail: the
-- provider's answer, the report's status). Existing rows came from unsubscribe requests or
-- hard bounces.
ALTER TABLE suppressions ADD COLUMN kind text;
UPDATE suppressions SET kind = CASE WHEN reason LIKE 'unsubscribe%' THEN 'unsubscribe' ELSE 'hard_bounce' END;
ALTER TABLE suppressions ALTER COLUMN kind SET NOT NULL,
    ADD CONSTRAINT suppressions_kind_check CHECK (kind IN ('hard_bounce', 'unsubscribe', 'complaint', 'manual', 'erased'));
CREATE INDEX suppressions_kind ON suppressions (workspace_id, kind, address);

-- The API adds to and removes from the list (by hand and by import).
GRANT INSERT, DELETE ON suppressions TO mailroom_api;
