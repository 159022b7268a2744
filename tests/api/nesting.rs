//! Documents and variables built to recurse: nests of lists, objects,
//! selections and fragments as deep as the size limits allow, over POST, GET
//! and a WebSocket `subscribe`. Each is refused with a code, and the gateway
//! answers the next request.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, error_code, error_field, reader, writer};
use crate::ws_client::{TRANSPORT, WsClient};

/// The default `--max-query-bytes`.
const QUERY_LIMIT: usize = 16 * 1024;

/// A document that nests by repeating `open` and `close` around `middle`.
struct Shape {
    name: &'static str,
    before: &'static str,
    open: &'static str,
    middle: &'static str,
    close: &'static str,
    after: &'static str,
}

impl Shape {
    /// The document nested `levels` deep.
    fn nest(&self, levels: usize) -> String {
        format!(
            "{}{}{}{}{}",
            self.before,
            self.open.repeat(levels),
            self.middle,
            self.close.repeat(levels),
            self.after
        )
    }

    /// The most levels that fit in `limit` bytes.
    fn deepest(&self, limit: usize) -> usize {
        let fixed = self.before.len() + self.middle.len() + self.after.len();
        (limit - fixed) / (self.open.len() + self.close.len())
    }
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "lists in an argument",
        before: "{ actionCatalog(x: ",
        open: "[",
        middle: "",
        close: "]",
        after: ") { name } }",
    },
    Shape {
        name: "`not` filters",
        before: "{ actions(filter: ",
        open: "{not: ",
        middle: "{}",
        close: "}",
        after: ") { totalCount } }",
    },
    Shape {
        name: "`and` filters",
        before: "{ actionCounts(filter: ",
        open: "{and: [",
        middle: "{}",
        close: "]}",
        after: ") { count } }",
    },
    Shape {
        name: "objects in a directive argument",
        before: "{ __typename @skip(if: ",
        open: "{a: ",
        middle: "1",
        close: "}",
        after: ") }",
    },
    Shape {
        name: "lists in a variable's default",
        before: "query($x: Int = ",
        open: "[",
        middle: "1",
        close: "]",
        after: ") { __typename }",
    },
    Shape {
        name: "selections",
        before: "{ ",
        open: "actions { ",
        middle: "totalCount",
        close: " }",
        after: " }",
    },
    Shape {
        name: "inline fragments",
        before: "{ ",
        open: "... on Query { ",
        middle: "__typename",
        close: " }",
        after: " }",
    },
    Shape {
        name: "unclosed lists",
        before: "{ actionCatalog(x: ",
        open: "[",
        middle: "",
        close: "",
        after: "",
    },
];

/// `{ ...F0 }` and fragments F0 … F`levels`, each spreading the next.
fn fragment_chain(levels: usize) -> String {
    let mut text = String::from("{ ...F0 }");
    for i in 0..levels {
        text.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
    }
    text.push_str(&format!(" fragment F{levels} on Query {{ __typename }}"));
    text
}

/// Every shape nested past the limit: just past it, a few depths between
/// (a parser may give up on the deepest nests and yet recurse through
/// shallower ones, so the largest is not always the worst) and as deep as
/// `limit` bytes allow.
fn too_deep_documents(limit: usize) -> Vec<(String, String)> {
    let mut documents = Vec::new();
    for shape in SHAPES {
        let deepest = shape.deepest(limit);
        for levels in [65, 100, 250, 500, 1000, 2000, 4000, deepest] {
            if levels <= deepest {
                documents.push((format!("{}, {levels} deep", shape.name), shape.nest(levels)));
            }
        }
    }
    for levels in [65, 250, 400] {
        let chain = fragment_chain(levels);
        assert!(chain.len() <= limit);
        documents.push((format!("a chain of {levels} fragment spreads"), chain));
    }
    documents
}

/// The gateway's nesting limit, counted in brackets of the text and in
/// selection sets through fragment spreads.
const MAX_NESTING: usize = 64;

/// How many brackets `text` opens.
fn brackets(text: &str) -> usize {
    text.chars().filter(|c| "{[(".contains(*c)).count()
}

/// Every shape nested as deep as the limit allows.
fn deepest_allowed_documents() -> Vec<(String, String)> {
    let mut documents: Vec<(String, String)> = SHAPES
        .iter()
        .map(|shape| {
            let levels = (MAX_NESTING - brackets(shape.before) - brackets(shape.middle))
                / brackets(shape.open);
            (format!("{}, {levels} deep", shape.name), shape.nest(levels))
        })
        .collect();
    // The operation's selection set, then one level per spread, then the
    // last fragment's selection set.
    documents.push((
        "a chain of 62 fragment spreads".into(),
        fragment_chain(MAX_NESTING - 2),
    ));
    documents
}

/// The gateway still answers a plain query.
async fn assert_alive(app: &TestApp) {
    let body = app
        .gql(&reader("tenant-a"), "{ __typename }", json!({}))
        .await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
}

async fn deep_documents_at_the_size_limit_are_refused_over_post_get_and_websocket(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let token = reader("tenant-a");
    let mut socket = WsClient::connect(&app, TRANSPORT, &token).await;
    for (i, (shape, document)) in too_deep_documents(QUERY_LIMIT).into_iter().enumerate() {
        let response = app
            .post_graphql(Some(&token), json!({ "query": document }))
            .await;
        assert_eq!(response.status(), 400, "POST, {shape}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "POST, {shape}: {body}");
        assert_alive(&app).await;

        let response = app
            .client
            .get(app.url("/graphql"))
            .query(&[("query", &document)])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "GET, {shape}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "GET, {shape}: {body}");
        assert_alive(&app).await;

        let id = format!("deep-{i}");
        socket.subscribe(&id, &document, json!({})).await;
        let reply = socket.next_message().await;
        assert_eq!(reply["type"], "error", "WebSocket, {shape}: {reply}");
        assert_eq!(reply["id"], id.as_str());
        assert_eq!(
            reply["payload"][0]["extensions"]["code"], "QUERY_TOO_DEEP",
            "WebSocket, {shape}: {reply}"
        );
        assert_alive(&app).await;
    }
}

async fn documents_nested_as_deep_as_allowed_are_answered(backend: Backend) {
    // With the depth limit out of the way, so that validation and execution
    // walk every level.
    let app = TestApp::builder(backend)
        .configure(|c| c.http.limits.max_depth = MAX_NESTING)
        .spawn()
        .await;
    let token = reader("tenant-a");
    let mut socket = WsClient::connect(&app, TRANSPORT, &token).await;
    for (i, (shape, document)) in deepest_allowed_documents().into_iter().enumerate() {
        let response = app
            .post_graphql(Some(&token), json!({ "query": document }))
            .await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert!(status == 200 || status == 400, "{shape}: {status} {body}");
        assert_ne!(
            body["errors"][0]["extensions"]["code"], "QUERY_TOO_DEEP",
            "{shape}: {body}"
        );
        assert_alive(&app).await;

        let id = format!("allowed-{i}");
        socket.subscribe(&id, &document, json!({})).await;
        // Its results, then `complete`; or one `error`.
        loop {
            let reply = socket.next_message().await;
            assert_eq!(reply["id"], id.as_str(), "{shape}: {reply}");
            if reply["type"] == "complete" || reply["type"] == "error" {
                break;
            }
        }
        assert_alive(&app).await;
    }
    // The deepest chain of spreads runs.
    let body = app
        .gql(&token, &fragment_chain(MAX_NESTING - 2), json!({}))
        .await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
}

async fn brackets_in_strings_and_comments_do_not_count_as_nesting(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let brackets = "[{(".repeat(600);
    let document = format!(
        "# {brackets}\n{{ actions(filter: {{clientContext: \"{brackets}\\\"\", user: \"\"\"{brackets}\\\"\"\" \"\"\"}}) {{ totalCount }} }}"
    );
    let body = app.gql(&token, &document, json!({})).await;
    assert_eq!(body["data"]["actions"]["totalCount"], 0, "{body}");
}

/// `{"not": {"not": … {} …}}`, `levels` deep.
fn not_chain(levels: usize) -> Value {
    (0..levels).fold(json!({}), |inner, _| json!({ "not": inner }))
}

async fn deep_variables_are_refused_before_they_are_parsed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = reader("tenant-a");
    let query = "query($f: ActionFilter) { actions(filter: $f) { totalCount } }";

    // Past the filter's own nesting limit: refused, naming the filter.
    let body = app.gql(&token, query, json!({ "f": not_chain(60) })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert!(error_field(&body).starts_with("filter.not"), "{body}");
    assert_alive(&app).await;

    // As deep as JSON parsing allows: past the nesting any document may have.
    let body = app.gql(&token, query, json!({ "f": not_chain(120) })).await;
    assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "{body}");
    assert_alive(&app).await;

    // Deeper than JSON parsing allows: not a GraphQL request.
    let text = format!(
        "{{\"query\": \"{query}\", \"variables\": {{\"f\": {}{}}}}}",
        "{\"not\": ".repeat(5000),
        "}".repeat(5000)
    );
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_REQUEST", "{body}");
    assert_alive(&app).await;

    // A variable of another type, nested as deep: refused as too deep.
    let lists = (0..120).fold(json!(1), |inner, _| json!([inner]));
    let body = app
        .gql(
            &token,
            "query($x: [Int]) { __typename @skip(if: false) }",
            json!({ "x": lists }),
        )
        .await;
    assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "{body}");
    assert_alive(&app).await;

    // And over the WebSocket.
    let mut socket = WsClient::connect(&app, TRANSPORT, &token).await;
    socket
        .subscribe(
            "deep",
            "subscription($f: ActionFilter) { actionStatusChanged(filter: $f) { cursor } }",
            json!({ "f": not_chain(60) }),
        )
        .await;
    let reply = socket.next_message().await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(
        reply["payload"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{reply}"
    );
    socket
        .subscribe(
            "deeper",
            "subscription($f: ActionFilter) { actionStatusChanged(filter: $f) { cursor } }",
            json!({ "f": not_chain(120) }),
        )
        .await;
    let reply = socket.next_message().await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(
        reply["payload"][0]["extensions"]["code"], "QUERY_TOO_DEEP",
        "{reply}"
    );
    assert_alive(&app).await;
}

async fn filters_just_within_the_nesting_limit_still_work(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    app.block_ip(&token, "203.0.113.7").await;
    // Five levels deep, the filter limit: not not not not {} matches everything.
    let query = "query($f: ActionFilter) { actions(filter: $f) { totalCount } }";
    let body = app.gql(&token, query, json!({ "f": not_chain(4) })).await;
    assert_eq!(body["data"]["actions"]["totalCount"], 1, "{body}");
    let body = app.gql(&token, query, json!({ "f": not_chain(5) })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
}

crate::on_both_backends!(
    deep_documents_at_the_size_limit_are_refused_over_post_get_and_websocket,
    documents_nested_as_deep_as_allowed_are_answered,
    brackets_in_strings_and_comments_do_not_count_as_nesting,
    deep_variables_are_refused_before_they_are_parsed,
    filters_just_within_the_nesting_limit_still_work,
);
