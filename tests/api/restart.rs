//! Stopping and starting again: nothing stored is lost, and a second instance
//! on the same database sees the same actions.

use serde_json::json;

use crate::helpers::{Backend, TestApp, assert_no_errors, writer};

async fn actions_survive_a_restart_and_are_shared_by_instances_on_one_database(backend: Backend) {
    let first = TestApp::spawn(backend.clone()).await;
    let token = writer("tenant-a");
    let id = first.block_ip(&token, "203.0.113.7").await["id"].clone();
    let database = first.database.clone();
    first.stop().await;

    let second = TestApp::builder(backend.clone())
        .on_database(&database)
        .spawn()
        .await;
    let third = TestApp::builder(backend)
        .on_database(&database)
        .spawn()
        .await;

    for app in [&second, &third] {
        let body = app
            .gql(
                &token,
                "query($id: ID!) { action(id: $id) { id parameters { value } states { status } } }",
                json!({"id": id}),
            )
            .await;
        assert_no_errors(&body);
        assert_eq!(
            body["data"]["action"]["parameters"][0]["value"],
            "203.0.113.7"
        );
    }
}

crate::on_both_backends!(actions_survive_a_restart_and_are_shared_by_instances_on_one_database);
