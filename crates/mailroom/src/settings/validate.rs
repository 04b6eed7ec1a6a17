//! Range checks that types alone cannot make, each naming its field.

use super::{Settings, SettingsError};

impl Settings {
    /// Checks ranges that types alone do not.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |field, problem| Err(SettingsError::Invalid { field, problem });
        use secrecy::ExposeSecret;
        let url = self.database.url.expose_secret();
        if !(url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return bad("database.url", "must start with postgres:// or postgresql://");
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "must be at least 1");
        }
        match self.vault.provider.as_str() {
            "local" => {}
            "aws-kms" if self.vault.aws.key_id.trim().is_empty() => {
                return bad(
                    "vault.aws.key_id",
                    "must name the KMS key (id, ARN or alias/...) with vault.provider = aws-kms",
                );
            }
            "aws-kms" => {}
            _ => return bad("vault.provider", "must be `local` or `aws-kms`"),
        }
        if self.vault.cache_ttl_secs == 0 || self.vault.cache_max_uses == 0 || self.vault.cache_max_entries == 0 {
            return bad("vault.cache_ttl_secs", "the key cache's TTL, uses and entries must all be positive");
        }
        if self.api.header_timeout_secs == 0 || self.api.request_timeout_secs == 0 {
            return bad("api.header_timeout_secs", "the header and request timeouts must be at least 1 second");
        }
        if let Err(e) = mailroom_transport::EgressPolicy::parse(&self.egress.allow) {
            return Err(SettingsError::Egress(e));
        }
        let r = &self.rate_limits;
        let rates = [r.sends_per_key, r.sends_per_workspace, r.reads_per_key, r.reads_per_workspace];
        let rates = rates.into_iter().chain([r.writes_per_key, r.writes_per_workspace, r.failed_auth_per_source]);
        if r.burst_secs == 0 || rates.into_iter().any(|n| n == 0) {
            return bad("rate_limits", "every rate and burst_secs must be at least 1 (set enabled = false for none)");
        }
        if !(1..=720).contains(&self.api.webhook_secret_overlap_hours) {
            return bad("api.webhook_secret_overlap_hours", "must be 1 to 720 (30 days)");
        }
        if self.reply.webhook_disable_after_hours == 0 {
            return bad("reply.webhook_disable_after_hours", "must be at least 1");
        }
        if self.api.max_connections == 0 {
            return bad("api.max_connections", "must be at least 1");
        }
        if self.worker.concurrency == 0 || self.worker.concurrency > 1_000 {
            return bad("worker.concurrency", "must be 1 to 1000");
        }
        if self.worker.max_attempts == 0 {
            return bad("worker.max_attempts", "must be at least 1");
        }
        if self.worker.lease_secs < self.smtp.data_timeout_secs + self.smtp.command_timeout_secs {
            return bad(
                "worker.lease_secs",
                "must exceed smtp.data_timeout_secs + smtp.command_timeout_secs, or a live attempt could lose its lease",
            );
        }
        if self.worker.retry_base_secs == 0 || self.worker.retry_cap_secs < self.worker.retry_base_secs {
            return bad("worker.retry_cap_secs", "must be at least worker.retry_base_secs, which must be positive");
        }
        if self.reply.concurrency == 0 || self.reply.every_secs == 0 || self.reply.batch == 0 {
            return bad("reply.concurrency", "reply.concurrency, reply.every_secs and reply.batch must be positive");
        }
        if self.reply.lease_secs <= self.reply.imap_timeout_secs {
            return bad(
                "reply.lease_secs",
                "must exceed reply.imap_timeout_secs, or a live check could lose its mailbox",
            );
        }
        if self.api.max_batch == 0 || self.api.max_batch > 1_000 {
            return bad("api.max_batch", "must be 1 to 1000");
        }
        let header_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.api.trusted_proxy_header.as_ref().is_some_and(|h| h.is_empty() || !h.chars().all(header_char)) {
            return bad("api.trusted_proxy_header", "must be an HTTP header name such as `x-forwarded-for`");
        }
        if self.state_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
            return bad("state_dir", "must be an absolute path");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad("log.format", "must be `text` or `json`");
        }
        Ok(())
    }
}
