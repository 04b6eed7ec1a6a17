-- A send may name its sequence: the scheduler's id for one lead in one campaign (steps and
-- follow-ups share it). Cancelling a sequence, and stopping it on a reply, find its waiting
-- sends through this index.
ALTER TABLE sends ADD COLUMN sequence text;
CREATE INDEX sends_sequence ON sends (workspace_id, sequence) WHERE sequence IS NOT NULL;
