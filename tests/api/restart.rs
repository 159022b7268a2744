//! Stopping and starting again: nothing stored is lost, and a second instance
//! on the same database sees the same actions.

use sea_orm::ConnectionTrait;
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

/// Pooled connections are not pinged before every statement (only once idle
/// for a while); still, when the server closes them all, no request fails:
/// they are found broken and replaced.
async fn postgres_connections_the_server_closed_while_idle_are_replaced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let id = app.block_ip(&token, "10.6.0.1").await["id"].clone();
    let admin = sea_orm::Database::connect(app.database.url.as_str())
        .await
        .expect("connect to the test database");
    let closed = admin
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ))
        .await
        .expect("terminate the app's connections");
    assert!(!closed.is_empty(), "the app had connections to close");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for _ in 0..20 {
        let body = app
            .gql(
                &token,
                "query($id: ID!) { action(id: $id) { id } }",
                json!({"id": id}),
            )
            .await;
        assert_no_errors(&body);
        assert_eq!(body["data"]["action"]["id"], id);
    }
}

crate::on_postgres!(postgres_only: postgres_connections_the_server_closed_while_idle_are_replaced);
