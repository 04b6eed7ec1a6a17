-- Rate-limit buckets shared by every API replica (GCRA: one row per bucket holding its
-- theoretical arrival time). Not a tenant table: a bucket is named by key, workspace or source
-- address and holds nothing but a time. UNLOGGED: a crash resets the limits, nothing else.
CREATE UNLOGGED TABLE rate_buckets (
    bucket text PRIMARY KEY,
    tat    timestamptz NOT NULL
);

-- Draws one request on every bucket named, all or nothing: allowed only if every bucket has
-- room, and only then does any bucket move. Two statements, one round trip for the caller:
-- the first creates the missing buckets and locks them all, in name order (concurrent first
-- requests cannot each count from an empty bucket; requests sharing a workspace queue on its
-- row instead of deadlocking; pruning skips locked rows); the second, with a fresh snapshot,
-- decides and moves them.
CREATE FUNCTION rate_draw(p_buckets text[], p_emission float8[], p_tolerance float8[])
RETURNS TABLE (name text, allowed boolean, arrival timestamptz, decided_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rate_buckets AS b (bucket, tat)
    SELECT k, '-infinity' FROM unnest(p_buckets) AS k ORDER BY k
    ON CONFLICT (bucket) DO UPDATE SET tat = b.tat;
    RETURN QUERY
    WITH v AS (SELECT x.k, make_interval(secs => x.e) AS e, make_interval(secs => x.t) AS tol,
                      greatest(b.tat, clock_timestamp()) AS base, clock_timestamp() AS at
               FROM unnest(p_buckets, p_emission, p_tolerance) AS x(k, e, t)
               JOIN rate_buckets b ON b.bucket = x.k),
         w AS (SELECT v.*, v.base + v.e - v.at <= v.tol AS ok FROM v),
         go AS (SELECT bool_and(w.ok) AS all_ok FROM w),
         moved AS (UPDATE rate_buckets b SET tat = w.base + w.e FROM w, go WHERE go.all_ok AND b.bucket = w.k)
    SELECT w.k, w.ok, CASE WHEN go.all_ok THEN w.base + w.e ELSE w.base END, w.at FROM w, go;
END
$$;
