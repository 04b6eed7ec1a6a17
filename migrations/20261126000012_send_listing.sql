-- GET /v1/sends filters: each backed by an index that leads with the workspace and ends with
-- the id, so a page is read in cursor order without sorting the matches.
CREATE INDEX sends_workspace_id ON sends (workspace_id, id);
-- Beside (workspace_id, state), which stays: enqueue counts the workspace's backlog through it,
-- and the narrower index counts about four times faster.
CREATE INDEX sends_workspace_state_id ON sends (workspace_id, state, id);
CREATE INDEX sends_workspace_mailbox ON sends (workspace_id, mailbox_id, id);
DROP INDEX sends_sequence;
CREATE INDEX sends_sequence ON sends (workspace_id, sequence, id) WHERE sequence IS NOT NULL;
CREATE INDEX sends_metadata ON sends USING gin (metadata jsonb_path_ops) WHERE metadata IS NOT NULL;
CREATE INDEX sends_sent_at ON sends (workspace_id, finished_at) WHERE state = 'sent';
