//! A private PostgreSQL cluster in a data directory, for a machine with no reachable server.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// A running private cluster; stopped when dropped.
pub struct PrivateCluster {
    dir: PathBuf,
    bin: PathBuf,
    /// Its connection URL.
    pub url: String,
}

fn pg_bin() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (apt-get install postgresql)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().context("no initdb under /usr/lib/postgresql")
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    // PostgreSQL refuses to run as root.
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

fn check(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl PrivateCluster {
    /// Initialises (once) and starts a cluster in `dir`, listening on loopback at `port`.
    pub fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        let bin = pg_bin()?;
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        if is_root() {
            check(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir), "chown")?;
        }
        if !dir.join("PG_VERSION").exists() {
            check(as_postgres(&bin, "initdb").args(["-A", "trust", "-U", "postgres", "-D"]).arg(&dir), "initdb")?;
        }
        let opts = format!("-k {} -p {port} -c listen_addresses=127.0.0.1", dir.display());
        check(
            as_postgres(&bin, "pg_ctl")
                .arg("-D")
                .arg(&dir)
                .args(["-o", &opts, "-w", "-l"])
                .arg(dir.join("log"))
                .arg("start"),
            "pg_ctl start",
        )?;
        Ok(Self { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), dir, bin })
    }
}

impl PrivateCluster {
    /// Restarts the server (fast shutdown: open connections are cut, as in a crash-restart).
    pub fn restart(&self) -> anyhow::Result<()> {
        // With `-l`, as at start: otherwise the server inherits our pipes and `output()` never
        // sees them close.
        let mut cmd = as_postgres(&self.bin, "pg_ctl");
        cmd.arg("-D").arg(&self.dir).arg("-l").arg(self.dir.join("log")).args(["-m", "fast", "-w", "restart"]);
        check(&mut cmd, "pg_ctl restart")
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin, "pg_ctl").arg("-D").arg(&self.dir).args(["-m", "fast", "stop"]).output();
    }
}
