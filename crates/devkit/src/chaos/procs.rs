//! The engine's processes during a chaos run or a benchmark: started, killed, revived and
//! stopped.

use std::{
    fs::OpenOptions,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use rand::Rng;

/// The API and the workers, each a `mailroom` process configured through the environment.
pub(crate) struct Fleet {
    bin: PathBuf,
    dir: PathBuf,
    env: Vec<(&'static str, String)>,
    api: Option<Child>,
    workers: Vec<Child>,
    /// Processes not killed by the chaos (reply workers).
    others: Vec<Child>,
    started: usize,
    /// Workers killed with SIGKILL.
    pub kills: usize,
    /// Processes that exited by themselves and were started again.
    pub restarts: usize,
}

impl Fleet {
    pub(crate) fn new(bin: &Path, dir: &Path, db_url: &str, ca_file: &str, api_port: u16) -> Self {
        let env = vec![
            ("MAILROOM_DATABASE__URL", db_url.to_owned()),
            ("MAILROOM_DATABASE__MAX_CONNECTIONS", "10".into()),
            ("MAILROOM_API__BIND", format!("127.0.0.1:{api_port}")),
            ("MAILROOM_VAULT__MASTER_KEY_FILE", dir.join("master.key").display().to_string()),
            ("MAILROOM_API__ADMIN_TOKEN_FILE", dir.join("admin.token").display().to_string()),
            ("MAILROOM_SMTP__EXTRA_CA_FILE", ca_file.to_owned()),
            // The mail peers run on this machine.
            ("MAILROOM_EGRESS__ALLOW", "[\"127.0.0.0/8\"]".into()),
            ("MAILROOM_SMTP__COMMAND_TIMEOUT_SECS", "5".into()),
            ("MAILROOM_SMTP__DATA_TIMEOUT_SECS", "10".into()),
            ("MAILROOM_WORKER__CONCURRENCY", "16".into()),
            ("MAILROOM_WORKER__LEASE_SECS", "20".into()),
            ("MAILROOM_WORKER__HEARTBEAT_SECS", "1".into()),
            ("MAILROOM_WORKER__MAX_ATTEMPTS", "20".into()),
            ("MAILROOM_WORKER__RETRY_BASE_SECS", "1".into()),
            ("MAILROOM_WORKER__RETRY_CAP_SECS", "5".into()),
            ("MAILROOM_WORKER__THROTTLE_BASE_SECS", "1".into()),
            ("MAILROOM_WORKER__THROTTLE_CAP_SECS", "3".into()),
            ("MAILROOM_WORKER__RECONCILE_DELAY_SECS", "2".into()),
            ("MAILROOM_WORKER__POLL_INTERVAL_MS", "500".into()),
            ("MAILROOM_LOG__FILTER", "warn".into()),
            // The harness connects hundreds of mailboxes in a burst; a benchmark turns them on.
            ("MAILROOM_RATE_LIMITS__ENABLED", "false".into()),
        ];
        Self {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            env,
            api: None,
            workers: vec![],
            others: vec![],
            started: 0,
            kills: 0,
            restarts: 0,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args).envs(self.env.iter().map(|(k, v)| (k, v))).env_remove("DATABASE_URL").stdin(Stdio::null());
        c
    }

    /// Runs a `mailroom` command to completion and returns its standard output.
    pub(crate) fn run_to_end(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command(args).output().with_context(|| format!("cannot run {}", self.bin.display()))?;
        if !out.status.success() {
            bail!("mailroom {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    fn spawn(&mut self, args: &[&str], log: &str) -> anyhow::Result<Child> {
        self.started += 1;
        let file = OpenOptions::new().create(true).append(true).open(self.dir.join(log))?;
        Ok(self.command(args).stdout(file.try_clone()?).stderr(file).spawn()?)
    }

    /// The running API process's id.
    pub(crate) fn api_pid(&self) -> Option<u32> {
        self.api.as_ref().map(Child::id)
    }

    /// Sets (or replaces) one variable of every process started from now on.
    pub(crate) fn set(&mut self, key: &'static str, value: &str) {
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.to_owned()));
    }

    /// Stops the API (SIGTERM) and waits for it.
    pub(crate) fn stop_api(&mut self) {
        if let Some(mut api) = self.api.take() {
            let _ = Command::new("kill").args(["-TERM", &api.id().to_string()]).status();
            let _ = api.wait();
        }
    }

    pub(crate) fn start_api(&mut self) -> anyhow::Result<()> {
        self.api = Some(self.spawn(&["serve"], "api.log")?);
        Ok(())
    }

    pub(crate) fn start_worker(&mut self) -> anyhow::Result<()> {
        let log = format!("worker-{}.log", self.workers.len());
        let child = self.spawn(&["worker", "send"], &log)?;
        self.workers.push(child);
        Ok(())
    }

    /// Starts a reply-detection worker (stopped with the rest, never killed at random).
    pub(crate) fn start_reply_worker(&mut self) -> anyhow::Result<()> {
        let child = self.spawn(&["worker", "reply"], "reply.log")?;
        self.others.push(child);
        Ok(())
    }

    /// SIGKILLs one worker at random and starts a replacement (a new process, a new name).
    pub(crate) fn kill_random_worker(&mut self) -> anyhow::Result<()> {
        if self.workers.is_empty() {
            return Ok(());
        }
        let i = rand::rng().random_range(0..self.workers.len());
        let mut victim = self.workers.swap_remove(i);
        let killed = victim.kill();
        victim.wait()?;
        killed?;
        self.kills += 1;
        self.start_worker()
    }

    /// Starts again any process that exited by itself (as a supervisor would).
    pub(crate) fn revive_exited(&mut self) -> anyhow::Result<()> {
        let before = self.workers.len();
        self.workers.retain_mut(|w| matches!(w.try_wait(), Ok(None)));
        let dead = before - self.workers.len();
        for _ in 0..dead {
            self.restarts += 1;
            self.start_worker()?;
        }
        if let Some(api) = &mut self.api
            && matches!(api.try_wait(), Ok(Some(_)))
        {
            self.restarts += 1;
            self.start_api()?;
        }
        Ok(())
    }

    /// Asks every process to stop (SIGTERM), then kills what is left after ten seconds.
    pub(crate) fn stop_all(&mut self) {
        let mut all: Vec<Child> = self.workers.drain(..).chain(self.others.drain(..)).chain(self.api.take()).collect();
        for c in &all {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in &mut all {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
