//! Relative paths in the configuration are resolved against one base directory, never
//! against wherever a process happens to be started: `state_dir` when set, otherwise the
//! configuration file's directory, otherwise the working directory at start-up (logged).

use std::path::{Path, PathBuf};

use super::{Settings, SettingsError};

impl Settings {
    /// The directory relative paths were resolved against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Every path setting, resolved, for the start-up log and `mailroom config check`.
    pub fn paths(&self) -> Vec<(&'static str, PathBuf)> {
        let mut out = vec![
            ("vault.master_key_file", self.vault.master_key_file.clone()),
            ("api.admin_token_file", self.api.admin_token_file.clone()),
        ];
        out.extend(self.vault.previous_master_key_files.iter().map(|p| ("vault.previous_master_key_files", p.clone())));
        out.extend(self.smtp.extra_ca_file.iter().map(|p| ("smtp.extra_ca_file", p.clone())));
        out.extend(self.oauth.extra_ca_file.iter().map(|p| ("oauth.extra_ca_file", p.clone())));
        out
    }

    /// Computes the base directory and makes every relative path absolute against it.
    pub(super) fn resolve_paths(&mut self, file: Option<&Path>) -> Result<(), SettingsError> {
        let cwd = std::env::current_dir().map_err(|_| SettingsError::Invalid {
            field: "state_dir",
            problem: "is needed: the working directory cannot be read to resolve relative paths",
        })?;
        let base = match (&self.state_dir, file) {
            (Some(dir), _) => dir.clone(),
            (None, Some(file)) => cwd.join(file).parent().map(Path::to_path_buf).unwrap_or(cwd),
            (None, None) => cwd,
        };
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.vault.master_key_file);
        resolve(&mut self.api.admin_token_file);
        self.vault.previous_master_key_files.iter_mut().for_each(resolve);
        self.smtp.extra_ca_file.iter_mut().for_each(resolve);
        self.oauth.extra_ca_file.iter_mut().for_each(resolve);
        self.base_dir = base;
        Ok(())
    }

    /// The effective configuration with every secret shown as `***` (`mailroom config check`).
    pub fn redacted(&self) -> serde_json::Value {
        use secrecy::ExposeSecret;
        let mut v = serde_json::to_value(self).expect("the settings serialize");
        let mut mask = |pointer: &str, set: bool| {
            if let Some(slot) = v.pointer_mut(pointer) {
                *slot = serde_json::Value::from(if set { "***" } else { "" });
            }
        };
        mask("/database/url", !self.database.url.expose_secret().is_empty());
        for (pointer, url) in [
            ("/database/api_url", &self.database.api_url),
            ("/database/send_worker_url", &self.database.send_worker_url),
            ("/database/reply_worker_url", &self.database.reply_worker_url),
        ] {
            if url.is_some() {
                mask(pointer, true);
            }
        }
        mask("/oauth/google/client_secret", !self.oauth.google.client_secret.expose_secret().is_empty());
        mask("/oauth/microsoft/client_secret", !self.oauth.microsoft.client_secret.expose_secret().is_empty());
        v
    }
}
