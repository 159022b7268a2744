//! GraphiQL and the dashboard in a real browser: headless Chromium driven by
//! `tests/browser/run.mjs` (playwright-core) against two gateways started
//! here, one with the development key and one with a real key.
//!
//! It needs Chromium (`/usr/bin/chromium`, or `CHROMIUM`), Node.js and the
//! npm packages of `tests/browser` (`npm ci`; `.ci/run` installs all three).
//! Without them the test is reported as ignored, not as passed; with
//! `ACTIONGATE_REQUIRE_BROWSER` set (as CI does) it fails instead. Screenshots
//! go to `<ACTIONGATE_SCREENSHOTS>/<backend>/`, by default under Cargo's test
//! temp dir.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use actiongate::{READ_WRITE_ROLE, TokenKeys, TokenSpec, mint};
use helpers::{Backend, TestApp, reader, writer};
use libtest_mimic::{Arguments, Failed, Trial};

const TEST_NAME: &str = "graphiql_and_the_dashboard_work_in_chromium";

fn main() {
    let mut arguments = Arguments::from_args();
    // Two browsers and four gateways at once crowd a small CI machine.
    arguments.test_threads.get_or_insert(1);
    let missing = missing_prerequisites();
    if let Some(why) = &missing {
        // CI sets this: there a missing browser is a failure, not a skip.
        if std::env::var_os("ACTIONGATE_REQUIRE_BROWSER").is_some() {
            eprintln!("the browser test cannot run: {why}");
            std::process::exit(1);
        }
        eprintln!("the browser test is ignored: {why}");
    }
    let postgres = std::env::var("ACTIONGATE_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let trials = vec![
        Trial::test(format!("sqlite::{TEST_NAME}"), || {
            in_chromium(Backend::Sqlite, "sqlite")
        })
        .with_ignored_flag(missing.is_some()),
        Trial::test(format!("postgres::{TEST_NAME}"), {
            let postgres = postgres.clone();
            move || match postgres {
                Some(url) => in_chromium(Backend::Postgres(url), "postgres"),
                None => Err("set ACTIONGATE_TEST_POSTGRES_URL to run it on PostgreSQL".into()),
            }
        })
        .with_ignored_flag(missing.is_some() || postgres.is_none()),
    ];
    libtest_mimic::run(&arguments, trials).exit();
}

fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Why the test cannot run here, if it cannot.
fn missing_prerequisites() -> Option<String> {
    let chromium = chromium();
    if !chromium.exists() {
        return Some(format!(
            "no Chromium at {} (apt-get install chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("no Node.js on the PATH".into());
    }
    if !package_dir().join("node_modules/playwright-core").exists() {
        return Some("run `npm ci` in tests/browser".into());
    }
    None
}

fn in_chromium(backend: Backend, label: &str) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(drive(backend, label))
}

async fn drive(backend: Backend, label: &str) -> Result<(), Failed> {
    let development = TestApp::builder(backend.clone())
        .configure(|c| c.token_keys = TokenKeys::Development)
        .with_executor()
        .spawn()
        .await;
    let real_key = TestApp::spawn(backend).await;
    let screenshots = match std::env::var_os("ACTIONGATE_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser"),
    }
    .join(label);
    let foreign = TokenSpec {
        tenant: "contoso".into(),
        app: "app-1".into(),
        user: "mallory@example.com".into(),
        roles: vec![READ_WRITE_ROLE.into()],
        ttl: Duration::from_secs(600),
        issuer: None,
        audience: None,
    };
    let foreign = mint(b"another-key-another-key-another-key-0123", &foreign)?;

    let mut node = Command::new("node");
    node.arg("run.mjs")
        .current_dir(package_dir())
        .env("ACTIONGATE_URL", development.url(""))
        .env("ACTIONGATE_SIGNIN_URL", real_key.url(""))
        .env("ACTIONGATE_SIGNIN_TOKEN", writer("contoso"))
        .env("ACTIONGATE_READER_TOKEN", reader("contoso"))
        .env("ACTIONGATE_FOREIGN_TOKEN", foreign)
        .env("ACTIONGATE_SCREENSHOTS", &screenshots)
        .env("CHROMIUM", chromium());
    let output = tokio::task::spawn_blocking(move || node.output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "the browser test failed ({}); screenshots in {}\n{stdout}\n{stderr}",
            output.status,
            screenshots.display()
        )
        .into());
    }
    Ok(())
}
