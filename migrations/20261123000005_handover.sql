-- body_at: when the current attempt began handing the message body to the provider (set just
-- before SMTP DATA, cleared by each claim). A worker that dies with it still NULL cannot have
-- delivered anything, so its send is safe to retry; one that dies after it is reconciled.
-- queue_priority: the fairness priority the send was enqueued with, reused for every job
-- the worker schedules for it later (retries, pacing reservations, recoveries).
ALTER TABLE sends ADD COLUMN body_at timestamptz;
ALTER TABLE sends ADD COLUMN queue_priority smallint NOT NULL DEFAULT 0;
