//! `cancelAction` of actions that have not started.

use serde_json::json;

use crate::helpers::{Backend, TestApp, assert_no_errors, error_code, error_field, writer};

const CANCEL: &str = "mutation($id: ID!) { cancelAction(id: $id) {
    id status cancelRequestedDateTime completedDateTime
    states { status previousStatus user }
} }";

async fn cancel_of_a_not_started_action_cancels_it_at_once_with_its_state_row(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let id = app.block_ip(&token, "203.0.113.7").await["id"].clone();

    let body = app.gql(&token, CANCEL, json!({"id": id})).await;

    assert_no_errors(&body);
    let action = &body["data"]["cancelAction"];
    assert_eq!(action["status"], "CANCELED");
    assert!(action["cancelRequestedDateTime"].is_string());
    assert!(action["completedDateTime"].is_string());
    assert_eq!(
        action["states"],
        json!([
            {"status": "NOT_STARTED", "previousStatus": null, "user": "analyst@example.com"},
            {"status": "CANCELED", "previousStatus": "NOT_STARTED", "user": "analyst@example.com"},
        ])
    );
}

async fn cancel_of_a_canceled_action_returns_it_unchanged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let id = app.block_ip(&token, "203.0.113.7").await["id"].clone();
    let first = app.gql(&token, CANCEL, json!({"id": id})).await;

    let second = app.gql(&token, CANCEL, json!({"id": id})).await;

    assert_no_errors(&second);
    assert_eq!(
        second["data"]["cancelAction"],
        first["data"]["cancelAction"]
    );
}

async fn cancel_needs_a_well_formed_id_and_the_write_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let id = app.block_ip(&token, "203.0.113.7").await["id"].clone();

    let malformed = app.gql(&token, CANCEL, json!({"id": "42"})).await;
    let read_only = app
        .gql(
            &crate::helpers::reader("tenant-a"),
            CANCEL,
            json!({"id": id}),
        )
        .await;

    assert_eq!(error_code(&malformed), "BAD_USER_INPUT");
    assert_eq!(error_field(&malformed), "id");
    assert_eq!(error_code(&read_only), "FORBIDDEN");
    let still = app
        .gql(
            &token,
            "query($id: ID!) { action(id: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(still["data"]["action"]["status"], "NOT_STARTED");
}

crate::on_both_backends!(
    cancel_of_a_not_started_action_cancels_it_at_once_with_its_state_row,
    cancel_of_a_canceled_action_returns_it_unchanged,
    cancel_needs_a_well_formed_id_and_the_write_role,
);
