//! The first run on a fresh machine: a development key, a ready token that
//! the pages pre-fill, and `actiongate token`.

use std::process::Command;

use actiongate::TokenKeys;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_no_errors, error_code};

async fn without_an_issuer_a_development_key_and_a_ready_token_are_made(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| c.token_keys = TokenKeys::Development)
        .spawn()
        .await;
    let key = app.data_path().join("dev-jwt-secret");
    assert!(key.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let settings: Value = app.get_json("/ui/settings").await;
    let token = settings["devToken"]
        .as_str()
        .expect("the pages are handed the development token");

    let body = app.gql(token, "mutation { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: \"1.2.3.4\"}]}) { azureTenantId } }", json!({})).await;
    assert_no_errors(&body);
    assert_eq!(body["data"]["invokeAction"]["azureTenantId"], "dev-tenant");
}

async fn the_token_command_mints_tokens_with_the_development_key(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| c.token_keys = TokenKeys::Development)
        .spawn()
        .await;
    let mint = |role: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_actiongate"))
            .args([
                "token", "--tenant", "contoso", "--app", "soar", "--user", "bot", "--role", role,
                "--ttl", "10m",
            ])
            .env("ACTIONGATE_DATA_DIR", app.data_path())
            .env_remove("ACTIONGATE_JWT_SECRET")
            .output()
            .expect("the binary runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let writer = mint("readwrite");
    let reader = mint("read");

    let body = app.gql(&writer, "mutation { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: \"1.2.3.4\"}]}) { azureTenantId appId user } }", json!({})).await;
    assert_no_errors(&body);
    assert_eq!(
        body["data"]["invokeAction"],
        json!({"azureTenantId": "contoso", "appId": "soar", "user": "bot"})
    );
    let read: Value = app
        .gql(&reader, "{ actions { totalCount } }", json!({}))
        .await;
    assert_eq!(read["data"]["actions"]["totalCount"], 1);
    let refused = app.gql(&reader, "mutation { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: \"1.2.3.5\"}]}) { id } }", json!({})).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
}

/// Runs the real binary with debug logs, sends it requests with good and bad
/// tokens, and reads everything it logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_secrets_never_reach_the_logs() {
    let data = tempfile::tempdir().unwrap();
    let mut command = crate::helpers::binary();
    command
        .env("ACTIONGATE_DATA_DIR", data.path())
        .env("ACTIONGATE_LOG", "debug");
    let running = crate::helpers::RunningBinary::start(command, true);
    let (address, token) = (running.address.clone(), running.token.clone().unwrap());
    let client = reqwest::Client::new();
    let forged = format!("{token}x");
    for bearer in [&token, &forged] {
        client
            .post(format!("{address}/graphql"))
            .bearer_auth(bearer)
            .json(&json!({"query": "mutation { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: \"1.2.3.4\"}]}) { id } }"}))
            .send()
            .await
            .unwrap();
    }
    client
        .get(format!("{address}/graphql"))
        .bearer_auth(&token)
        .query(&[("query", "{ nope }")])
        .send()
        .await
        .unwrap();
    let (_, logs) = running.stop();
    assert!(
        logs.contains("listening"),
        "debug logs were written: {logs}"
    );
    let secret = std::fs::read_to_string(data.path().join("dev-jwt-secret")).unwrap();
    let signature = token.rsplit('.').next().unwrap();
    for (what, text) in [
        ("token", token.as_str()),
        ("token signature", signature),
        ("secret", secret.trim()),
    ] {
        assert!(!logs.contains(text), "the {what} appears in the logs");
    }
}

crate::on_both_backends!(
    without_an_issuer_a_development_key_and_a_ready_token_are_made,
    the_token_command_mints_tokens_with_the_development_key,
);
