//! GraphQL over HTTP: methods, media types, status codes, health endpoints and
//! the committed schema.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_no_errors, error_code, total_count, writer};

const INVOKE: &str = "mutation { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: \"1.2.3.4\"}]}) { id } }";

async fn queries_work_over_get_but_mutations_do_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let get = |query: &str| {
        app.client
            .get(app.url("/graphql"))
            .query(&[("query", query)])
            .bearer_auth(&token)
            .send()
    };

    let query = get("{ actionCounts { status count } }").await.unwrap();
    assert_eq!(query.status(), 200);
    let body: Value = query.json().await.unwrap();
    assert_no_errors(&body);

    let mutation = get(INVOKE).await.unwrap();
    assert_eq!(mutation.status(), 405);
    assert_eq!(mutation.headers()["allow"], "POST");
    let body: Value = mutation.json().await.unwrap();
    assert_eq!(error_code(&body), "METHOD_NOT_ALLOWED");
    assert_eq!(
        total_count(&app, &token).await,
        0,
        "the mutation did not run"
    );
}

async fn posts_that_are_not_json_are_refused_with_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    for (content_type, body) in [
        (
            "application/x-www-form-urlencoded",
            format!("query={INVOKE}"),
        ),
        ("text/plain", json!({"query": INVOKE}).to_string()),
        ("multipart/form-data; boundary=x", "--x--".to_owned()),
    ] {
        let response = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{content_type}");
    }
    assert_eq!(total_count(&app, &token).await, 0);
}

async fn the_graphql_response_media_type_gets_spec_status_codes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let send = |accept: &'static str, query: &'static str| {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .header("accept", accept)
            .json(&json!({"query": query}))
            .send()
    };

    let ok = send(
        "application/graphql-response+json",
        "{ actionCounts { count } }",
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["content-type"],
        "application/graphql-response+json"
    );

    let syntax = send(
        "application/graphql-response+json",
        "{ actionCounts { count }",
    )
    .await
    .unwrap();
    assert_eq!(syntax.status(), 400);
    let body: Value = syntax.json().await.unwrap();
    assert!(error_code(&body).starts_with("GRAPHQL_"), "{body}");

    let unknown_field = send("application/json", "{ nope }").await.unwrap();
    assert_eq!(unknown_field.status(), 200);
    assert_eq!(unknown_field.headers()["content-type"], "application/json");
    let body: Value = unknown_field.json().await.unwrap();
    assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED");
}

async fn batches_and_non_graphql_bodies_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let batch = app
        .post_graphql(Some(&token), json!([{"query": INVOKE}, {"query": INVOKE}]))
        .await;
    assert_eq!(batch.status(), 400);
    let body: Value = batch.json().await.unwrap();
    assert_eq!(error_code(&body), "BATCH_NOT_SUPPORTED");
    let not_graphql = app
        .post_graphql(Some(&token), json!({"hello": "world"}))
        .await;
    assert_eq!(not_graphql.status(), 400);
    assert_eq!(total_count(&app, &token).await, 0);
}

async fn health_and_readiness_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = app.get_text("/metrics").await;
    assert!(metrics.contains("actiongate_db_queries_total"));
}

#[test]
fn the_committed_schema_is_the_running_schema() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the repository root");
    let running = actiongate::sdl();
    assert!(
        committed == running,
        "schema.graphql differs from the running schema; regenerate it with\n    cargo run -- schema > schema.graphql"
    );
}

crate::on_both_backends!(
    queries_work_over_get_but_mutations_do_not,
    posts_that_are_not_json_are_refused_with_415,
    the_graphql_response_media_type_gets_spec_status_codes,
    batches_and_non_graphql_bodies_are_refused,
    health_and_readiness_answer,
);
