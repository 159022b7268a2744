//! A real third-party client: the `graphql-ws` npm package, driven by
//! `tests/clients/subscribe.mjs` (subscribe, invoke, disconnect, resume).
//!
//! It needs Node.js and the npm packages of `tests/clients` (`npm ci`;
//! `.ci/run` installs them). Without them the test is reported as ignored,
//! not as passed; with `ACTIONGATE_REQUIRE_NODE_CLIENT` set (as CI does) it
//! fails instead. Its own harness (libtest-mimic) is what lets it decide that
//! at run time.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::path::PathBuf;
use std::process::Command;

use helpers::{Backend, TestApp, writer};
use libtest_mimic::{Arguments, Failed, Trial};

const TEST_NAME: &str = "the_graphql_ws_npm_client_subscribes_and_resumes_without_loss";

fn main() {
    let arguments = Arguments::from_args();
    let missing = missing_prerequisites();
    if let Some(why) = &missing {
        if std::env::var_os("ACTIONGATE_REQUIRE_NODE_CLIENT").is_some() {
            eprintln!("the Node client test cannot run: {why}");
            std::process::exit(1);
        }
        eprintln!("the Node client test is ignored: {why}");
    }
    let postgres = Backend::postgres();
    if postgres.is_none() {
        eprintln!("its PostgreSQL run is ignored: set ACTIONGATE_TEST_POSTGRES_URL to run it");
    }
    let trials = vec![
        Trial::test(format!("sqlite::{TEST_NAME}"), || {
            with_node_client(Backend::Sqlite)
        })
        .with_ignored_flag(missing.is_some()),
        Trial::test(format!("postgres::{TEST_NAME}"), {
            let postgres = postgres.clone();
            move || with_node_client(postgres.unwrap_or_else(Backend::required_postgres))
        })
        .with_ignored_flag(missing.is_some() || postgres.is_none()),
    ];
    libtest_mimic::run(&arguments, trials).exit();
}

fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Why the test cannot run here, if it cannot.
fn missing_prerequisites() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("no Node.js on the PATH".into());
    }
    if !package_dir().join("node_modules/graphql-ws").exists() {
        return Some("run `npm ci` in tests/clients".into());
    }
    None
}

fn with_node_client(backend: Backend) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(subscribe_and_resume(backend))
}

async fn subscribe_and_resume(backend: Backend) -> Result<(), Failed> {
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let mut node = Command::new("node");
    node.arg("subscribe.mjs")
        .current_dir(package_dir())
        .env("ACTIONGATE_URL", app.url(""))
        .env("ACTIONGATE_TOKEN", writer("tenant-a"));
    let output = tokio::task::spawn_blocking(move || node.output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the Node client failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    if !stdout.contains("ok: 15 events") {
        return Err(format!("the Node client did not see its 15 events:\n{stdout}").into());
    }
    Ok(())
}
