//! The end-to-end test harness: a [`TestApp`] runs the API (on port 0) and a send worker against
//! a fresh database, with the shared mail peers (SMTP relay into Dovecot) behind it.
#![allow(missing_docs)]

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use mailroom_api::{ApiLimits, AppState, provision};
use mailroom_devkit::{Peers, imap};
use mailroom_domain::{WorkspaceId, backoff::Backoff};
use mailroom_send_worker::SendWorkerConfig;
use mailroom_store::{
    PgPool, admin,
    roles::{self, ServiceRole},
};
use mailroom_transport::{EgressPolicy, Reach, SmtpSettings};
use mailroom_vault::{CacheLimits, KeyProvider, LocalProvider, Vault};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod kms;
mod process;
pub use kms::TestKms;
pub use process::WorkerProcess;

/// The mail peers, started once per test binary and stopped when it exits.
pub fn peers() -> &'static Peers {
    static PEERS: OnceLock<Peers> = OnceLock::new();
    PEERS.get_or_init(|| Peers::start().expect("mail peers (run scripts/setup-peers)"))
}

pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Options for a test app.
#[derive(Clone)]
pub struct Options {
    pub limits: ApiLimits,
    pub max_attempts: u32,
    /// Finished queue rows older than this are pruned (long by default, so tests can count jobs).
    pub prune_after: Duration,
    /// The send lease (crash tests shorten it, so recovery comes quickly).
    pub lease: Duration,
    /// How often workers heartbeat; apalis re-queues a dead worker's jobs after ten missed.
    pub heartbeat: Duration,
    /// Whether the app runs a send worker of its own ([`WorkerProcess`] starts others).
    pub in_process_worker: bool,
    /// The master-key provider (a local key by default).
    pub provider: Option<Arc<dyn KeyProvider>>,
    /// Key-cache limits.
    pub cache: CacheLimits,
    /// How long a new key version waits before it becomes active.
    pub rotation_wait: Duration,
    /// Whether the app runs a reply-detection worker too.
    pub reply_worker: bool,
    /// OAuth providers (none by default).
    pub oauth: Option<mailroom_keyring::oauth_config::OAuthSettings>,
    /// How often the reply worker checks each mailbox.
    pub reply_every: Duration,
    /// IMAP mailboxes the reply worker keeps in IDLE between checks.
    pub idle_watchers: usize,
    /// Where tenants' addresses may reach (the suite's loopback peers by default).
    pub egress: EgressPolicy,
    /// How long a webhook endpoint may fail before it is switched off.
    pub webhook_disable_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            // Unlimited: the tests of rate limits set their own.
            limits: ApiLimits { max_message_bytes: 64 * 1024, rate: None, ..ApiLimits::default() },
            max_attempts: 5,
            prune_after: Duration::from_secs(3_600),
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(2),
            in_process_worker: true,
            provider: None,
            cache: CacheLimits::default(),
            rotation_wait: Duration::from_secs(1),
            reply_worker: false,
            oauth: None,
            reply_every: Duration::from_millis(300),
            idle_watchers: 50,
            egress: loopback_allowed(),
            webhook_disable_after: Duration::from_secs(72 * 3_600),
        }
    }
}

pub struct TestApp {
    pub base: String,
    /// The operator's admin token, and its file.
    pub admin_token: String,
    pub admin_token_file: std::path::PathBuf,
    pub http: reqwest::Client,
    pub token: String,
    pub workspace: WorkspaceId,
    pub pool: PgPool,
    pub vault: Vault,
    /// The worker configuration, for more workers started by the test.
    pub worker_config: SendWorkerConfig,
    /// The reply worker's configuration, for reply workers started by the test.
    pub reply_config: mailroom_reply_worker::ReplyWorkerConfig,
    db: String,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// The URL of test database `db` on the suite's server.
pub fn database_url_of(db: &str) -> String {
    let server = server_url();
    let server = server.split('?').next().unwrap_or_default();
    let (root, _) = server.rsplit_once('/').expect("a database URL has a path");
    format!("{root}/{db}")
}

/// The test suite's egress allow-list: its own peers, all on loopback.
pub fn loopback_allowed() -> EgressPolicy {
    EgressPolicy::parse(&["127.0.0.0/8", "::1"]).expect("valid entries")
}

fn smtp_settings(egress: &EgressPolicy) -> SmtpSettings {
    SmtpSettings {
        hello_name: "mailroom.test".into(),
        command_timeout: Duration::from_secs(10),
        data_timeout: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(30),
        reach: Reach { egress: egress.clone(), extra_roots: vec![peers().ca_pem().expect("peer CA")] },
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> Self {
        let url = server_url();
        let db = format!("mailroom_test_{}", uuid::Uuid::new_v4().simple());
        admin::create_database(&url, &db).await.expect("create test database");
        let pool = admin::connect_to(&url, &db, 20).await.expect("connect test database");
        mailroom_store::migrate(&pool).await.expect("migrate");
        let mut master = [0u8; 32];
        master.copy_from_slice(&uuid::Uuid::new_v4().as_bytes().repeat(2));
        let provider = opts.provider.clone().unwrap_or_else(|| Arc::new(LocalProvider::from_bytes(master)));
        let vault = Vault::new(provider, opts.cache);
        let workspace = provision::create_workspace(&pool, &vault, "test", "test").await.unwrap();
        let (_, token) = provision::create_api_key(&pool, workspace, "test", "test").await.unwrap();
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let oauth = opts
            .oauth
            .clone()
            .map(|mut o| {
                o.redirect_url = format!("{base}/v1/oauth/callback");
                o
            })
            .unwrap_or_else(mailroom_keyring::oauth_config::OAuthSettings::disabled);
        let admin_token_file = std::env::temp_dir().join(format!("mailroom-admin-{db}")).join("admin.token");
        let admin = mailroom_api::admin_token::AdminToken::load_or_create(&admin_token_file).expect("admin token");
        let admin_token = mailroom_api::admin_token::read_token(&admin_token_file).unwrap().expose_secret().to_owned();
        let db_url = database_url_of(&db);
        let as_role = |role, max| {
            let url = db_url.clone();
            async move { roles::connect_as(&url, max, role).await.expect("a service pool") }
        };
        // The API and the workers run as their own database roles, as in production: every
        // test also proves each service's grants are enough, and no wider than the roles'.
        let (api_pool, send_pool, reply_pool) = (
            as_role(ServiceRole::Api, 10).await,
            as_role(ServiceRole::SendWorker, 8).await,
            as_role(ServiceRole::ReplyWorker, 4).await,
        );
        let state = AppState {
            admin: Arc::new(admin),
            trusted_proxy_header: None,
            failed_auth: Default::default(),
            local_limits: Default::default(),
            exports: Default::default(),
            pool: api_pool,
            vault: vault.clone(),
            smtp: smtp_settings(&opts.egress),
            limits: opts.limits.clone(),
            rotation_wait: opts.rotation_wait,
            oauth: oauth.clone(),
        };
        let api = tokio::spawn({
            let stop = stop.clone();
            async move { mailroom_api::serve(listener, state, stop.cancelled_owned()).await.unwrap() }
        });
        let config = SendWorkerConfig {
            name: format!("test-send-{}", uuid::Uuid::new_v4().simple()),
            concurrency: 8,
            lease: opts.lease,
            max_attempts: opts.max_attempts,
            max_age: Duration::from_secs(3_600),
            retry_backoff: Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(2) },
            throttle_backoff: Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(2) },
            quota_pause: Duration::from_secs(2),
            reconcile_delay: Duration::from_secs(1),
            prune_after: opts.prune_after,
            sweep_after: Duration::from_secs(2),
            housekeeping_every: Duration::from_millis(500),
            key_grace: Duration::from_secs(1),
            poll_interval: Duration::from_millis(200),
            heartbeat: opts.heartbeat,
            smtp: smtp_settings(&opts.egress),
            oauth: oauth.clone(),
        };
        let mut tasks = vec![api];
        if opts.in_process_worker {
            tasks.push(tokio::spawn({
                let (pool, vault, stop, config) = (send_pool, vault.clone(), stop.clone(), config.clone());
                async move { mailroom_send_worker::run(pool, vault, config, stop.cancelled_owned()).await.unwrap() }
            }));
        }
        let reply_config = mailroom_reply_worker::ReplyWorkerConfig {
            name: format!("test-reply-{}", uuid::Uuid::new_v4().simple()),
            concurrency: 4,
            every: opts.reply_every,
            lease: Duration::from_secs(30),
            batch: 200,
            imap_timeout: Duration::from_secs(20),
            poll: Duration::from_millis(100),
            reach: Reach { egress: opts.egress.clone(), extra_roots: vec![] },
            webhook_backoff: Backoff { base: Duration::from_millis(200), cap: Duration::from_millis(400) },
            webhook_max_age: Duration::from_secs(3_600),
            webhook_timeout: Duration::from_secs(5),
            webhook_disable_after: opts.webhook_disable_after,
            oauth: oauth.clone(),
            idle_watchers: opts.idle_watchers,
        };
        if opts.reply_worker {
            tasks.push(tokio::spawn({
                let (pool, vault, stop, config) = (reply_pool, vault.clone(), stop.clone(), reply_config.clone());
                async move { mailroom_reply_worker::run(pool, vault, config, stop.cancelled_owned()).await.unwrap() }
            }));
        }
        Self {
            base,
            admin_token,
            admin_token_file,
            http: reqwest::Client::new(),
            token: token.expose_secret().to_owned(),
            workspace,
            pool,
            vault,
            worker_config: config,
            reply_config,
            db,
            stop,
            tasks,
        }
    }

    /// Another workspace in the same database, and a key for it.
    pub async fn other_workspace_token(&self) -> String {
        let ws = provision::create_workspace(&self.pool, &self.vault, "other", "test").await.unwrap();
        let (_, token) = provision::create_api_key(&self.pool, ws, "other", "test").await.unwrap();
        token.expose_secret().to_owned()
    }

    /// A key of the app's workspace with a role or explicit scopes.
    pub async fn key_with(&self, grant: mailroom_domain::Grant) -> String {
        let (_, token) =
            provision::create_api_key_with(&self.pool, self.workspace, "test", &grant, "test").await.unwrap();
        token.expose_secret().to_owned()
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    /// The request body that connects the peer's SMTP account, sending as a `+tagged` address
    /// of its own (a workspace connects one mailbox per address; the peer files the mail of
    /// every tag in the account's Sent folder).
    pub fn mailbox_request(password: &str) -> Value {
        let p = &peers().info;
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        json!({
            "from_address": p.sender.replace('@', &format!("+{tag}@")), "from_name": "Test Sender",
            "smtp": { "host": p.smtp_host, "port": p.smtp_port, "tls": "starttls", "username": p.sender, "password": password },
            "pacing": Self::unpaced(),
        })
    }

    /// Pacing that lets a test mailbox send as fast as the worker can.
    pub fn unpaced() -> Value {
        json!({ "daily_cap": null, "min_gap_secs": 0, "jitter_secs": 0, "max_sessions": 8 })
    }

    /// Connects the peer's SMTP account; returns the mailbox id.
    pub async fn connect_mailbox(&self) -> String {
        let mut req = Self::mailbox_request(&peers().info.sender_password);
        self.plain_sender_first(&mut req).await;
        let resp = self.post("/v1/mailboxes").json(&req).send().await.unwrap();
        assert_eq!(resp.status(), 201, "connect failed: {:?}", resp.text().await);
        resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    }

    /// A send request body.
    pub fn send_body(mailbox: &str, to: &str, subject: &str) -> Value {
        json!({ "mailbox_id": mailbox, "to": [to], "subject": subject, "text": "Hello from the tests." })
    }

    /// Enqueues one send; returns (status, body).
    pub async fn send(&self, key: &str, body: &Value) -> (u16, Value) {
        let resp = self.post("/v1/sends").header("Idempotency-Key", key).json(body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Polls a send until `done` holds for it, or panics at the deadline.
    pub async fn wait_for_send(&self, id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let send: Value = self.get(&format!("/v1/sends/{id}")).send().await.unwrap().json().await.unwrap();
            if done(&send) {
                return send;
            }
            assert!(Instant::now() < deadline, "send did not reach the expected state in {within:?}: {send}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the workspace has `n` sends in a terminal state; returns counts by state.
    pub async fn wait_for_terminal(&self, n: i64, within: Duration) -> Vec<(String, i64)> {
        let deadline = Instant::now() + within;
        loop {
            let mut conn = self.pool.acquire().await.unwrap();
            let counts = mailroom_store::sends::count_by_state(&mut conn, self.workspace).await.unwrap();
            let done: i64 = counts
                .iter()
                .filter(|(s, _)| ["sent", "failed", "ambiguous", "cancelled"].contains(&s.as_str()))
                .map(|(_, c)| c)
                .sum();
            if done >= n {
                return counts;
            }
            assert!(Instant::now() < deadline, "only {done} of {n} sends finished in {within:?}: {counts:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Message-IDs delivered to the Dovecot folder of recipient `rcpt` (its local part).
    pub async fn delivered(&self, rcpt: &str) -> Vec<String> {
        let p = &peers().info;
        let folder = rcpt.split('@').next().unwrap().to_lowercase();
        imap::message_ids(p.imap_port, &p.inbox, &p.inbox_password, &folder).await.unwrap()
    }

    /// The headers of every message delivered to `rcpt` (lower-case names).
    pub async fn delivered_headers(&self, rcpt: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        let p = &peers().info;
        let folder = rcpt.split('@').next().unwrap().to_lowercase();
        imap::headers(p.imap_port, &p.inbox, &p.inbox_password, &folder).await.unwrap()
    }

    /// Runs a scalar SQL count (assertions on what the engine wrote).
    pub async fn count(&self, sql: &str) -> i64 {
        mailroom_store::admin::scalar_count(&self.pool, sql).await.unwrap()
    }

    /// Waits until a scalar SQL count equals `want`, or panics at the deadline.
    pub async fn wait_until(&self, sql: &str, want: i64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let got = self.count(sql).await;
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "`{sql}` is {got}, not {want}, after {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a statement (tests that stage a fault).
    pub async fn execute(&self, sql: &str) -> u64 {
        mailroom_store::admin::execute(&self.pool, sql).await.unwrap()
    }

    /// The test database's name.
    pub fn database(&self) -> &str {
        &self.db
    }

    /// A URL of the test database (for processes started by a test).
    pub fn database_url(&self) -> String {
        database_url_of(&self.db)
    }

    /// A pool on the test database acting as `role` (tests of each role's boundaries).
    pub async fn role_pool(&self, role: ServiceRole) -> PgPool {
        roles::connect_as(&self.database_url(), 2, role).await.expect("a role's pool")
    }

    /// Waits until `probe` holds, or panics at the deadline naming `what`.
    pub async fn wait_for<F, Fut>(what: &str, within: Duration, mut probe: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + within;
        while !probe().await {
            assert!(Instant::now() < deadline, "{what} did not happen within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the API and worker and drops the database.
    pub async fn stop(mut self) {
        self.stop.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.pool.close().await;
        admin::drop_database(&server_url(), &self.db).await.unwrap();
        if let Some(dir) = self.admin_token_file.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A unique recipient (and so a fresh Dovecot folder) for one test.
pub fn recipient(prefix: &str) -> String {
    format!("{prefix}-{}@example.test", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

impl TestApp {
    /// The workspace's first mailbox sends as the peer's account itself (its bounces come back
    /// to that address's INBOX, where the reply worker reads them); later ones keep their tag.
    async fn plain_sender_first(&self, req: &mut Value) {
        let sender = &peers().info.sender;
        let sql = format!(
            "SELECT count(*) FROM mailboxes WHERE workspace_id = '{}' AND from_address = '{sender}'
               AND status <> 'disconnected'",
            self.workspace.as_uuid()
        );
        if self.count(&sql).await == 0 {
            req["from_address"] = json!(sender);
        }
    }

    /// Connects the peer's account with IMAP access to its Sent folder.
    pub async fn connect_mailbox_with_imap(&self, sent_copy: &str) -> String {
        let p = &peers().info;
        let mut req = Self::mailbox_request(&p.sender_password);
        self.plain_sender_first(&mut req).await;
        req["imap"] = json!({ "host": "127.0.0.1", "port": p.imap_port, "tls": "none", "username": p.sender, "password": p.sender_password });
        req["sent_copy"] = json!(sent_copy);
        let resp = self.post("/v1/mailboxes").json(&req).send().await.unwrap();
        assert_eq!(resp.status(), 201, "connect failed: {:?}", resp.text().await);
        resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    }
}
