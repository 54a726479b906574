//! `spawn_app()`: each test gets its own database, the real server on a free port, and fakes of
//! WeChat and SMTP listening on real local sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aggregates::orchestra::roster::{RosterCommand, ROSTER_ID};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use ensemble::{App, Config};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, OnceCell};
use tokio::task::JoinHandle;

pub const TODAY: &str = "2026-03-10";

pub const ROSTER: &str = "name,section,role\n\
    David,stringed,member\n\
    Wendy,wind,member\n\
    Percy,percussion,member\n\
    Alice,wind,manager\n";

fn admin_url() -> String {
    std::env::var("ENSEMBLE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Drop the databases that earlier runs of this binary left behind (once per run).
async fn drop_stale_databases() {
    static CLEANED: OnceCell<()> = OnceCell::const_new();
    CLEANED
        .get_or_init(|| async {
            let pool = sqlx::PgPool::connect(&admin_url()).await.expect("PostgreSQL is reachable");
            let mine = format!("ensemble_test_{}_%", std::process::id());
            let stale: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'ensemble\\_test\\_%' AND datname NOT LIKE $1",
            )
            .bind(mine)
            .fetch_all(&pool)
            .await
            .unwrap();
            for db in stale {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                    .execute(&pool)
                    .await;
            }
        })
        .await;
}

/// Each test's database, dropped when the last [`TestApp`] (or other holder) on it goes,
/// whether the test passed or failed: a run leaves nothing behind. (A run that is killed does;
/// the next run's [`drop_stale_databases`] sweeps that.)
pub struct OwnedDatabase(String);

static HOLDERS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

impl OwnedDatabase {
    pub fn hold(url: &str) -> Self {
        let mut holders = HOLDERS.lock().unwrap();
        *holders
            .get_or_insert_with(HashMap::new)
            .entry(url.to_string())
            .or_default() += 1;
        Self(url.to_string())
    }
}

impl Drop for OwnedDatabase {
    fn drop(&mut self) {
        let last = {
            let mut holders = HOLDERS.lock().unwrap();
            let holders = holders.get_or_insert_with(HashMap::new);
            let count = holders.entry(self.0.clone()).or_default();
            *count = count.saturating_sub(1);
            *count == 0 && holders.remove(&self.0).is_some()
        };
        if !last {
            return;
        }
        let name = reqwest::Url::parse(&self.0)
            .map(|u| u.path().trim_start_matches('/').to_string())
            .unwrap_or_default();
        if !name.starts_with("ensemble_test_") {
            return;
        }
        // Drop runs inside the test's runtime: the statement gets a thread and runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&admin_url()).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&pool)
                            .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

pub fn fresh_database_url() -> String {
    let name = format!(
        "ensemble_test_{}_{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let mut url = reqwest::Url::parse(&admin_url()).unwrap();
    url.set_path(&name);
    url.to_string()
}

pub fn test_config(database_url: &str, wechat: &str, smtp_port: u16) -> Config {
    let vars = HashMap::from([
        ("DATABASE_URL", database_url.to_string()),
        ("ENSEMBLE_JWT_SECRET", "test-secret-test-secret".to_string()),
        ("ENSEMBLE_WECHAT_API", wechat.to_string()),
        ("ENSEMBLE_ORCHESTRA_APPID", "orchestra-appid".to_string()),
        ("ENSEMBLE_ORCHESTRA_SECRET", "orchestra-secret".to_string()),
        ("ENSEMBLE_CAMPUS_APPID", "campus-appid".to_string()),
        ("ENSEMBLE_CAMPUS_SECRET", "campus-secret".to_string()),
        ("ENSEMBLE_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}")),
        (
            "ENSEMBLE_MAIL_FROM",
            "Ensemble <ensemble@test.local>".to_string(),
        ),
        ("ENSEMBLE_TODAY", TODAY.to_string()),
        // Tests log in more often than people do; tests/api/docs.rs turns these on.
        ("ENSEMBLE_LOGIN_LIMIT_ADDRESS", "0".to_string()),
        ("ENSEMBLE_LOGIN_LIMIT_NAME", "0".to_string()),
        ("ENSEMBLE_LOGIN_LIMIT_NAME_ADDRESS", "0".to_string()),
    ]);
    let mut config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    config.mail_retry_base = Duration::from_millis(100);
    config.mail_retry_max = Duration::from_millis(400);
    config.poll_interval = Duration::from_millis(100);
    config.mail_interval = Duration::from_millis(300);
    config.smtp_timeout = Duration::from_secs(5);
    // Two test servers in each of two parallel tests stay well inside max_connections.
    config.pool_size = 8;
    config
}

/// A change to the test configuration, kept across restarts.
pub type Tweak = Arc<dyn Fn(&mut Config) + Send + Sync>;

pub struct TestApp {
    pub tweak: Option<Tweak>,
    /// The database, dropped with the last app on it (after `Drop for TestApp` has stopped
    /// this one's tasks).
    _database: Option<OwnedDatabase>,
    pub address: String,
    pub app: Arc<App>,
    pub database_url: String,
    pub wechat: FakeWechat,
    pub smtp_port: u16,
    /// The SMTP fake, when this app was spawned with one listening.
    pub smtp: Option<FakeSmtp>,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

pub async fn spawn_app() -> TestApp {
    let smtp = FakeSmtp::start(0).await;
    let mut app = spawn_app_on(fresh_database_url(), FakeWechat::start().await, smtp.port).await;
    app.smtp = Some(smtp);
    app
}

/// An app whose SMTP server is not (yet) listening on `smtp_port`.
pub async fn spawn_app_with_smtp_port(smtp_port: u16) -> TestApp {
    spawn_app_on(fresh_database_url(), FakeWechat::start().await, smtp_port).await
}

pub async fn spawn_app_on(database_url: String, wechat: FakeWechat, smtp_port: u16) -> TestApp {
    spawn_app_tweaked(database_url, wechat, smtp_port, None).await
}

/// An app with a fake SMTP server and `tweak` applied to its configuration.
pub async fn spawn_app_with(tweak: impl Fn(&mut Config) + Send + Sync + 'static) -> TestApp {
    let smtp = FakeSmtp::start(0).await;
    let mut app = spawn_app_tweaked(
        fresh_database_url(),
        FakeWechat::start().await,
        smtp.port,
        Some(Arc::new(tweak)),
    )
    .await;
    app.smtp = Some(smtp);
    app
}

pub async fn spawn_app_tweaked(
    database_url: String,
    wechat: FakeWechat,
    smtp_port: u16,
    tweak: Option<Tweak>,
) -> TestApp {
    drop_stale_databases().await;
    capture_logs();
    let mut config = test_config(&database_url, &wechat.base, smtp_port);
    if let Some(tweak) = &tweak {
        tweak(&mut config);
    }
    let mut app = start(config, database_url, wechat, smtp_port).await;
    app.tweak = tweak;
    app
}

async fn start(
    config: Config,
    database_url: String,
    wechat: FakeWechat,
    smtp_port: u16,
) -> TestApp {
    runtime::wechat::install_crypto_provider();
    let app = App::start(config).await.expect("app starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(ensemble::api::serve(app.clone(), listener, async {
        let _ = rx.await;
    }));
    let server = tokio::spawn(async move {
        server.await.unwrap().unwrap();
    });
    let tasks = app.spawn_workers().into_tasks();
    TestApp {
        tweak: None,
        _database: Some(OwnedDatabase::hold(&database_url)),
        address,
        app,
        database_url,
        wechat,
        smtp_port,
        smtp: None,
        http: reqwest::Client::new(),
        shutdown: Some(tx),
        server: Some(server),
        tasks,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// How many rows a list answer holds.
    pub fn rows(&self) -> usize {
        self.body.as_array().expect("a list").len()
    }
}

impl TestApp {
    /// A request to `path` with `token`, to be finished by the caller (headers, a raw body).
    pub fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.address))
            .header("Authorization", format!("JWT {token}"))
    }

    /// `PUT /absence/{id}/` with `body`.
    pub async fn change(&self, token: &str, id: impl std::fmt::Display, body: Value) -> Reply {
        self.put(&format!("/absence/{id}/"), token, body).await
    }

    /// Stop this server and its background tasks, then start a new one on the same database.
    pub async fn restart(self) -> TestApp {
        self.restart_on(TODAY).await
    }

    /// Restart with "today" pinned to `today`.
    pub async fn restart_on(mut self, today: &str) -> TestApp {
        self.stop().await;
        let mut config = test_config(&self.database_url, &self.wechat.base, self.smtp_port);
        config.today = Some(today.parse().unwrap());
        if let Some(tweak) = &self.tweak {
            tweak(&mut config);
        }
        let mut next = start(
            config,
            self.database_url.clone(),
            self.wechat.clone(),
            self.smtp_port,
        )
        .await;
        next.smtp = self.smtp.take();
        next.tweak = self.tweak.take();
        next
    }

    pub async fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        self.app.rt.pool.close().await;
        self.app.rt.tx_pool.close().await;
        self.app.rt.probe_pool.close().await;
    }

    /// A roster command, as an operator gives it from the CLI.
    pub async fn operator(&self, command: RosterCommand) {
        self.app
            .orchestra
            .roster
            .execute(ROSTER_ID, command, &runtime::bus::Actor::operator())
            .await
            .unwrap();
    }

    pub async fn import_roster(&self, csv: &str) {
        let rows = ensemble::cli::parse_roster_csv(csv).unwrap();
        ensemble::cli::import_roster(&self.app, rows, &runtime::bus::Actor::operator())
            .await
            .unwrap();
    }

    /// The projections a rebuild rebuilds (those with tables of their own).
    pub fn rebuildable(&self) -> Vec<&dyn runtime::runner::Projection> {
        self.app
            .rt
            .projections
            .iter()
            .filter(|p| !p.tables().is_empty())
            .map(|p| p.as_ref())
            .collect()
    }

    /// The member id of roster name `name` (by its reservation).
    pub async fn member_id(&self, name: &str) -> u64 {
        use aggregates::orchestra::roster::{member_of_subject, NAME_SCOPE};
        let keys = &self.app.rt.keys;
        let owner = keys
            .owner(NAME_SCOPE, keys.blind(NAME_SCOPE, name))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name} is not on the roster"));
        member_of_subject(&owner).unwrap()
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.address, path));
        if let Some(token) = token {
            req = req.header("Authorization", format!("JWT {token}"));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{path}: body is not JSON: {text:?}"))
        };
        if status == 500 {
            let logs = captured_logs();
            let failures: Vec<&str> = logs
                .lines()
                .filter(|l| l.contains("request failed"))
                .collect();
            panic!("{path} answered 500: {body}\nserver: {failures:?}");
        }
        Reply { status, body }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(reqwest::Method::PUT, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.request(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }

    /// Log `name` in with the WeChat account `openid-<name>`; returns the token.
    pub async fn login(&self, name: &str) -> String {
        let reply = self
            .post(
                "/account/login/",
                None,
                json!({ "name": name, "code": format!("code-{name}") }),
            )
            .await;
        assert_eq!(reply.status, 200, "login of {name}: {}", reply.body);
        assert_eq!(reply.body["msg"], "login!");
        reply.body["token"].as_str().unwrap().to_string()
    }

    /// The roster of [`ROSTER`] and everyone logged in.
    pub async fn with_roster(&self) -> Tokens {
        self.import_roster(ROSTER).await;
        Tokens {
            david: self.login("David").await,
            wendy: self.login("Wendy").await,
            percy: self.login("Percy").await,
            alice: self.login("Alice").await,
        }
    }

    pub async fn apply(&self, token: &str, date: &str, kind: &str) -> Reply {
        self.post(
            "/absence/",
            Some(token),
            json!({ "reason": "exam", "time_absence": date, "type": kind }),
        )
        .await
    }

    /// Apply and return the new absence's id (the application must succeed).
    pub async fn apply_id(&self, token: &str, date: &str, kind: &str) -> i64 {
        let reply = self.apply(token, date, kind).await;
        assert_eq!(reply.status, 201, "apply {date}: {}", reply.body);
        reply.body["id"].as_i64().unwrap()
    }

    pub async fn try_login(&self, body: Value) -> Reply {
        self.post("/account/login/", None, body).await
    }

    /// A manager's decision on absence `id`.
    pub async fn process(&self, id: i64, token: &str, result: &str, permission: bool) -> Reply {
        self.put(
            &format!("/manager/{id}/"),
            token,
            json!({ "result": result, "permission": permission }),
        )
        .await
    }

    /// Wait until `smtp` has received `received` messages and the outbox has recorded
    /// `recorded` rows as sent (the worker records a delivery just after the server accepted it).
    /// Waits long enough for a mail claimed by a stopped process to come free: a restart
    /// aborts the mail task, and rows it had claimed wait out their lease (2 x the SMTP timeout
    /// + 5 s: 15 s in the tests) before another process sends them.
    pub async fn delivered(&self, smtp: &FakeSmtp, received: usize, recorded: i64) -> bool {
        eventually(Duration::from_secs(20), || async {
            smtp.count() == received
                && self
                    .scalar("SELECT count(*) FROM mail_outbox WHERE sent_at IS NOT NULL")
                    .await
                    == recorded
        })
        .await
    }

    /// Hold the absences' checkpoint, as a rebuild once did: that read model stops moving
    /// until the returned transaction ends (and, since the holder has a transaction id, so do
    /// the others: the horizon stops at it).
    pub async fn hold_absences_read_model(&self) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let mut blocker = self.app.rt.pool.begin().await.unwrap();
        sqlx::query(
            "SELECT 1 FROM projection_checkpoints WHERE name = 'orchestra_absences' FOR UPDATE",
        )
        .execute(&mut *blocker)
        .await
        .unwrap();
        blocker
    }

    /// An operator's transaction holding `LOCK TABLE events IN <mode> MODE` until it ends (on
    /// the transaction pool, apart from the connections requests use).
    pub async fn lock_events(&self, mode: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let mut operator = self.app.rt.tx_pool.begin().await.unwrap();
        sqlx::query(&format!("LOCK TABLE events IN {mode} MODE"))
            .execute(&mut *operator)
            .await
            .unwrap();
        operator
    }

    /// Run one statement of SQL (no parameters) on the app's database.
    pub async fn sql(&self, statement: &str) {
        sqlx::query(statement)
            .execute(&self.app.rt.pool)
            .await
            .unwrap();
    }

    /// `GET path` with no token, as a browser or a stranger would.
    pub async fn anonymous_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    /// The OpenAPI document the server serves.
    pub async fn document(&self) -> Value {
        self.anonymous_get("/openapi.json")
            .await
            .json()
            .await
            .unwrap()
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.app.rt.pool)
            .await
            .unwrap()
    }
}

pub struct Tokens {
    pub david: String,
    pub wendy: String,
    pub percy: String,
    pub alice: String,
}

/// The queries the fake WeChat received.
pub type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// WeChat's code2session: `code-X` → openid `openid-X`; `bad-code` → an errcode.
#[derive(Clone)]
pub struct FakeWechat {
    pub base: String,
    pub seen: Seen,
}

impl FakeWechat {
    pub async fn start() -> Self {
        let seen: Seen = Default::default();
        let router = Router::new()
            .route(
                "/sns/jscode2session",
                get(
                    |State(seen): State<Seen>,
                     Query(q): Query<HashMap<String, String>>| async move {
                        seen.lock().unwrap().push(q.clone());
                        let code = q.get("js_code").cloned().unwrap_or_default();
                        match code.strip_prefix("code-") {
                            Some(who) => Json(json!({ "openid": format!("openid-{who}"), "session_key": "secret-session-key" })),
                            None => Json(json!({ "errcode": 40029, "errmsg": "invalid code" })),
                        }
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { base, seen }
    }
}

/// A minimal SMTP server that records each message it accepts. By default it accepts them
/// all; [`SmtpMode`] makes it misbehave.
pub struct FakeSmtp {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<String>>>,
    pub mode: Arc<Mutex<SmtpMode>>,
    task: JoinHandle<()>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SmtpMode {
    Accept,
    /// Accepts connections and never says a word.
    Silent,
    /// Accepts messages until it holds this many, then leaves every further DATA unanswered.
    AcceptThenHang(usize),
    /// Refuses every recipient for good (550).
    RejectRecipients,
    /// Takes each message at once (`count` sees it) but says so (250) only after this long.
    AcceptAfter(Duration),
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSmtp {
    pub async fn start(port: u16) -> Self {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages: Arc<Mutex<Vec<String>>> = Default::default();
        let mode = Arc::new(Mutex::new(SmtpMode::Accept));
        let store = messages.clone();
        let shared_mode = mode.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let store = store.clone();
                let mode = shared_mode.clone();
                tokio::spawn(async move {
                    let _ = session(socket, store, mode).await;
                });
            }
        });
        Self {
            port,
            messages,
            mode,
            task,
        }
    }

    pub fn set_mode(&self, mode: SmtpMode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }
}

async fn session(
    socket: tokio::net::TcpStream,
    store: Arc<Mutex<Vec<String>>>,
    mode: Arc<Mutex<SmtpMode>>,
) -> std::io::Result<()> {
    let mode = || *mode.lock().unwrap();
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    if mode() == SmtpMode::Silent {
        std::future::pending::<()>().await;
    }
    write.write_all(b"220 fake.smtp ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => write.write_all(b"250 fake.smtp\r\n").await?,
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut message = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    message.push_str(&line);
                }
                if let SmtpMode::AcceptThenHang(n) = mode() {
                    if store.lock().unwrap().len() >= n {
                        std::future::pending::<()>().await;
                    }
                }
                store.lock().unwrap().push(message);
                if let SmtpMode::AcceptAfter(delay) = mode() {
                    tokio::time::sleep(delay).await;
                }
                write.write_all(b"250 queued\r\n").await?;
            }
            "RCPT" if mode() == SmtpMode::RejectRecipients => {
                write.write_all(b"550 no such user\r\n").await?
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => write.write_all(b"250 ok\r\n").await?,
        }
    }
}

/// Poll an async `check` until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything the tracing of this test binary has written (all tests; installed once).
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Capture the server's log lines (warnings and up, and PostgreSQL's notices) for the tests
/// that check what was logged.
fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "warn,sqlx::postgres::notice=info",
            ))
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init();
    });
}
