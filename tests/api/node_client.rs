//! A real third-party client: the `graphql-ws` npm package, driven by
//! `tests/clients/subscribe.mjs` (subscribe, invoke, disconnect, resume).
//! `.ci/run` installs its packages with `npm ci`; without them (or without
//! Node.js) the test says so and passes.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{Backend, TestApp, writer};

async fn the_graphql_ws_npm_client_subscribes_and_resumes_without_loss(backend: Backend) {
    let clients = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    if !clients.join("node_modules/graphql-ws").exists() {
        eprintln!("skipped: run `npm ci` in tests/clients to test with the graphql-ws npm client");
        return;
    }
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let url = app.url("");
    let token = writer("tenant-a");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("subscribe.mjs")
            .current_dir(&clients)
            .env("ACTIONGATE_URL", url)
            .env("ACTIONGATE_TOKEN", token)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Node client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ok: 15 events"), "{stdout}");
}

crate::on_both_backends!(the_graphql_ws_npm_client_subscribes_and_resumes_without_loss);
