//! The test harness: start the real gateway on port 0 against a fresh database
//! (SQLite in a temporary directory, or a new PostgreSQL database), mint tokens,
//! and send GraphQL over HTTP the way a client would.

use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actiongate::{
    App, Config, READ_ROLE, READ_WRITE_ROLE, Rate, RateLimits, TokenKeys, TokenSpec, mint,
};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The HS256 secret of test apps.
pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Which database a test runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The admin URL of a PostgreSQL server; each test gets a new database on it.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `ACTIONGATE_TEST_POSTGRES_URL` is set.
    pub fn postgres() -> Option<Backend> {
        match std::env::var("ACTIONGATE_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => None,
        }
    }

    /// PostgreSQL, for a test that only runs when the suite was built with
    /// `ACTIONGATE_TEST_POSTGRES_URL` set (`build.rs`): being here without it
    /// (a test binary run by hand) is a failure, never a silent pass.
    pub fn required_postgres() -> Backend {
        Backend::postgres().expect(
            "this test was built for PostgreSQL: set ACTIONGATE_TEST_POSTGRES_URL when running it",
        )
    }
}

/// Generates, for each listed `async fn name(backend: Backend)`, a test on
/// SQLite (`sqlite::name`) and one on PostgreSQL (`postgres::name`). The
/// PostgreSQL ones are reported as ignored unless the suite is built with
/// `ACTIONGATE_TEST_POSTGRES_URL` set.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        $crate::on_postgres!(postgres: $($name),*);
    };
}

/// Generates, for each listed `async fn name(backend: Backend)`, a test on
/// PostgreSQL only (`<module>::name`), reported as ignored unless the suite is
/// built with `ACTIONGATE_TEST_POSTGRES_URL` set.
#[macro_export]
macro_rules! on_postgres {
    ($module:ident: $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(actiongate_postgres_tests),
                    ignore = "set ACTIONGATE_TEST_POSTGRES_URL to run the PostgreSQL tests"
                )]
                async fn $name() {
                    super::$name($crate::helpers::Backend::required_postgres()).await
                }
            )*
        }
    };
}

/// A fresh database, dropped with the test.
pub struct TestDatabase {
    pub url: String,
    /// For PostgreSQL: the admin URL and the database name, to drop it.
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(backend: &Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                TestDatabase {
                    url: format!("sqlite://{}/actiongate.db?mode=rwc", dir.path().display()),
                    postgres: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres(admin_url) => {
                let name = format!("actiongate_test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(admin_url.as_str())
                    .await
                    .expect("connect to PostgreSQL");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create the test database");
                admin.close().await.ok();
                TestDatabase {
                    url: replace_database(admin_url, &name),
                    postgres: Some((admin_url.clone(), name)),
                    _dir: None,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            // Drop runs outside async; a short-lived runtime on its own thread
            // removes the database, closing what the app left open.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    if let Ok(admin) = Database::connect(admin_url.as_str()).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        let _ = admin.close().await;
                    }
                });
                Ok::<(), std::io::Error>(())
            })
            .join();
        }
    }
}

/// `postgres://u@h:p/db?x` with the database replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[authority_end..].find('/').map(|i| i + authority_end);
    let root = match path_start {
        Some(i) => &base[..i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// A running gateway and a client for it.
pub struct TestApp {
    pub address: std::net::SocketAddr,
    /// Where `/metrics` is served, when not at `address` (`--metrics-listen`).
    pub metrics_address: Option<std::net::SocketAddr>,
    pub client: reqwest::Client,
    pub store: actiongate::Store,
    pub events: actiongate::EventHub,
    /// The development token, when the app runs with the development key.
    pub dev_token: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    pub data_dir: tempfile::TempDir,
    /// Shared by the apps of one test that run on the same database.
    pub database: Arc<TestDatabase>,
}

/// A change to the default test config.
type ConfigEdit = Box<dyn FnOnce(&mut Config) + Send>;

/// Builds a [`TestApp`] with changes to the default test config.
pub struct TestAppBuilder {
    backend: Backend,
    database: Option<Arc<TestDatabase>>,
    edits: Vec<ConfigEdit>,
}

impl TestAppBuilder {
    /// Changes the config before the app is built.
    pub fn configure(mut self, edit: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.edits.push(Box::new(edit));
        self
    }

    /// Turns the executor on, with delays short enough for tests.
    pub fn with_executor(self) -> Self {
        self.configure(|c| {
            c.executor.enabled = true;
            c.executor.concurrency = 8;
            c.executor.poll_interval = Duration::from_millis(100);
            c.executor.retry_base_delay = Duration::from_millis(50);
            c.executor.retry_max_delay = Duration::from_millis(400);
            c.executor.provider_timeout = Duration::from_secs(2);
            c.executor.lease = Duration::from_secs(10);
            c.executor.shutdown_grace = Duration::from_secs(5);
        })
    }

    /// Configures providers from TOML text.
    pub fn providers(self, toml: &str) -> Self {
        let toml = toml.to_owned();
        self.configure(move |c| {
            c.providers = actiongate::ProvidersFile::parse(&toml, &c.data_dir)
                .expect("valid provider configuration");
        })
    }

    /// Runs on the database of another app of the test, as a second replica.
    pub fn on_database(mut self, database: &Arc<TestDatabase>) -> Self {
        self.database = Some(database.clone());
        self
    }

    pub async fn spawn(self) -> TestApp {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let database = match self.database {
            Some(database) => database,
            None => Arc::new(TestDatabase::create(&self.backend).await),
        };
        let mut config = Config::new(data_dir.path(), Some(database.url.clone()));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.token_keys = TokenKeys::Secret(TEST_SECRET.into());
        config.store.max_connections = 8;
        // API tests look at actions as they were stored; tests of execution
        // turn the executor on with `with_executor`.
        config.executor.enabled = false;
        // Rate limits have their own tests; the rest send bursts freely.
        config.http.rate_limits = RateLimits {
            requests: Rate::off(),
            mutations: Rate::off(),
        };
        for edit in self.edits {
            edit(&mut config);
        }
        let app = App::build(config).await.expect("the app builds");
        let address = app.address();
        let metrics_address = app.metrics_address();
        let store = app.store().clone();
        let events = app.events().clone();
        let dev_token = app.dev_token().map(String::from);
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(async move {
            app.run_until_stopped(async {
                let _ = rx.await;
            })
            .await
            .expect("the app runs");
        });
        TestApp {
            address,
            metrics_address,
            client: reqwest::Client::new(),
            store,
            events,
            dev_token,
            shutdown: Some(tx),
            server: Some(server),
            data_dir,
            database,
        }
    }
}

impl TestApp {
    /// A test app with the default test config.
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::builder(backend).spawn().await
    }

    pub fn builder(backend: Backend) -> TestAppBuilder {
        TestAppBuilder {
            backend,
            database: None,
            edits: Vec::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// POSTs a GraphQL request with `token` and returns the response body.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        self.post_graphql(
            Some(token),
            json!({ "query": query, "variables": variables }),
        )
        .await
        .json()
        .await
        .expect("a JSON body")
    }

    /// GETs `path` and returns the body as text.
    pub async fn get_text(&self, path: &str) -> String {
        let response = self.client.get(self.url(path)).send().await;
        response
            .expect("the gateway answers")
            .text()
            .await
            .expect("a text body")
    }

    /// The body of `GET path`, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        serde_json::from_str(&self.get_text(path).await).expect("a JSON body")
    }

    /// POSTs a JSON body to `/graphql`.
    pub async fn post_graphql(&self, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self.client.post(self.url("/graphql")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("the gateway answers")
    }

    /// Invokes `blockIp` on `ip` and returns the action.
    pub async fn block_ip(&self, token: &str, ip: &str) -> Value {
        let body = self
            .gql(
                token,
                "mutation($ip: String!) { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: $ip}]}) { id status name } }",
                json!({ "ip": ip }),
            )
            .await;
        assert_no_errors(&body);
        body["data"]["invokeAction"].clone()
    }

    /// The action `id` as the tenant of `token` sees it.
    pub async fn action(&self, token: &str, id: &str) -> Value {
        let body = self
            .gql(
                token,
                "query($id: ID!) { action(id: $id) { id name status errorInfo { code message subcode }
                    states { status previousStatus user detail } completedDateTime cancelRequestedDateTime } }",
                json!({ "id": id }),
            )
            .await;
        assert_no_errors(&body);
        body["data"]["action"].clone()
    }

    /// Invokes action `name` with one parameter and returns its id.
    pub async fn invoke(&self, token: &str, name: &str, parameter: &str, value: &str) -> String {
        let body = self
            .gql(
                token,
                "mutation($i: InvokeActionInput!) { invokeAction(input: $i) { id } }",
                json!({"i": {"name": name, "parameters": [{"name": parameter, "value": value}]}}),
            )
            .await;
        assert_no_errors(&body);
        body["data"]["invokeAction"]["id"]
            .as_str()
            .expect("an id")
            .to_owned()
    }

    /// Cancels action `id` and returns it as the mutation does.
    pub async fn cancel(&self, token: &str, id: &str) -> Value {
        let body = self
            .gql(
                token,
                "mutation($id: ID!) { cancelAction(id: $id) { id status cancelRequestedDateTime } }",
                json!({"id": id}),
            )
            .await;
        assert_no_errors(&body);
        body["data"]["cancelAction"].clone()
    }

    /// Waits until action `id` is in `status`; returns it then.
    pub async fn wait_for_status(&self, token: &str, id: &str, status: &str) -> Value {
        eventually(format!("action {id} to reach {status}"), || async {
            let action = self.action(token, id).await;
            if action["status"] == status {
                Ok(action)
            } else {
                Err(action)
            }
        })
        .await
    }

    /// Ends the app without a graceful shutdown, as a crash does: its requests,
    /// its executor and its attempts in flight stop at once.
    pub async fn crash(mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
        }
    }

    pub fn data_path(&self) -> PathBuf {
        self.data_dir.path().to_path_buf()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A token for `tenant` with the given roles.
pub fn token_with(tenant: &str, app: &str, user: &str, roles: &[&str]) -> String {
    let spec = TokenSpec {
        tenant: tenant.into(),
        app: app.into(),
        user: user.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ttl: Duration::from_secs(600),
        issuer: None,
        audience: None,
    };
    mint(TEST_SECRET.as_bytes(), &spec).expect("a token")
}

/// A read-write token for `tenant`.
pub fn writer(tenant: &str) -> String {
    token_with(tenant, "app-1", "analyst@example.com", &[READ_WRITE_ROLE])
}

/// A read-only token for `tenant`.
pub fn reader(tenant: &str) -> String {
    token_with(tenant, "app-1", "viewer@example.com", &[READ_ROLE])
}

/// Panics with the errors when the response has any.
pub fn assert_no_errors(body: &Value) {
    assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
}

/// The `extensions.code` of the first error.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body:#}"))
}

/// The `extensions.field` of the first error.
pub fn error_field(body: &Value) -> &str {
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {body:#}"))
}

/// The statuses of an action's states, oldest first.
pub fn statuses(action: &Value) -> Vec<&str> {
    action["states"]
        .as_array()
        .expect("states")
        .iter()
        .map(|s| s["status"].as_str().expect("a status"))
        .collect()
}

/// What a check in [`eventually`] found: done (with what it yields), or not yet.
pub trait Checked<T> {
    /// `Err` holds what was seen instead, for the message should time run out.
    fn done(self) -> Result<T, String>;
}

impl Checked<()> for bool {
    fn done(self) -> Result<(), String> {
        if self { Ok(()) } else { Err("not yet".into()) }
    }
}

impl<T> Checked<T> for Option<T> {
    fn done(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".into())
    }
}

impl<T, E: Display> Checked<T> for Result<T, E> {
    fn done(self) -> Result<T, String> {
        self.map_err(|seen| format!("{seen:#}"))
    }
}

/// Runs `check` until it is done and returns what it yields, asking again
/// after a short pause (10 ms, doubling to 200 ms) for up to two minutes;
/// then panics, saying what it waited for and what it saw last. Every test
/// that waits for something waits through this.
pub async fn eventually<T, C, F, Fut>(what: impl Display, mut check: F) -> T
where
    C: Checked<T>,
    F: FnMut() -> Fut,
    Fut: Future<Output = C>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut pause = Duration::from_millis(10);
    loop {
        match check().await.done() {
            Ok(done) => return done,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Waits until the fan-out has published every event numbered so far.
pub async fn published(app: &TestApp) {
    eventually("every event to be published", || async {
        let numbered = app.store.event_head().await.unwrap();
        app.events.head() >= numbered && app.store.number_events().await.unwrap().is_none()
    })
    .await;
}

/// How many actions the tenant of `token` sees.
pub async fn total_count(app: &TestApp, token: &str) -> i64 {
    let body = app
        .gql(token, "{ actions { totalCount } }", json!({}))
        .await;
    assert_no_errors(&body);
    body["data"]["actions"]["totalCount"]
        .as_i64()
        .expect("a count")
}

/// The `actiongate` binary for a test that needs what only a process has
/// (its logs, its exit, a process-wide trace exporter): serving on a free
/// port, without the caller's `ACTIONGATE_*` and `OTEL_*` settings, with
/// standard output and error captured.
pub fn binary() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_actiongate"));
    command.args(["--listen", "127.0.0.1:0"]);
    for name in [
        "ACTIONGATE_LOG",
        "ACTIONGATE_JWT_SECRET",
        "ACTIONGATE_DATABASE_URL",
        "ACTIONGATE_DATA_DIR",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SERVICE_NAME",
        "OTEL_BSP_SCHEDULE_DELAY",
        "NO_COLOR",
    ] {
        command.env_remove(name);
    }
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// A running binary (from [`binary`]), killed when dropped.
pub struct RunningBinary {
    child: Option<std::process::Child>,
    /// Kept open: the binary writes to its standard output.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
    /// Where it serves, `http://…`.
    pub address: String,
    /// The development token it printed, when it runs without a secret.
    pub token: Option<String>,
}

impl RunningBinary {
    /// Starts `command` and reads what the binary prints once it serves: its
    /// address, then the development token when `dev_token` (no secret given).
    pub fn start(mut command: std::process::Command, dev_token: bool) -> RunningBinary {
        use std::io::BufRead;
        let mut child = command.spawn().expect("the binary starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (mut address, mut token) = (String::new(), None);
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap() > 0 {
            let text = line.trim();
            if let Some(rest) = text.strip_prefix("actiongate is listening on ") {
                address = rest.to_owned();
            } else if text.starts_with("eyJ") {
                token = Some(text.to_owned());
                break;
            } else if text.starts_with("dashboard:") && !dev_token {
                break;
            }
            line.clear();
        }
        assert!(!address.is_empty(), "the binary serves");
        assert_eq!(token.is_some(), dev_token, "the binary prints a token");
        RunningBinary {
            child: Some(child),
            _stdout: stdout,
            address,
            token,
        }
    }

    /// Stops the binary with SIGTERM, as an orchestrator does: whether it
    /// exited cleanly, and what it wrote to standard error.
    pub fn stop(mut self) -> (bool, String) {
        let child = self.child.take().unwrap();
        let _ = std::process::Command::new("kill")
            .arg(child.id().to_string())
            .status();
        let output = child.wait_with_output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
