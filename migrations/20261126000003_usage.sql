-- Usage per workspace and day (UTC), kept by triggers on the ledger so every path that
-- accepts or finishes a send counts it, in the same transaction: accepted when a send is
-- inserted, sent or failed when its state becomes so. Reading a range costs one row per day
-- and shard, whatever the size of the ledger. Each connection writes its own shard row, so
-- concurrent workers do not queue on one hot row, and a transaction never locks two shards.
CREATE TABLE usage_daily (
    workspace_id uuid NOT NULL,
    day          date NOT NULL,
    shard        smallint NOT NULL,
    accepted     bigint NOT NULL DEFAULT 0,
    sent         bigint NOT NULL DEFAULT 0,
    failed       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day, shard)
);

CREATE FUNCTION usage_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_day date := (now() AT TIME ZONE 'UTC')::date;
    v_shard smallint := (pg_backend_pid() % 8)::smallint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO usage_daily (workspace_id, day, shard, accepted) VALUES (NEW.workspace_id, v_day, v_shard, 1)
        ON CONFLICT (workspace_id, day, shard) DO UPDATE SET accepted = usage_daily.accepted + 1;
    ELSIF NEW.state IS DISTINCT FROM OLD.state AND NEW.state IN ('sent', 'failed') THEN
        INSERT INTO usage_daily (workspace_id, day, shard, sent, failed)
        VALUES (NEW.workspace_id, v_day, v_shard, (NEW.state = 'sent')::int, (NEW.state = 'failed')::int)
        ON CONFLICT (workspace_id, day, shard) DO UPDATE
            SET sent = usage_daily.sent + EXCLUDED.sent, failed = usage_daily.failed + EXCLUDED.failed;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER sends_usage AFTER INSERT OR UPDATE OF state ON sends
    FOR EACH ROW EXECUTE FUNCTION usage_count();

-- What the ledger already holds.
INSERT INTO usage_daily (workspace_id, day, shard, accepted, sent, failed)
SELECT workspace_id, day, 0, sum(accepted), sum(sent), sum(failed) FROM (
    SELECT workspace_id, (created_at AT TIME ZONE 'UTC')::date AS day, 1 AS accepted, 0 AS sent, 0 AS failed FROM sends
    UNION ALL
    SELECT workspace_id, (coalesce(finished_at, updated_at) AT TIME ZONE 'UTC')::date,
           0, (state = 'sent')::int, (state = 'failed')::int
    FROM sends WHERE state IN ('sent', 'failed')
) u GROUP BY workspace_id, day;
