-- Crash recovery bookkeeping.
-- recoveries: how often the send's handling was interrupted (a worker died holding it, or its
-- Sent folder could not be searched); crashes: how often a worker died during a delivery
-- attempt. Both are capped by the worker, because apalis re-queues an orphaned job however
-- often it happens.
-- job_id: the queue job that is to handle the send next, so a sweeper can find sends whose job
-- was lost (killed by apalis after too many failures, or pruned) and give them a new one.
ALTER TABLE sends ADD COLUMN recoveries integer NOT NULL DEFAULT 0;
ALTER TABLE sends ADD COLUMN crashes integer NOT NULL DEFAULT 0;
ALTER TABLE sends ADD COLUMN job_id text;
CREATE INDEX sends_due ON sends (next_attempt_at) WHERE state IN ('queued', 'retry_wait');
CREATE INDEX sends_leased ON sends (lease_until) WHERE state = 'sending';
