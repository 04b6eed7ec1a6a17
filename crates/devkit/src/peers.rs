//! Starting and stopping the mail peers.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::Mutex,
};

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// Where the peers listen and how to log in.
#[derive(Debug, Clone, Deserialize)]
pub struct PeerInfo {
    /// SMTP host name (matches the certificate).
    pub smtp_host: String,
    /// SMTP submission port (STARTTLS required, AUTH PLAIN/LOGIN).
    pub smtp_port: u16,
    /// The same server with implicit TLS.
    pub smtps_port: u16,
    /// Dovecot's IMAP port (plain text, loopback only).
    pub imap_port: u16,
    /// The CA certificate (PEM) that signed the SMTP server's certificate.
    pub ca_file: String,
    /// The SMTP login.
    pub sender: String,
    /// The SMTP password.
    pub sender_password: String,
    /// The IMAP login holding every delivered message.
    pub inbox: String,
    /// The IMAP password.
    pub inbox_password: String,
    /// moto's KMS server (it may still be starting: see [`crate::kms::wait_for_moto`]).
    pub kms_port: u16,
    /// The private Postfix that bounces `bounceme...` recipients (none when not run as root).
    pub postfix_port: Option<u16>,
    /// The OAuth 2.0 server (oauth2-mock-server over TLS, certificate for `localhost`).
    pub oauth_port: Option<u16>,
}

/// Running mail peers; stopped when dropped.
pub struct Peers {
    child: Child,
    control: Mutex<Option<(ChildStdin, BufReader<ChildStdout>)>>,
    /// Their addresses and logins.
    pub info: PeerInfo,
}

impl Peers {
    /// Starts the peers, or says how to install them.
    pub fn start() -> anyhow::Result<Self> {
        let root = crate::repo_root();
        let python = root.join(".peers/venv/bin/python3");
        if !python.exists() || !std::path::Path::new("/usr/sbin/dovecot").exists() {
            bail!("the mail peers are not installed: run `scripts/setup-peers` (the README's commands do it for you)");
        }
        let mut child = Command::new(python)
            .arg(root.join("tests/peers/peers.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start tests/peers/peers.py")?;
        let mut stdout = BufReader::new(child.stdout.take().context("peers stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line).context("reading the peers' address line")?;
        let info = serde_json::from_str(&line).with_context(|| format!("the peers did not start (said {line:?})"))?;
        let stdin = child.stdin.take().context("peers stdin")?;
        Ok(Self { child, control: Mutex::new(Some((stdin, stdout))), info })
    }

    /// Sends a control command (`stats`, `faults drop=0.01 throttle=0.02 seed=7`) and returns
    /// the peers' JSON answer.
    pub fn command(&self, command: &str) -> anyhow::Result<serde_json::Value> {
        let mut control = self.control.lock().unwrap_or_else(|p| p.into_inner());
        let (stdin, stdout) = control.as_mut().context("the peers are stopped")?;
        writeln!(stdin, "{command}")?;
        stdin.flush()?;
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        Ok(serde_json::from_str(&line)?)
    }

    /// The CA certificate to trust for the SMTP peer.
    pub fn ca_pem(&self) -> anyhow::Result<Vec<u8>> {
        std::fs::read(&self.info.ca_file).context("reading the peers' CA certificate")
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        // Closing stdin tells the script to stop Dovecot and remove its directory.
        drop(self.control.lock().unwrap_or_else(|p| p.into_inner()).take());
        let _ = self.child.wait();
    }
}
