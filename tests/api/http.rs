//! GraphQL over HTTP: methods, media types, status codes, the response's
//! shape (field order, no `data` on request errors), CORS, health endpoints
//! and the committed schema.

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

async fn a_401_comes_in_the_media_type_the_client_accepts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (accept, media_type) in [
        (
            "application/graphql-response+json",
            "application/graphql-response+json",
        ),
        ("application/json", "application/json"),
    ] {
        let refused = app
            .client
            .post(app.url("/graphql"))
            .header("accept", accept)
            .json(&json!({"query": "{ actionCounts { count } }"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(refused.headers()["content-type"], media_type);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
}

async fn a_document_that_fails_to_parse_or_validate_has_no_data_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    for (query, variables) in [
        ("{ actionCounts { count }", json!({})),
        ("{ nope }", json!({})),
        (
            "query($n: Int!) { actions(first: $n) { totalCount } }",
            json!({"n": "x"}),
        ),
    ] {
        let body = app.gql(&token, query, variables).await;
        assert!(body.get("errors").is_some(), "{body}");
        assert!(body.get("data").is_none(), "{query}: {body}");
    }
    // An error while executing keeps `data`.
    let body = app
        .gql(
            &token,
            "{ action(id: \"not-a-uuid\") { id } actionCounts { count } }",
            json!({}),
        )
        .await;
    assert!(body.get("data").is_some(), "{body}");
}

/// JSON with the order of every object's keys kept (`serde_json::Value`
/// sorts them).
#[derive(Debug)]
enum Ordered {
    Object(Vec<(String, Ordered)>),
    List(Vec<Ordered>),
    Scalar,
}

impl Ordered {
    fn keys(&self) -> Vec<&str> {
        match self {
            Ordered::Object(fields) => fields.iter().map(|(k, _)| k.as_str()).collect(),
            other => panic!("not an object: {other:?}"),
        }
    }

    fn get(&self, key: &str) -> &Ordered {
        match self {
            Ordered::Object(fields) => &fields.iter().find(|(k, _)| k == key).expect(key).1,
            other => panic!("not an object: {other:?}"),
        }
    }

    fn first(&self) -> &Ordered {
        match self {
            Ordered::List(items) => items.first().expect("an item"),
            other => panic!("not a list: {other:?}"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut fields = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Ordered>()? {
                    fields.push((key, value));
                }
                Ok(Ordered::Object(fields))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Ordered>()? {
                    items.push(item);
                }
                Ok(Ordered::List(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

async fn response_fields_come_in_selection_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    app.block_ip(&token, "198.51.100.9").await;
    let query = "query Dashboard { actions(first: 1) { totalCount nodes { status states { status } id ...Named } }
               actionCounts { status count } actionCatalog { name } z: actionCounts { count } }
             fragment Named on SecurityAction { name parameters { value name } }";
    let text = app
        .post_graphql(Some(&token), json!({ "query": query }))
        .await
        .text()
        .await
        .unwrap();
    let body: Ordered = serde_json::from_str(&text).unwrap();
    assert_eq!(body.keys(), ["data"], "{text}");
    let data = body.get("data");
    assert_eq!(
        data.keys(),
        ["actions", "actionCounts", "actionCatalog", "z"]
    );
    assert_eq!(data.get("actions").keys(), ["totalCount", "nodes"]);
    let node = data.get("actions").get("nodes").first();
    assert_eq!(
        node.keys(),
        ["status", "states", "id", "name", "parameters"]
    );
    assert_eq!(node.get("parameters").first().keys(), ["value", "name"]);
    assert_eq!(data.get("actionCounts").first().keys(), ["status", "count"]);
}

async fn cors_allows_trace_context_headers(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| c.http.cors_origins = vec!["https://soc.example".into()])
        .spawn()
        .await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", "https://soc.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,traceparent",
        )
        .send()
        .await
        .unwrap();
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for header in ["authorization", "content-type", "traceparent", "tracestate"] {
        assert!(allowed.contains(header), "{header} not in {allowed}");
    }
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
    a_401_comes_in_the_media_type_the_client_accepts,
    a_document_that_fails_to_parse_or_validate_has_no_data_key,
    response_fields_come_in_selection_order,
    cors_allows_trace_context_headers,
);
