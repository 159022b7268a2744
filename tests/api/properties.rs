//! Property tests: arbitrary JSON bodies, GraphQL documents, filters and
//! invoke inputs thrown at a running gateway. Whatever comes in, it answers
//! (never a server error, never a dropped connection from a panic), never
//! reports an internal error for bad input, and stores nothing unless it says
//! it stored an action.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

use crate::helpers::{Backend, TestApp, total_count, writer};

/// Runs `check` for every case of `strategy` against one app on `backend`.
/// Its own runtime drives the app, so it runs off the test's runtime (see
/// [`off_runtime`]).
fn against<S: Strategy>(
    backend: Backend,
    cases: u32,
    strategy: S,
    check: impl Fn(&tokio::runtime::Runtime, &TestApp, S::Value) -> Result<(), TestCaseError>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(TestApp::spawn(backend));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |value| check(&runtime, &app, value))
        .unwrap_or_else(|err| panic!("{err}"));
    let health = runtime.block_on(async { app.client.get(app.url("/healthz")).send().await });
    assert_eq!(health.unwrap().status(), 200, "the gateway still runs");
    runtime.block_on(async move { app.stop().await });
}

/// Runs a property test on a blocking thread, where it may start its own
/// runtime, and passes its panic on.
async fn off_runtime(test: impl FnOnce() + Send + 'static) {
    if let Err(failed) = tokio::task::spawn_blocking(test).await {
        std::panic::resume_unwind(failed.into_panic());
    }
}

/// POSTs `body` (already encoded) and returns the status and the JSON body.
async fn post_raw(
    app: &TestApp,
    body: Vec<u8>,
    content_type: &str,
) -> Result<(u16, Value), TestCaseError> {
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(writer("tenant-p"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer (a panic?): {e}")))?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn assert_sound(status: u16, body: &Value) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "status {} for {}", status, body);
    prop_assert!(
        !body.to_string().contains("INTERNAL_SERVER_ERROR"),
        "bad input reported as an internal error: {}",
        body
    );
    Ok(())
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        Just(json!("{ actionCounts { count } }")),
        Just(json!("mutation { cancelAction(id: \"x\") { id } }")),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("query".to_owned()),
                        Just("variables".to_owned()),
                        Just("operationName".to_owned()),
                        Just("extensions".to_owned()),
                        "[a-z]{1,8}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

async fn arbitrary_json_bodies_are_answered_without_server_errors(backend: Backend) {
    off_runtime(move || {
        let bodies = prop_oneof![
            any_json().prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..200),
        ];
        against(backend, 150, bodies, |runtime, app, body| {
            runtime.block_on(async {
                let before = total_count(app, &writer("tenant-p")).await;
                let (status, answer) = post_raw(app, body, "application/json").await?;
                assert_sound(status, &answer)?;
                prop_assert_eq!(total_count(app, &writer("tenant-p")).await, before);
                Ok(())
            })
        });
    })
    .await
}

fn graphql_document() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{"),
        Just("}"),
        Just("("),
        Just(")"),
        Just(":"),
        Just("$v"),
        Just("@skip(if: true)"),
        Just("..."),
        Just("query"),
        Just("mutation"),
        Just("subscription"),
        Just("fragment F on Query"),
        Just("on"),
        Just("actions"),
        Just("action(id: \"x\")"),
        Just("actionCounts"),
        Just("actionCatalog"),
        Just("cancelAction(id: \"00000000-0000-7000-8000-000000000000\")"),
        Just("invokeAction"),
        Just("input: {name: \"blockIp\"}"),
        Just("filter: {not: {or: []}}"),
        Just("first: 101"),
        Just("last: -1"),
        Just("after: \"zz\""),
        Just("nodes"),
        Just("id"),
        Just("status"),
        Just("states"),
        Just("__schema"),
        Just("__typename"),
        Just(","),
        Just("["),
        Just("]"),
        Just("!"),
        Just("= 3"),
        Just("\"\\u0000\""),
        Just("a:"),
        Just("totalCount"),
        Just("pageInfo { endCursor }"),
    ];
    prop_oneof![
        prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.join(" ")),
        ".{0,200}",
    ]
}

async fn arbitrary_graphql_documents_are_answered_without_server_errors(backend: Backend) {
    off_runtime(move || {
        against(
            backend,
            200,
            graphql_document(),
            |runtime, app, document| {
                runtime.block_on(async {
                    let before = total_count(app, &writer("tenant-p")).await;
                    let body = json!({"query": document, "variables": {"v": 1}})
                        .to_string()
                        .into_bytes();
                    let (status, answer) = post_raw(app, body, "application/json").await?;
                    assert_sound(status, &answer)?;
                    let stored = answer["data"]["invokeAction"]["id"].is_string();
                    prop_assert_eq!(
                        total_count(app, &writer("tenant-p")).await,
                        before + i64::from(stored)
                    );
                    Ok(())
                })
            },
        );
    })
    .await
}

fn text() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        ".{0,20}".prop_map(Value::String),
        Just(json!("a\u{0}b")),
        Just(json!("x".repeat(3000))),
        Just(json!("203.0.113.7")),
        Just(json!("BlockIp")),
        any::<i32>().prop_map(|n| json!(n)),
    ]
}

fn invoke_input() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just(json!("blockIp")),
        Just(json!("BLOCKURL")),
        Just(json!("allowFile")),
        Just(json!("blockDomain")),
        text(),
    ];
    let parameter_name = prop_oneof![
        Just(json!("ip")),
        Just(json!("IP")),
        Just(json!("url")),
        Just(json!("domain")),
        Just(json!("fileHash")),
        Just(json!("expirationDateTime")),
        text(),
    ];
    let parameter_value = prop_oneof![
        Just(json!("203.0.113.7")),
        Just(json!("2001:db8::1")),
        Just(json!("https://evil.example/x")),
        Just(json!("evil.example")),
        Just(json!("d41d8cd98f00b204e9800998ecf8427e")),
        Just(json!("2999-01-01T00:00:00Z")),
        Just(json!("2001-01-01T00:00:00Z")),
        text(),
    ];
    let parameters = prop::collection::vec(
        (parameter_name, parameter_value).prop_map(|(n, v)| json!({"name": n, "value": v})),
        0..4,
    );
    let vendor = prop_oneof![
        Just(Value::Null),
        Just(json!({"provider": "blocklist"})),
        text().prop_map(|p| json!({"provider": p}))
    ];
    (name, parameters, text(), text(), vendor).prop_map(|(name, parameters, reason, context, vendor)| {
        json!({"name": name, "parameters": parameters, "actionReason": reason, "clientContext": context, "vendorInformation": vendor})
    })
}

async fn arbitrary_invoke_inputs_store_an_action_only_when_they_say_so(backend: Backend) {
    off_runtime(move || {
        const INVOKE: &str =
            "mutation($input: InvokeActionInput!) { invokeAction(input: $input) { id } }";
        against(backend, 200, invoke_input(), |runtime, app, input| {
            runtime.block_on(async {
                let before = total_count(app, &writer("tenant-p")).await;
                let body = json!({"query": INVOKE, "variables": {"input": input}})
                    .to_string()
                    .into_bytes();
                let (status, answer) = post_raw(app, body, "application/json").await?;
                assert_sound(status, &answer)?;
                let stored = answer["data"]["invokeAction"]["id"].is_string();
                prop_assert_eq!(answer.get("errors").is_none(), stored, "{}", answer);
                prop_assert_eq!(
                    total_count(app, &writer("tenant-p")).await,
                    before + i64::from(stored)
                );
                Ok(())
            })
        });
    })
    .await
}

fn action_filter() -> impl Strategy<Value = Value> {
    let status = prop_oneof![
        Just(json!("COMPLETED")),
        Just(json!("NOT_STARTED")),
        Just(json!("nope")),
        text()
    ];
    let leaf = (
        prop::option::of(prop::collection::vec(
            prop_oneof![Just(json!("00000000-0000-7000-8000-000000000000")), text()],
            0..3,
        )),
        prop::option::of(prop::collection::vec(status, 0..3)),
        prop::option::of(prop::collection::vec(text(), 0..3)),
        text(),
        text(),
        prop::option::of((text(), text()).prop_map(|(n, v)| json!({"name": n, "value": v}))),
        prop_oneof![
            Just(Value::Null),
            Just(json!("2026-01-01T00:00:00Z")),
            text()
        ],
    )
        .prop_map(
            |(ids, status, name, user, app_id, parameter, created_after)| {
                json!({"ids": ids, "status": status, "name": name, "user": user, "appId": app_id,
                   "parameter": parameter, "createdAfter": created_after})
            },
        );
    leaf.prop_recursive(7, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({"and": v})),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({"or": v})),
            inner.prop_map(|v| json!({"not": v})),
        ]
    })
}

async fn arbitrary_filters_are_answered_without_server_errors(backend: Backend) {
    off_runtime(move || {
    const LIST: &str = "query($filter: ActionFilter) { actions(filter: $filter, first: 5) { totalCount nodes { id } } actionCounts(filter: $filter) { count } }";
    against(backend, 200, action_filter(), |runtime, app, filter| {
        runtime.block_on(async {
            let body = json!({"query": LIST, "variables": {"filter": filter}})
                .to_string()
                .into_bytes();
            let (status, answer) = post_raw(app, body, "application/json").await?;
            assert_sound(status, &answer)
        })
    });
    })
    .await
}

/// `$filter` texts of the Graph face: well-formed ones over real and unknown
/// properties, operators and literals, nested, and plain garbage.
fn odata_filter() -> impl Strategy<Value = String> {
    let property = prop_oneof![
        Just("status".to_owned()),
        Just("name".to_owned()),
        Just("clientContext".to_owned()),
        Just("appId".to_owned()),
        Just("user".to_owned()),
        Just("vendorInformation/provider".to_owned()),
        Just("createdDateTime".to_owned()),
        Just("lastActionDateTime".to_owned()),
        Just("id".to_owned()),
        "[a-zA-Z/]{1,12}",
    ];
    let op = prop_oneof![
        Just("eq"),
        Just("ne"),
        Just("gt"),
        Just("ge"),
        Just("lt"),
        Just("le"),
        Just("has")
    ];
    let literal = prop_oneof![
        "'[^']{0,12}'",
        "[0-9T:.Z+-]{1,25}",
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("'notstarted'".to_owned()),
        Just("2026-01-01T00:00:00Z".to_owned()),
        Just("'blockIp'".to_owned()),
        Just("00000000-0000-7000-8000-000000000000".to_owned()),
    ];
    let leaf = prop_oneof![
        (property.clone(), op, literal.clone()).prop_map(|(p, o, l)| format!("{p} {o} {l}")),
        (property.clone(), literal.clone()).prop_map(|(p, l)| format!("startswith({p}, {l})")),
        (property, prop::collection::vec(literal.clone(), 1..4))
            .prop_map(|(p, ls)| format!("{p} in ({})", ls.join(", "))),
        (literal.clone(), literal)
            .prop_map(|(n, v)| format!("parameters/any(p: p/name eq {n} and p/value eq {v})")),
        ".{0,40}",
    ];
    leaf.prop_recursive(6, 30, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            inner.prop_map(|a| format!("({a}")),
        ]
    })
}

async fn arbitrary_odata_filters_get_a_page_or_a_graph_bad_request(backend: Backend) {
    off_runtime(move || {
        against(backend, 200, odata_filter(), |runtime, app, filter| {
            runtime.block_on(async {
                let encoded: String =
                    url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
                for path in ["", "/$count"] {
                    let response = app
                        .client
                        .get(app.url(&format!(
                            "/beta/security/securityActions{path}?$filter={encoded}"
                        )))
                        .bearer_auth(writer("tenant-p"))
                        .send()
                        .await
                        .map_err(|e| TestCaseError::fail(format!("no answer (a panic?): {e}")))?;
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    prop_assert!(
                        status == 200 || status == 400,
                        "{} for {:?}: {}",
                        status,
                        filter,
                        text
                    );
                    if status == 400 {
                        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        prop_assert_eq!(&body["error"]["code"], "BadRequest", "{}", text);
                        prop_assert_eq!(&body["error"]["innerError"]["code"], "BAD_USER_INPUT");
                    }
                }
                Ok(())
            })
        });
    })
    .await
}

crate::on_both_backends!(
    arbitrary_json_bodies_are_answered_without_server_errors,
    arbitrary_graphql_documents_are_answered_without_server_errors,
    arbitrary_invoke_inputs_store_an_action_only_when_they_say_so,
    arbitrary_filters_are_answered_without_server_errors,
    arbitrary_odata_filters_get_a_page_or_a_graph_bad_request,
);
