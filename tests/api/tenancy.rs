//! Tenant isolation: another tenant's action behaves exactly like one that
//! does not exist, everywhere.

use serde_json::json;

use crate::helpers::{Backend, TestApp, assert_no_errors, error_code, total_count, writer};

async fn another_tenants_action_is_invisible_and_untouchable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = writer("tenant-a");
    let b = writer("tenant-b");
    let action = app.block_ip(&a, "203.0.113.7").await;
    let id = action["id"].as_str().unwrap();

    let read = app
        .gql(
            &b,
            "query($id: ID!) { action(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_no_errors(&read);
    assert!(read["data"]["action"].is_null());

    let cancel = app
        .gql(
            &b,
            "mutation($id: ID!) { cancelAction(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    let missing = app
        .gql(
            &b,
            "mutation { cancelAction(id: \"00000000-0000-7000-8000-000000000000\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&cancel), "NOT_FOUND");
    assert_eq!(error_code(&missing), "NOT_FOUND");
    assert_eq!(
        cancel["errors"][0]["message"]
            .as_str()
            .unwrap()
            .replace(id, "<id>"),
        missing["errors"][0]["message"]
            .as_str()
            .unwrap()
            .replace("00000000-0000-7000-8000-000000000000", "<id>"),
        "the same answer as for an id that does not exist"
    );

    assert_eq!(total_count(&app, &b).await, 0);
    let by_id = app
        .gql(
            &b,
            "query($id: ID!) { actions(filter: {ids: [$id]}) { totalCount nodes { id } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(by_id["data"]["actions"]["totalCount"], 0);
    let by_parameter = app
        .gql(&b, "{ actions(filter: {parameter: {name: \"ip\", value: \"203.0.113.7\"}}) { totalCount } }", json!({}))
        .await;
    assert_eq!(by_parameter["data"]["actions"]["totalCount"], 0);
    let counts = app.gql(&b, "{ actionCounts { count } }", json!({})).await;
    let total: i64 = counts["data"]["actionCounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 0);

    // The same clientContext in two tenants is two actions.
    let input = json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "198.51.100.1"}], "clientContext": "shared"});
    let q = "mutation($i: InvokeActionInput!) { invokeAction(input: $i) { id } }";
    let in_a = app.gql(&a, q, json!({"i": input})).await;
    let in_b = app.gql(&b, q, json!({"i": input})).await;
    assert_no_errors(&in_a);
    assert_no_errors(&in_b);
    assert_ne!(
        in_a["data"]["invokeAction"]["id"],
        in_b["data"]["invokeAction"]["id"]
    );

    // And tenant A still sees and cancels its own.
    let mine = app
        .gql(
            &a,
            "query($id: ID!) { action(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(mine["data"]["action"]["id"], id);
    assert_eq!(total_count(&app, &a).await, 2);
}

crate::on_both_backends!(another_tenants_action_is_invisible_and_untouchable);
