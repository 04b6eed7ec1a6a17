-- Reconciliation of ambiguous sends through the mailbox's Sent folder.
-- sent_copy: 'provider' = the server files submitted mail in Sent itself (Gmail, Microsoft),
-- so a search that does not find a Message-ID proves it was not sent; 'append' = the engine
-- appends a copy after each send (plain SMTP servers), so only a match proves anything;
-- 'none' = no Sent-folder checks.
ALTER TABLE mailboxes ADD COLUMN sent_copy text NOT NULL DEFAULT 'none' CHECK (sent_copy IN ('provider', 'append', 'none'));
ALTER TABLE mailboxes ADD COLUMN sent_folder text NOT NULL DEFAULT 'Sent';
ALTER TABLE mailboxes ADD CONSTRAINT mailboxes_sent_copy_needs_imap CHECK (sent_copy = 'none' OR imap_host IS NOT NULL);

-- Set when the next step for a send is to look for it in Sent, not to send it again.
ALTER TABLE sends ADD COLUMN reconcile_reason text;
CREATE INDEX sends_ambiguous ON sends (workspace_id, updated_at) WHERE state = 'ambiguous';
