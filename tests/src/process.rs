//! A send or reply worker standing in for a separate worker process: it runs on its own runtime
//! with its own database pool, so killing it drops every one of its tasks wherever it is
//! awaiting and closes its connections, as SIGKILL would. No shutdown code of the worker runs.

use tokio::runtime::{Builder, Runtime};
use tokio_util::sync::CancellationToken;

use mailroom_store::roles::{self, ServiceRole};

use crate::TestApp;

pub struct WorkerProcess {
    runtime: Option<Runtime>,
    stop: CancellationToken,
    /// The worker's name (unique, as apalis requires).
    pub name: String,
}

impl WorkerProcess {
    /// Starts a reply worker against the app's database, with `config`.
    pub fn start_reply(app: &TestApp, mut config: mailroom_reply_worker::ReplyWorkerConfig) -> Self {
        let runtime = Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("worker runtime");
        config.name = format!("test-reply-process-{}", uuid::Uuid::new_v4().simple());
        let name = config.name.clone();
        let (url, vault, stop) = (app.database_url(), app.vault.clone(), CancellationToken::new());
        let token = stop.clone();
        runtime.spawn(async move {
            let pool = roles::connect_as(&url, 4, ServiceRole::ReplyWorker).await.expect("worker pool");
            mailroom_reply_worker::run(pool, vault, config, token.cancelled_owned()).await.expect("reply worker")
        });
        Self { runtime: Some(runtime), stop, name }
    }

    /// Starts a worker against the app's database, with the app's worker configuration.
    pub fn start(app: &TestApp) -> Self {
        Self::start_with_vault(app, app.vault.clone())
    }

    /// Starts a worker whose vault is `vault` (one holding another master key, say).
    pub fn start_with_vault(app: &TestApp, vault: mailroom_vault::Vault) -> Self {
        let runtime = Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("worker runtime");
        let mut config = app.worker_config.clone();
        config.name = format!("test-process-{}", uuid::Uuid::new_v4().simple());
        let name = config.name.clone();
        let (url, stop) = (app.database_url(), CancellationToken::new());
        let token = stop.clone();
        runtime.spawn(async move {
            let pool = roles::connect_as(&url, 8, ServiceRole::SendWorker).await.expect("worker pool");
            mailroom_send_worker::run(pool, vault, config, token.cancelled_owned()).await.expect("worker")
        });
        Self { runtime: Some(runtime), stop, name }
    }

    /// Kills the worker at whatever point it has reached.
    pub fn kill(mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
