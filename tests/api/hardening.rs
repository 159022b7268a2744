//! Hostile and broken clients: operation limits, body size, introspection,
//! CORS, rate limits, timeouts and what errors reveal.

use std::time::Duration;

use actiongate::{Rate, RateLimits, TokenKeys};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, assert_no_errors, error_code, eventually, total_count, writer,
};

const INVOKE: &str = "mutation { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: \"1.2.3.4\"}]}) { id } }";

/// Sends `query` and returns the HTTP status and body.
async fn send(app: &TestApp, query: &str) -> (u16, Value) {
    let response = app
        .post_graphql(Some(&writer("tenant-a")), json!({ "query": query }))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn assert_refused(app: &TestApp, query: &str, code: &str) {
    let (status, body) = send(app, query).await;
    assert_eq!(status, 400, "{query}: {body}");
    assert_eq!(error_code(&body), code, "{query}");
    assert!(body.get("data").is_none(), "nothing executes: {body}");
}

async fn assert_passes(app: &TestApp, query: &str) {
    let (status, body) = send(app, query).await;
    assert_eq!(status, 200, "{query}: {body}");
    assert_no_errors(&body);
}

async fn each_operation_limit_passes_just_under_and_refuses_just_over(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| {
            let limits = &mut c.http.limits;
            limits.max_depth = 3;
            limits.max_complexity = 100;
            limits.max_aliases = 3;
            limits.max_root_fields = 2;
            limits.max_directives_per_field = 1;
            limits.max_query_bytes = 300;
        })
        .spawn()
        .await;
    // depth
    assert_passes(&app, "{ actions { nodes { id } } }").await;
    assert_refused(
        &app,
        "{ actions { nodes { states { status } } } }",
        "QUERY_TOO_DEEP",
    )
    .await;
    // complexity: 1 + 24 × (1 nodes + 3 fields) = 97, and 1 + 25 × 4 = 101
    assert_passes(&app, "{ actions(first: 24) { nodes { id name status } } }").await;
    assert_refused(
        &app,
        "{ actions(first: 25) { nodes { id name status } } }",
        "QUERY_TOO_COMPLEX",
    )
    .await;
    // aliases
    assert_passes(&app, "{ a: actionCounts { b: status c: count } }").await;
    assert_refused(
        &app,
        "{ a: actionCounts { b: status c: count d: count } }",
        "TOO_MANY_ALIASES",
    )
    .await;
    // root fields
    assert_passes(&app, "{ actionCounts { count } actionCatalog { name } }").await;
    assert_refused(
        &app,
        "{ actionCounts { count } actionCatalog { name } x: actionCounts { count } }",
        "TOO_MANY_ROOT_FIELDS",
    )
    .await;
    // directives per field
    assert_passes(&app, "{ actionCounts { count @skip(if: false) } }").await;
    assert_refused(
        &app,
        "{ actionCounts { count @skip(if: false) @include(if: true) } }",
        "TOO_MANY_DIRECTIVES",
    )
    .await;
    // query text size
    let padded = |n: usize| format!("{{ actionCounts {{ count }} }}{}", " ".repeat(n - 26));
    assert_eq!(padded(300).len(), 300);
    assert_passes(&app, &padded(300)).await;
    assert_refused(&app, &padded(301), "QUERY_TOO_LARGE").await;
    // and a mutation refused by a limit changes nothing
    let deep_mutation = "mutation { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: \"1.2.3.4\"}]}) { states { status } parameters { name } id } }";
    let (status, _) = send(&app, deep_mutation).await;
    assert_eq!(status, 200, "depth 3 is fine");
    let too_deep = "mutation { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: \"1.2.3.5\"}]}) { vendorInformation { provider } a: id b: id c: id d: id } }";
    assert_refused(&app, too_deep, "TOO_MANY_ALIASES").await;
    assert_eq!(total_count(&app, &writer("tenant-a")).await, 1);
}

async fn the_default_limits_refuse_alias_floods_field_floods_and_batches(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let aliases: Vec<String> = (0..101)
        .map(|i| format!("a{i}: actionCounts {{ count }}"))
        .collect();
    assert_refused(
        &app,
        &format!("{{ {} }}", aliases.join(" ")),
        "TOO_MANY_ROOT_FIELDS",
    )
    .await;
    let nested_aliases: Vec<String> = (0..101).map(|i| format!("a{i}: count")).collect();
    assert_refused(
        &app,
        &format!("{{ actionCounts {{ {} }} }}", nested_aliases.join(" ")),
        "TOO_MANY_ALIASES",
    )
    .await;
    assert_refused(
        &app,
        &format!("{{ {} }}", "__typename ".repeat(500)),
        "TOO_MANY_ROOT_FIELDS",
    )
    .await;

    let batch: Vec<Value> = (0..20).map(|_| json!({"query": INVOKE})).collect();
    let response = app
        .post_graphql(Some(&writer("tenant-a")), Value::Array(batch))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "BATCH_NOT_SUPPORTED");
    assert_eq!(total_count(&app, &writer("tenant-a")).await, 0);
}

async fn a_body_over_the_limit_is_refused_with_413(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let huge = json!({"query": "{ actionCounts { count } }", "variables": {"pad": "x".repeat(2 * 1024 * 1024)}});
    let response = app.post_graphql(Some(&writer("tenant-a")), huge).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "PAYLOAD_TOO_LARGE");
}

async fn introspection_follows_the_key_and_its_setting(backend: Backend) {
    let introspect = "{ __schema { queryType { name } } }";
    let typo = "{ actionz { totalCount } }";
    let with_secret = TestApp::spawn(backend.clone()).await;
    assert_refused(&with_secret, introspect, "INTROSPECTION_DISABLED").await;
    assert_passes(&with_secret, "{ __typename }").await;
    let (_, body) = send(&with_secret, typo).await;
    assert!(
        !body.to_string().contains("Did you mean"),
        "no suggestions either: {body}"
    );

    let turned_on = TestApp::builder(backend.clone())
        .configure(|c| c.introspection = Some(true))
        .spawn()
        .await;
    assert_passes(&turned_on, introspect).await;
    let (_, body) = send(&turned_on, typo).await;
    assert!(body.to_string().contains("Did you mean"), "{body}");

    let development = TestApp::builder(backend)
        .configure(|c| c.token_keys = TokenKeys::Development)
        .spawn()
        .await;
    let token = development.dev_token.clone().unwrap();
    let body: Value = development
        .post_graphql(Some(&token), json!({"query": introspect}))
        .await
        .json()
        .await
        .unwrap();
    assert_no_errors(&body);
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
}

/// graphql-js's `getIntrospectionQuery()`, as GraphiQL sends it.
const INTROSPECTION_QUERY: &str = "query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL isOneOf
  fields(includeDeprecated: true) {
    name description args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}";

async fn introspection_that_follows_the_schemas_cycles_is_refused_before_it_runs(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| c.introspection = Some(true))
        .spawn()
        .await;
    let (status, body) = send(&app, INTROSPECTION_QUERY).await;
    assert_eq!(status, 200, "{body}");
    assert_no_errors(&body);
    assert!(body["data"]["__schema"]["types"].as_array().unwrap().len() > 10);

    // Eighteen chained fragments, each following a type's fields to their
    // types: every link fans out over the schema again.
    let mut fanning = String::from("{ __type(name: \"Query\") { ...F0 } }");
    for i in 0..18 {
        fanning.push_str(&format!(
            " fragment F{i} on __Type {{ name fields {{ name type {{ ofType {{ ...F{} }} }} }} }}",
            i + 1
        ));
    }
    fanning.push_str(" fragment F18 on __Type { name }");
    assert_refused(&app, &fanning, "QUERY_TOO_DEEP").await;

    // Eighteen chained fragments, each spreading the next twice.
    let mut doubling = String::from("{ __type(name: \"Query\") { ...F0 } }");
    for i in 0..18 {
        let next = i + 1;
        doubling.push_str(&format!(
            " fragment F{i} on __Type {{ name ofType {{ ...F{next} }} ...F{next} }}"
        ));
    }
    doubling.push_str(" fragment F18 on __Type { name }");
    assert_refused(&app, &doubling, "QUERY_TOO_COMPLEX").await;
}

async fn cors_answers_only_allowed_origins_and_never_with_credentials(backend: Backend) {
    let closed = TestApp::spawn(backend.clone()).await;
    let open = TestApp::builder(backend)
        .configure(|c| c.http.cors_origins = vec!["https://soc.example".into()])
        .spawn()
        .await;
    let preflight = |app: &TestApp, origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight(&open, "https://soc.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://soc.example"
    );
    assert!(
        allowed
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let other = preflight(&open, "https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let none = preflight(&closed, "https://soc.example").await.unwrap();
    assert!(
        none.headers().get("access-control-allow-origin").is_none(),
        "no origins by default"
    );
}

async fn rate_limits_are_reached_and_recovered(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| {
            c.http.rate_limits = RateLimits {
                requests: Rate {
                    per_second: 5.0,
                    burst: 5.0,
                },
                mutations: Rate {
                    per_second: 1.0,
                    burst: 2.0,
                },
            };
        })
        .spawn()
        .await;
    // Mutations: two, then limited, while queries still pass.
    for i in 0..2 {
        let (status, body) = send(&app, &INVOKE.replace("1.2.3.4", &format!("1.2.3.{i}"))).await;
        assert_eq!(status, 200, "{body}");
    }
    let response = app
        .post_graphql(Some(&writer("tenant-a")), json!({"query": INVOKE}))
        .await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "RATE_LIMITED");
    // Requests: the burst runs out.
    let mut limited = false;
    for _ in 0..10 {
        let (status, body) = send(&app, "{ actionCounts { count } }").await;
        if status == 429 {
            assert_eq!(error_code(&body), "RATE_LIMITED");
            limited = true;
            break;
        }
    }
    assert!(limited, "the request limit was reached");
    // Another tenant has its own buckets.
    let other = app
        .post_graphql(
            Some(&writer("tenant-b")),
            json!({"query": "{ actionCounts { count } }"}),
        )
        .await;
    assert_eq!(other.status(), 200);
    // And after the wait, the tenant may again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (status, body) = send(&app, &INVOKE.replace("1.2.3.4", "1.2.3.9")).await;
    assert_eq!(status, 200, "recovered: {body}");
    assert_eq!(total_count(&app, &writer("tenant-a")).await, 3);
}

/// Holds the write lock of the database (SQLite) or of the actions table
/// (PostgreSQL) from another connection until dropped.
pub(crate) async fn hold_lock(app: &TestApp) -> sea_orm::DatabaseTransaction {
    use sea_orm::TransactionTrait;
    let db = Database::connect(app.database.url.as_str()).await.unwrap();
    let txn = db.begin().await.unwrap();
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            txn.execute_unprepared("LOCK TABLE actions IN ACCESS EXCLUSIVE MODE")
                .await
                .unwrap();
        }
        _ => {
            // A write takes SQLite's one write lock until commit.
            txn.execute_unprepared("UPDATE actions SET attempts = attempts")
                .await
                .unwrap();
            txn.execute_unprepared("CREATE TABLE IF NOT EXISTS lock_holder (x INTEGER)")
                .await
                .unwrap();
        }
    }
    txn
}

async fn slow_database_work_ends_with_timeout_and_leaves_the_pool_usable(backend: Backend) {
    let app = TestApp::builder(backend.clone())
        .configure(|c| {
            c.store.statement_timeout = Duration::from_millis(300);
            c.store.max_connections = 4;
        })
        .spawn()
        .await;
    let token = writer("tenant-a");
    let lock = hold_lock(&app).await;
    for i in 0..6 {
        let (status, body) = send(&app, &INVOKE.replace("1.2.3.4", &format!("1.2.4.{i}"))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(error_code(&body), "TIMEOUT", "{body}");
        assert!(
            !body.to_string().contains("actions"),
            "no SQL in the message: {body}"
        );
    }
    lock.rollback().await.unwrap();
    for i in 0..10 {
        let (status, body) = send(&app, &INVOKE.replace("1.2.3.4", &format!("1.2.5.{i}"))).await;
        assert_eq!(status, 200, "{body}");
        assert_no_errors(&body);
    }
    assert_eq!(
        total_count(&app, &token).await,
        10,
        "nothing of the timed-out requests was stored"
    );

    // The request deadline, shorter than the database's.
    let app = TestApp::builder(backend)
        .configure(|c| {
            c.store.statement_timeout = Duration::from_secs(20);
            c.http.request_timeout = Duration::from_millis(300);
            c.store.max_connections = 4;
        })
        .spawn()
        .await;
    let lock = hold_lock(&app).await;
    for i in 0..6 {
        let (status, body) = send(&app, &INVOKE.replace("1.2.3.4", &format!("1.2.6.{i}"))).await;
        assert_eq!(status, 504, "{body}");
        assert_eq!(error_code(&body), "TIMEOUT");
    }
    lock.rollback().await.unwrap();
    eventually("the pool to recover", || async {
        let (status, body) = send(&app, "{ actionCounts { count } }").await;
        if status == 200 && body.get("errors").is_none() {
            Ok(())
        } else {
            Err(body)
        }
    })
    .await;
    for _ in 0..10 {
        assert_passes(&app, "{ actionCounts { count } }").await;
    }
}

async fn readiness_answers_503_at_once_while_the_database_does_not_answer(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| {
            c.store.max_connections = 2;
            c.store.statement_timeout = Duration::from_secs(60);
            c.http.request_timeout = Duration::from_secs(60);
        })
        .spawn()
        .await;
    let readyz = || async {
        // Well within what a load balancer's probe waits, and far less than
        // the pool's 10 s acquire timeout.
        app.client
            .get(app.url("/readyz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map(|response| response.status().as_u16())
    };
    assert_eq!(readyz().await.unwrap(), 200);

    // Every connection of the pool waits on a lock held elsewhere.
    let lock = hold_lock(&app).await;
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let client = app.client.clone();
            let url = app.url("/graphql");
            let body = json!({"query": INVOKE.replace("1.2.3.4", &format!("1.2.7.{i}"))});
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(writer("tenant-a"))
                    .json(&body)
                    .send()
                    .await
            })
        })
        .collect();
    eventually("readiness to say the database does not answer", || async {
        readyz().await.map(|status| status == 503).unwrap_or(false)
    })
    .await;
    assert_eq!(
        readyz().await.expect("an answer, not a hang"),
        503,
        "while every connection waits"
    );

    lock.rollback().await.unwrap();
    for request in waiting {
        assert_eq!(request.await.unwrap().unwrap().status(), 200);
    }
    eventually("readiness to recover", || async {
        readyz().await.map(|status| status == 200).unwrap_or(false)
    })
    .await;
}

async fn internal_errors_carry_a_request_id_and_nothing_of_the_internals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    app.block_ip(&token, "1.2.3.4").await;
    let db = Database::connect(app.database.url.as_str()).await.unwrap();
    db.execute_unprepared("ALTER TABLE action_parameters RENAME TO action_parameters_gone")
        .await
        .unwrap();

    let response = app
        .post_graphql(
            Some(&token),
            json!({"query": "{ actions { nodes { id parameters { name } } } }"}),
        )
        .await;
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();

    assert_eq!(error_code(&body), "INTERNAL_SERVER_ERROR");
    let error = &body["errors"][0];
    assert_eq!(error["message"], "internal server error");
    assert_eq!(error["extensions"]["requestId"], request_id.as_str());
    let text = body.to_string().to_lowercase();
    for leak in [
        "action_parameters",
        "select",
        "sqlite",
        "postgres",
        "relation",
        "/src/",
        ".rs",
    ] {
        assert!(!text.contains(leak), "'{leak}' reached the client: {body}");
    }
    db.execute_unprepared("ALTER TABLE action_parameters_gone RENAME TO action_parameters")
        .await
        .unwrap();
}

/// Documents parsed once are kept by their text; every check that depends on
/// the request still runs each time the text comes again.
async fn a_document_sent_again_is_checked_again_with_its_variables_and_method(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| c.http.limits.max_complexity = 100)
        .spawn()
        .await;
    let token = writer("tenant-a");
    let page = "query Page($n: Int) { actions(first: $n) { nodes { id name status } } }";
    let page_of = |n: i64| {
        app.post_graphql(
            Some(&token),
            json!({ "query": page, "variables": { "n": n } }),
        )
    };
    // complexity: 1 + 24 × 4 = 97, and 1 + 25 × 4 = 101
    for (n, status, refused) in [(24, 200, false), (25, 400, true), (24, 200, false)] {
        let response = page_of(n).await;
        assert_eq!(response.status().as_u16(), status, "first: {n}");
        let body: Value = response.json().await.unwrap();
        match refused {
            true => assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}"),
            false => assert_no_errors(&body),
        }
    }
    // A mutation kept from a POST is still refused over GET, and does not run.
    let (status, body) = send(&app, INVOKE).await;
    assert_eq!(status, 200, "{body}");
    let over_get = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", INVOKE)])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(over_get.status().as_u16(), 405);
    let body: Value = over_get.json().await.unwrap();
    assert_eq!(error_code(&body), "METHOD_NOT_ALLOWED");
    assert_eq!(total_count(&app, &token).await, 1);
    // A text that does not parse is reported as before, each time.
    for _ in 0..2 {
        let (status, body) = send(&app, "{ actions(first: ").await;
        // Over `application/json` a request error is HTTP 200, with no data.
        assert_eq!(status, 200, "{body}");
        assert!(body.get("data").is_none(), "{body}");
        assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    }
}

crate::on_both_backends!(
    each_operation_limit_passes_just_under_and_refuses_just_over,
    the_default_limits_refuse_alias_floods_field_floods_and_batches,
    a_body_over_the_limit_is_refused_with_413,
    introspection_follows_the_key_and_its_setting,
    introspection_that_follows_the_schemas_cycles_is_refused_before_it_runs,
    cors_answers_only_allowed_origins_and_never_with_credentials,
    rate_limits_are_reached_and_recovered,
    slow_database_work_ends_with_timeout_and_leaves_the_pool_usable,
    internal_errors_carry_a_request_id_and_nothing_of_the_internals,
    readiness_answers_503_at_once_while_the_database_does_not_answer,
    a_document_sent_again_is_checked_again_with_its_variables_and_method,
);
