//! `invokeAction`: validation, storage and idempotency.

use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, assert_no_errors, error_code, error_field, token_with, total_count, writer,
};

const INVOKE: &str = "mutation($input: InvokeActionInput!) { invokeAction(input: $input) {
    id name status actionReason clientContext appId azureTenantId user
    parameters { name value }
    vendorInformation { provider vendor }
    states { status previousStatus appId user updatedDateTime }
    createdDateTime lastActionDateTime completedDateTime cancelRequestedDateTime
} }";

async fn invoke(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql(token, INVOKE, json!({ "input": input })).await
}

async fn the_graph_docs_example_is_accepted_and_stored_canonical(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");

    let body = invoke(
        &app,
        &token,
        json!({"name": "BlockIp", "actionReason": "seen in phishing", "parameters": [{"name": "IP", "value": "1.2.3.4"}]}),
    )
    .await;

    assert_no_errors(&body);
    let action = &body["data"]["invokeAction"];
    assert_eq!(action["name"], "blockIp");
    assert_eq!(
        action["parameters"],
        json!([{"name": "ip", "value": "1.2.3.4"}])
    );
    assert_eq!(action["actionReason"], "seen in phishing");
    assert_eq!(action["azureTenantId"], "tenant-a");
    assert_eq!(action["appId"], "app-1");
    assert_eq!(action["user"], "analyst@example.com");
    assert_eq!(action["vendorInformation"]["provider"], "blocklist");
    assert!(action["cancelRequestedDateTime"].is_null());
    let states = action["states"].as_array().unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0]["status"], "NOT_STARTED");
    assert!(states[0]["previousStatus"].is_null());
    assert_eq!(states[0]["user"], "analyst@example.com");

    let id = action["id"].as_str().unwrap();
    let read = app
        .gql(
            &token,
            "query($id: ID!) { action(id: $id) { id name parameters { name value } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(read["data"]["action"]["id"], id);
    assert_eq!(read["data"]["action"]["parameters"][0]["value"], "1.2.3.4");
}

async fn every_catalog_action_is_accepted_with_its_indicator(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let cases = [
        ("blockIp", "ip", "2001:DB8::7", "2001:db8::7"),
        ("allowIp", "ip", "198.51.100.1", "198.51.100.1"),
        (
            "blockUrl",
            "url",
            "https://Evil.Example/x",
            "https://evil.example/x",
        ),
        (
            "allowUrl",
            "url",
            "http://good.example/",
            "http://good.example/",
        ),
        ("blockDomain", "domain", "Evil.Example.", "evil.example"),
        ("allowDomain", "domain", "good.example", "good.example"),
        (
            "blockFile",
            "fileHash",
            "D41D8CD98F00B204E9800998ECF8427E",
            "d41d8cd98f00b204e9800998ecf8427e",
        ),
        ("allowFile", "fileHash", &"ab".repeat(32), &"ab".repeat(32)),
    ];
    for (name, parameter, value, canonical) in cases {
        let body = invoke(
            &app,
            &token,
            json!({"name": name, "parameters": [{"name": parameter, "value": value}]}),
        )
        .await;
        assert_no_errors(&body);
        assert_eq!(
            body["data"]["invokeAction"]["parameters"][0]["value"], canonical,
            "{name}"
        );
    }
    let with_expiry = invoke(
        &app,
        &token,
        json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "10.1.1.1"}, {"name": "expirationDateTime", "value": "2999-01-01T00:00:00+00:00"}]}),
    )
    .await;
    assert_no_errors(&with_expiry);
    assert_eq!(
        with_expiry["data"]["invokeAction"]["parameters"][1]["value"],
        "2999-01-01T00:00:00Z"
    );
}

async fn each_invalid_input_is_bad_user_input_naming_the_field_and_stores_nothing(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let ip = |v: &str| json!([{"name": "ip", "value": v}]);
    let cases = [
        (
            json!({"name": "blockFoo", "parameters": ip("1.2.3.4")}),
            "input.name",
        ),
        (
            json!({"name": "blockIp", "parameters": []}),
            "input.parameters",
        ),
        (
            json!({"name": "blockIp", "parameters": ip("1.2.3")}),
            "input.parameters[0].value",
        ),
        (
            json!({"name": "blockIp", "parameters": ip("not an ip")}),
            "input.parameters[0].value",
        ),
        (
            json!({"name": "blockIp", "parameters": ip("::ffff:0.0.0.0")}),
            "input.parameters[0].value",
        ),
        (
            json!({"name": "blockIp", "parameters": ip("0:0:0:0:0:ffff:0:0")}),
            "input.parameters[0].value",
        ),
        (
            json!({"name": "blockUrl", "parameters": [{"name": "url", "value": "ftp://x.example/"}]}),
            "input.parameters[0].value",
        ),
        (
            // 2,018 bytes as sent, over 6,000 once percent-encoded.
            json!({"name": "blockUrl", "parameters": [{"name": "url", "value": format!("https://x.example/{}", "ü".repeat(1000))}]}),
            "input.parameters[0].value",
        ),
        (
            json!({"name": "blockUrl", "parameters": [{"name": "url", "value": "/relative"}]}),
            "input.parameters[0].value",
        ),
        (
            json!({"name": "blockDomain", "parameters": [{"name": "domain", "value": "-bad-.example"}]}),
            "input.parameters[0].value",
        ),
        (
            json!({"name": "blockFile", "parameters": [{"name": "fileHash", "value": "abc"}]}),
            "input.parameters[0].value",
        ),
        (
            json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "1.2.3.4"}, {"name": "port", "value": "80"}]}),
            "input.parameters[1].name",
        ),
        (
            json!({"name": "blockIp", "parameters": [{"name": "url", "value": "https://x.example"}]}),
            "input.parameters[0].name",
        ),
        (
            json!({"name": "blockIp", "parameters": [{"name": "expirationDateTime", "value": "2999-01-01T00:00:00Z"}]}),
            "input.parameters",
        ),
        (
            json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "1.2.3.4"}, {"name": "expirationDateTime", "value": "yesterday"}]}),
            "input.parameters[1].value",
        ),
        (
            json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "1.2.3.4"}, {"name": "expirationDateTime", "value": "2001-01-01T00:00:00Z"}]}),
            "input.parameters[1].value",
        ),
        (
            json!({"name": "blockIp", "parameters": ip(&"9".repeat(2049))}),
            "input.parameters[0].value",
        ),
        (
            json!({"name": "blockIp", "parameters": ip("1.2.3.4"), "actionReason": "r".repeat(1001)}),
            "input.actionReason",
        ),
        (
            json!({"name": "blockIp", "parameters": ip("1.2.3.4"), "clientContext": "c".repeat(257)}),
            "input.clientContext",
        ),
        (
            json!({"name": "blockIp", "parameters": ip("1.2.3.4"), "clientContext": ""}),
            "input.clientContext",
        ),
        (
            json!({"name": "blockIp", "parameters": ip("1.2.3.4"), "clientContext": "nul\u{0}byte"}),
            "input.clientContext",
        ),
        (
            json!({"name": "blockIp", "parameters": ip("1.2.3.4"), "vendorInformation": {"provider": "nope"}}),
            "input.vendorInformation.provider",
        ),
    ];
    for (input, field) in cases {
        let body = invoke(&app, &token, input.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}");
        assert_eq!(error_field(&body), field, "{input}");
        assert!(body["data"].is_null(), "{body}");
    }
    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"name": format!("p{i}"), "value": "v"}))
        .collect();
    let body = invoke(
        &app,
        &token,
        json!({"name": "blockIp", "parameters": too_many}),
    )
    .await;
    assert_eq!(error_field(&body), "input.parameters");

    assert_eq!(
        total_count(&app, &token).await,
        0,
        "nothing is stored from invalid input"
    );
}

async fn limits_are_inclusive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let body = invoke(
        &app,
        &token,
        json!({
            "name": "blockUrl",
            "actionReason": "r".repeat(1000),
            "clientContext": "c".repeat(256),
            "parameters": [{"name": "url", "value": format!("https://x.example/{}", "a".repeat(2048 - 18))}],
        }),
    )
    .await;
    assert_no_errors(&body);
}

async fn a_reused_client_context_replays_the_same_input_and_conflicts_on_other_input(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let input = json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "203.0.113.7"}], "clientContext": "ticket-42"});

    let first = invoke(&app, &token, input.clone()).await;
    let again = invoke(&app, &token, input.clone()).await;
    let respelled = invoke(
        &app,
        &token,
        json!({"name": "BLOCKIP", "parameters": [{"name": "IP", "value": "203.0.113.7"}], "clientContext": "ticket-42"}),
    )
    .await;
    let different = invoke(
        &app,
        &token,
        json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "203.0.113.8"}], "clientContext": "ticket-42"}),
    )
    .await;

    assert_no_errors(&first);
    assert_eq!(
        again["data"]["invokeAction"]["id"],
        first["data"]["invokeAction"]["id"]
    );
    assert_eq!(
        respelled["data"]["invokeAction"]["id"],
        first["data"]["invokeAction"]["id"]
    );
    assert_eq!(error_code(&different), "CONFLICT");
    assert_eq!(total_count(&app, &token).await, 1);

    // The key is per app: another app of the tenant has its own.
    let other_app = token_with("tenant-a", "app-2", "bot", &[actiongate::READ_WRITE_ROLE]);
    let other = invoke(&app, &other_app, input).await;
    assert_no_errors(&other);
    assert_ne!(
        other["data"]["invokeAction"]["id"],
        first["data"]["invokeAction"]["id"]
    );
    assert_eq!(total_count(&app, &token).await, 2);
}

async fn concurrent_identical_requests_store_one_action(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let input = json!({"name": "blockDomain", "parameters": [{"name": "domain", "value": "evil.example"}], "clientContext": "burst"});

    let requests = (0..16).map(|_| invoke(&app, &token, input.clone()));
    let bodies = futures_util::future::join_all(requests).await;

    let ids: std::collections::HashSet<String> = bodies
        .iter()
        .map(|body| {
            assert_no_errors(body);
            body["data"]["invokeAction"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every request returns the same action");
    assert_eq!(total_count(&app, &token).await, 1);
}

async fn a_read_only_token_cannot_invoke(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = invoke(
        &app,
        &crate::helpers::reader("tenant-a"),
        json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "1.2.3.4"}]}),
    )
    .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    assert_eq!(total_count(&app, &writer("tenant-a")).await, 0);
}

crate::on_both_backends!(
    the_graph_docs_example_is_accepted_and_stored_canonical,
    every_catalog_action_is_accepted_with_its_indicator,
    each_invalid_input_is_bad_user_input_naming_the_field_and_stores_nothing,
    limits_are_inclusive,
    a_reused_client_context_replays_the_same_input_and_conflicts_on_other_input,
    concurrent_identical_requests_store_one_action,
    a_read_only_token_cannot_invoke,
);
