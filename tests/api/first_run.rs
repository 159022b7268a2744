//! The first run on a fresh machine: a development key, a ready token, GraphiQL
//! with it filled in, and `actiongate token`.

use std::process::Command;

use actiongate::config::TokenKeys;
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

    let page = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let settings = page
        .split("const settings = ")
        .nth(1)
        .and_then(|rest| rest.split(";\n").next())
        .expect("GraphiQL carries its settings");
    let settings: Value = serde_json::from_str(settings).expect("the settings are JSON");
    let bearer = settings["authorization"]
        .as_str()
        .expect("the Authorization header is filled in");
    let token = bearer.strip_prefix("Bearer ").expect("a bearer token");

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

crate::on_both_backends!(
    without_an_issuer_a_development_key_and_a_ready_token_are_made,
    the_token_command_mints_tokens_with_the_development_key,
);
