-- Usage per workspace and day (UTC). The ledger's triggers append one small row per send
-- accepted, sent or failed (`usage_deltas`), in the same transaction as the change, so every
-- path counts and nothing is counted twice. They are plain inserts: no transaction ever waits
-- on another for a counter, whatever the concurrency or the batch size. Housekeeping folds the
-- deltas into one row per workspace and day (`usage_daily`); a read sums both, so it costs one
-- row per day plus the few deltas not folded yet, never a scan of the ledger.
CREATE TABLE usage_daily (
    workspace_id uuid NOT NULL,
    day          date NOT NULL,
    accepted     bigint NOT NULL DEFAULT 0,
    sent         bigint NOT NULL DEFAULT 0,
    failed       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day)
);

CREATE TABLE usage_deltas (
    workspace_id uuid NOT NULL,
    day          date NOT NULL,
    accepted     smallint NOT NULL,
    sent         smallint NOT NULL,
    failed       smallint NOT NULL
);
CREATE INDEX usage_deltas_workspace_day ON usage_deltas (workspace_id, day);

CREATE FUNCTION usage_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO usage_deltas VALUES (NEW.workspace_id, (now() AT TIME ZONE 'UTC')::date, 1, 0, 0);
    ELSIF NEW.state IS DISTINCT FROM OLD.state AND NEW.state IN ('sent', 'failed') THEN
        INSERT INTO usage_deltas
        VALUES (NEW.workspace_id, (now() AT TIME ZONE 'UTC')::date, 0, (NEW.state = 'sent')::int, (NEW.state = 'failed')::int);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER sends_usage AFTER INSERT OR UPDATE OF state ON sends
    FOR EACH ROW EXECUTE FUNCTION usage_count();

-- What the ledger already holds.
INSERT INTO usage_daily (workspace_id, day, accepted, sent, failed)
SELECT workspace_id, day, sum(accepted), sum(sent), sum(failed) FROM (
    SELECT workspace_id, (created_at AT TIME ZONE 'UTC')::date AS day, 1 AS accepted, 0 AS sent, 0 AS failed FROM sends
    UNION ALL
    SELECT workspace_id, (coalesce(finished_at, updated_at) AT TIME ZONE 'UTC')::date,
           0, (state = 'sent')::int, (state = 'failed')::int
    FROM sends WHERE state IN ('sent', 'failed')
) u GROUP BY workspace_id, day;
