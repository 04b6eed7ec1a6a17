-- A follow-up names the send it answers: its In-Reply-To and References were written from that
-- send's Message-ID (and its own References) when it was accepted.
ALTER TABLE sends ADD COLUMN in_reply_to uuid;
