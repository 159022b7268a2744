//! Start-up failures of the `actiongate` binary, as an operator meets them:
//! each case runs the real binary with one thing wrong and checks that it
//! exits non-zero with a message naming the cause (never the client-facing
//! "internal server error"). The PostgreSQL cases need the server of
//! `ACTIONGATE_TEST_POSTGRES_URL` and are reported as ignored without it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the binary printed on standard error, once it exited with failure.
fn start_fails(args: &[&str], data_dir: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_actiongate"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("ACTIONGATE_LISTEN", "127.0.0.1:0")
        .env_remove("ACTIONGATE_DATABASE_URL")
        .env_remove("ACTIONGATE_CONFIG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    // A guard against a binary that serves instead of failing, not a timing
    // assertion: the slowest case (an unreachable host) gives up in seconds.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("the child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("actiongate {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("its output");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "actiongate {args:?} started although it should not:\n{stderr}"
    );
    assert!(
        !stderr.to_lowercase().contains("internal server error"),
        "{stderr}"
    );
    stderr
}

/// The last line of standard error: the one `main` prints when it gives up.
fn last_line(stderr: &str) -> &str {
    stderr.lines().rev().find(|l| !l.is_empty()).unwrap_or("")
}

fn postgres_url() -> String {
    std::env::var("ACTIONGATE_TEST_POSTGRES_URL")
        .expect("this test was built for PostgreSQL: set ACTIONGATE_TEST_POSTGRES_URL")
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let mut url = url::Url::parse(url).expect("a URL");
    url.set_path(database);
    url.to_string()
}

#[test]
fn an_unsupported_url_scheme_lists_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = start_fails(
        &["--database-url", "mysql://root:hunter2@db:3306/actions"],
        dir.path(),
    );
    let message = last_line(&stderr);
    assert!(
        message.contains("unsupported database URL scheme 'mysql:'"),
        "{stderr}"
    );
    assert!(
        message.contains("sqlite://, postgres://, postgresql://"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password is shown: {stderr}"
    );
}

#[test]
fn a_url_without_a_scheme_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = start_fails(&["--database-url", "actions.db"], dir.path());
    assert!(
        last_line(&stderr).contains("has no scheme; supported: sqlite://"),
        "{stderr}"
    );
}

#[test]
#[cfg_attr(
    not(actiongate_postgres_tests),
    ignore = "set ACTIONGATE_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
fn a_missing_postgres_database_is_named_with_how_to_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = with_database(&postgres_url(), "actiongate_no_such_database");
    let stderr = start_fails(&["--database-url", &url], dir.path());
    let message = last_line(&stderr);
    assert!(
        message.contains("the PostgreSQL database 'actiongate_no_such_database' does not exist"),
        "{stderr}"
    );
    assert!(message.contains("createdb"), "{stderr}");
}

#[test]
#[cfg_attr(
    not(actiongate_postgres_tests),
    ignore = "set ACTIONGATE_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
fn a_refused_postgres_user_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut url = url::Url::parse(&postgres_url()).unwrap();
    url.set_username("actiongate_no_such_role").unwrap();
    url.set_password(Some("wrong-password")).unwrap();
    let stderr = start_fails(&["--database-url", url.as_str()], dir.path());
    let message = last_line(&stderr);
    assert!(
        message.contains("refused user 'actiongate_no_such_role'"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong-password"),
        "the password is shown: {stderr}"
    );
}

#[test]
fn an_unreachable_host_is_retried_then_named() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: taken, then let go.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/actions");
    let stderr = start_fails(&["--database-url", &url], dir.path());
    assert!(
        last_line(&stderr).contains(&format!(
            "cannot reach PostgreSQL at 127.0.0.1:{port} after 5 attempts"
        )),
        "{stderr}"
    );
    let retries = stderr.matches("trying again").count();
    assert_eq!(retries, 4, "each retry is logged:\n{stderr}");
}

#[test]
fn an_unwritable_sqlite_path_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // A directory cannot be made under a plain file, even by root.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let database = file.join("actiongate.db");
    let url = format!("sqlite://{}?mode=rwc", database.display());
    let stderr = start_fails(&["--database-url", &url], dir.path());
    let message = last_line(&stderr);
    assert!(
        message.contains(&format!(
            "cannot open the SQLite database {}",
            database.display()
        )),
        "{stderr}"
    );
    assert!(
        message.contains(&format!("{} is not a directory", file.display())),
        "{stderr}"
    );
}

#[test]
fn an_unusable_data_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let data_dir = file.join("data");
    let stderr = start_fails(&[], &data_dir);
    assert!(
        last_line(&stderr).contains(&format!(
            "cannot create the data directory {}",
            data_dir.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let stderr = start_fails(&["--listen", &address], dir.path());
    let message = last_line(&stderr);
    assert!(
        message.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(message.contains("--listen"), "{stderr}");
}

#[test]
fn a_metrics_port_in_use_names_the_address_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let stderr = start_fails(&["--metrics-listen", &address], dir.path());
    let message = last_line(&stderr);
    assert!(
        message.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(message.contains("with --metrics-listen"), "{stderr}");
}

#[test]
fn an_otlp_endpoint_that_is_not_http_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = start_fails(&["--otlp-endpoint", "collector:4317"], dir.path());
    assert!(
        last_line(&stderr)
            .contains("the OTLP endpoint 'collector:4317' is not an http:// or https:// URL"),
        "{stderr}"
    );
}

#[test]
fn a_provider_file_error_names_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("providers.toml");
    std::fs::write(
        &config,
        "[[providers]]\nname = \"edge\"\nkind = \"blocklist\"\n\n[[providers]]\nname = \"soar\"\nkind = \"webhook\"\nsecret = \"x\"\nurl = \"ftp://soar.example\"\n",
    )
    .unwrap();
    let stderr = start_fails(&["--config", config.to_str().unwrap()], dir.path());
    assert!(
        last_line(&stderr).contains(&format!(
            "{}: line 9: provider 'soar', key 'url': 'ftp://soar.example' is not an http(s) URL",
            config.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_provider_file_that_is_not_toml_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("providers.toml");
    std::fs::write(
        &config,
        "[[providers]]\nname = \"edge\"\nkind = blocklist\n",
    )
    .unwrap();
    let stderr = start_fails(&["--config", config.to_str().unwrap()], dir.path());
    assert!(
        last_line(&stderr).contains(&format!("{}: line 3:", config.display())),
        "{stderr}"
    );
}

#[test]
fn a_missing_provider_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nowhere.toml");
    let stderr = start_fails(&["--config", config.to_str().unwrap()], dir.path());
    assert!(
        last_line(&stderr).contains(&format!("reading {}", config.display())),
        "{stderr}"
    );
}
