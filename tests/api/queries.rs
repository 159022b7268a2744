//! Queries: `action`, `actions` (filters, ordering, keyset pages),
//! `actionCounts` and `actionCatalog`.

use actiongate::{APPLICATION_NAME, PLANNED_ONCE_APPLICATION_NAME};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, assert_no_errors, error_code, error_field, eventually, published, statuses,
    token_with, writer,
};

const PAGE: &str = "query($first: Int, $after: String, $last: Int, $before: String, $filter: ActionFilter, $orderBy: ActionOrder) {
    actions(first: $first, after: $after, last: $last, before: $before, filter: $filter, orderBy: $orderBy) {
        totalCount
        edges { cursor node { id } }
        nodes { id }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
}";

async fn page(app: &TestApp, token: &str, variables: Value) -> Value {
    let body = app.gql(token, PAGE, variables).await;
    assert_no_errors(&body);
    body["data"]["actions"].clone()
}

fn ids(page: &Value) -> Vec<String> {
    page["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn filtered_ids(app: &TestApp, token: &str, filter: Value) -> Vec<String> {
    let page = page(app, token, json!({"first": 100, "filter": filter})).await;
    let mut found = ids(&page);
    found.sort();
    found
}

async fn action_of_an_unknown_id_is_null_and_a_malformed_id_is_bad_user_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let unknown = app
        .gql(
            &token,
            "{ action(id: \"00000000-0000-7000-8000-000000000000\") { id } }",
            json!({}),
        )
        .await;
    assert_no_errors(&unknown);
    assert!(unknown["data"]["action"].is_null());
    let malformed = app
        .gql(&token, "{ action(id: \"1 OR 1=1\") { id } }", json!({}))
        .await;
    assert_eq!(error_code(&malformed), "BAD_USER_INPUT");
    assert_eq!(error_field(&malformed), "id");
}

async fn pages_walk_forward_and_backward_without_gaps_while_actions_are_added(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(
            app.block_ip(&token, &format!("10.0.0.{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    // Forward, newest first, 10 a page, adding actions between pages.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let p = page(&app, &token, json!({"first": 10, "after": after})).await;
        seen.extend(ids(&p));
        pages += 1;
        assert_eq!(p["pageInfo"]["hasPreviousPage"], json!(pages > 1));
        app.block_ip(&token, &format!("10.0.1.{pages}")).await;
        if p["pageInfo"]["hasNextPage"] == json!(false) {
            break;
        }
        after = p["pageInfo"]["endCursor"].as_str().map(String::from);
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen, newest_first,
        "every action once, in order, none of the added ones"
    );

    // Backward from the end of the same newest-first list, with `last`/`before`.
    let tail = page(&app, &token, json!({"last": 10})).await;
    assert_eq!(
        ids(&tail),
        newest_first[15..].to_vec(),
        "the last 10 are the oldest, newest first"
    );
    assert_eq!(tail["pageInfo"]["hasNextPage"], json!(false));
    assert_eq!(tail["pageInfo"]["hasPreviousPage"], json!(true));
    let middle = page(
        &app,
        &token,
        json!({"last": 10, "before": tail["pageInfo"]["startCursor"]}),
    )
    .await;
    assert_eq!(ids(&middle), newest_first[5..15].to_vec());
    assert_eq!(middle["pageInfo"]["hasNextPage"], json!(true));
    app.block_ip(&token, "10.0.2.1").await;
    let head = page(
        &app,
        &token,
        json!({"last": 10, "before": middle["pageInfo"]["startCursor"]}),
    )
    .await;
    let head_ids = ids(&head);
    assert_eq!(head_ids.len(), 9, "the 5 left and the 4 added since");
    assert_eq!(head_ids[4..].to_vec(), newest_first[..5].to_vec());
    assert_eq!(head["pageInfo"]["hasPreviousPage"], json!(false));

    // The edges carry the same actions as the nodes.
    let edge_ids: Vec<&str> = head["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        edge_ids,
        head_ids.iter().map(String::as_str).collect::<Vec<_>>()
    );

    // totalCount counts every page.
    assert_eq!(head["totalCount"], json!(25 + 3 + 1));
}

async fn page_arguments_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    app.block_ip(&token, "10.0.0.1").await;
    let cases = [
        (json!({"first": 101}), "first"),
        (json!({"last": 101}), "last"),
        (json!({"first": -1}), "first"),
        (json!({"first": 1, "last": 1}), "last"),
        (json!({"after": "bm90LWEtY3Vyc29y"}), "after"),
        (json!({"before": "!!"}), "before"),
        (json!({"after": "x", "before": "y"}), "before"),
    ];
    for (variables, field) in cases {
        let body = app.gql(&token, PAGE, variables.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{variables}");
        assert_eq!(error_field(&body), field, "{variables}");
    }
    let at_cap = app.gql(&token, PAGE, json!({"first": 100})).await;
    assert_no_errors(&at_cap);
    // A cursor of one ordering does not serve another.
    let by_created = page(&app, &token, json!({"first": 1})).await;
    let cursor = by_created["pageInfo"]["endCursor"].clone();
    let mixed = app
        .gql(&token, PAGE, json!({"first": 1, "after": cursor, "orderBy": {"field": "LAST_ACTION_DATE_TIME", "direction": "DESC"}}))
        .await;
    assert_eq!(error_code(&mixed), "BAD_USER_INPUT");
}

async fn every_filter_selects_what_it_names(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = token_with("tenant-a", "app-1", "alice", &[actiongate::READ_WRITE_ROLE]);
    let bob = token_with("tenant-a", "app-2", "bob", &[actiongate::READ_WRITE_ROLE]);
    let invoke = |token: String, input: Value| {
        let app = &app;
        async move {
            let body = app
                .gql(&token, "mutation($i: InvokeActionInput!) { invokeAction(input: $i) { id createdDateTime } }", json!({"i": input}))
                .await;
            assert_no_errors(&body);
            body["data"]["invokeAction"].clone()
        }
    };
    let ip = invoke(alice.clone(), json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "203.0.113.7"}], "clientContext": "ctx-1"})).await;
    let domain = invoke(
        alice.clone(),
        json!({"name": "blockDomain", "parameters": [{"name": "domain", "value": "evil.example"}]}),
    )
    .await;
    let url = invoke(bob.clone(), json!({"name": "allowUrl", "parameters": [{"name": "url", "value": "https://good.example/"}]})).await;
    let hash = invoke(
        bob.clone(),
        json!({"name": "blockFile", "parameters": [{"name": "fileHash", "value": "A".repeat(64)}]}),
    )
    .await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let (ip_id, domain_id, url_id, hash_id) = (id(&ip), id(&domain), id(&url), id(&hash));
    app.cancel(&alice, &domain_id).await;

    let cases: Vec<(Value, Vec<String>)> = vec![
        (
            json!({}),
            vec![
                ip_id.clone(),
                domain_id.clone(),
                url_id.clone(),
                hash_id.clone(),
            ],
        ),
        (
            json!({"ids": [ip_id, url_id]}),
            vec![ip_id.clone(), url_id.clone()],
        ),
        (json!({"ids": []}), vec![]),
        (json!({"status": ["CANCELED"]}), vec![domain_id.clone()]),
        (
            json!({"status": ["NOT_STARTED", "CANCELED"]}),
            vec![
                ip_id.clone(),
                domain_id.clone(),
                url_id.clone(),
                hash_id.clone(),
            ],
        ),
        (
            json!({"name": ["BlockIp", "blockFile"]}),
            vec![ip_id.clone(), hash_id.clone()],
        ),
        (
            json!({"provider": ["blocklist"]}),
            vec![
                ip_id.clone(),
                domain_id.clone(),
                url_id.clone(),
                hash_id.clone(),
            ],
        ),
        (json!({"provider": ["other"]}), vec![]),
        (
            json!({"appId": "app-2"}),
            vec![url_id.clone(), hash_id.clone()],
        ),
        (
            json!({"user": "alice"}),
            vec![ip_id.clone(), domain_id.clone()],
        ),
        (json!({"clientContext": "ctx-1"}), vec![ip_id.clone()]),
        (
            json!({"parameter": {"name": "IP", "value": "203.0.113.7"}}),
            vec![ip_id.clone()],
        ),
        (
            json!({"parameter": {"name": "fileHash", "value": "a".repeat(64)}}),
            vec![hash_id.clone()],
        ),
        (
            json!({"parameter": {"name": "ip", "value": "203.0.113.8"}}),
            vec![],
        ),
        (
            json!({"createdAfter": url["createdDateTime"]}),
            vec![url_id.clone(), hash_id.clone()],
        ),
        (
            json!({"createdBefore": url["createdDateTime"]}),
            vec![ip_id.clone(), domain_id.clone()],
        ),
        (
            json!({"lastActionAfter": hash["createdDateTime"]}),
            vec![domain_id.clone(), hash_id.clone()],
        ),
        (
            json!({"lastActionBefore": hash["createdDateTime"]}),
            vec![ip_id.clone(), url_id.clone()],
        ),
        (
            json!({"userStartsWith": "al"}),
            vec![ip_id.clone(), domain_id.clone()],
        ),
        (json!({"userStartsWith": "Al"}), vec![]),
        (
            json!({"clientContextStartsWith": "ctx-"}),
            vec![ip_id.clone()],
        ),
        (
            json!({"not": {"clientContextStartsWith": "ctx-"}}),
            vec![domain_id.clone(), url_id.clone(), hash_id.clone()],
        ),
        (
            json!({"appIdStartsWith": "app-2"}),
            vec![url_id.clone(), hash_id.clone()],
        ),
        (
            json!({"providerStartsWith": "block"}),
            vec![
                ip_id.clone(),
                domain_id.clone(),
                url_id.clone(),
                hash_id.clone(),
            ],
        ),
        (json!({"providerStartsWith": "x"}), vec![]),
        (
            json!({"and": [{"appId": "app-1"}, {"status": ["NOT_STARTED"]}]}),
            vec![ip_id.clone()],
        ),
        (
            json!({"or": [{"user": "bob"}, {"clientContext": "ctx-1"}]}),
            vec![ip_id.clone(), url_id.clone(), hash_id.clone()],
        ),
        (json!({"or": []}), vec![]),
        (
            json!({"not": {"user": "bob"}}),
            vec![ip_id.clone(), domain_id.clone()],
        ),
        (
            json!({"not": {"clientContext": "ctx-1"}}),
            vec![domain_id.clone(), url_id.clone(), hash_id.clone()],
        ),
        (
            json!({"user": "alice", "not": {"or": [{"status": ["CANCELED"]}, {"name": ["blockFile"]}]}}),
            vec![ip_id.clone()],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            filtered_ids(&app, &alice, filter.clone()).await,
            sorted(expected),
            "filter {filter}"
        );
    }
}

async fn malformed_filters_are_bad_user_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let mut deep = json!({"user": "x"});
    for _ in 0..6 {
        deep = json!({"not": deep});
    }
    let cases = [
        (json!({"ids": ["nope"]}), "filter.ids[0]"),
        (json!({"name": ["blockFoo"]}), "filter.name[0]"),
        (
            json!({"parameter": {"name": "colour", "value": "red"}}),
            "filter.parameter.name",
        ),
        (json!({"user": "a\u{0}b"}), "filter.user"),
        (json!({"or": [{"ids": ["x"]}]}), "filter.or[0].ids[0]"),
        (deep, "filter.not.not.not.not.not"),
    ];
    for (filter, field) in cases {
        let body = app.gql(&token, PAGE, json!({"filter": filter})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{filter}");
        assert_eq!(error_field(&body), field, "{filter}");
    }
}

async fn ordering_by_last_action_follows_status_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let first = app.block_ip(&token, "10.0.0.1").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = app.block_ip(&token, "10.0.0.2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.cancel(&token, &first).await;
    let by_last = page(
        &app,
        &token,
        json!({"orderBy": {"field": "LAST_ACTION_DATE_TIME", "direction": "DESC"}}),
    )
    .await;
    assert_eq!(ids(&by_last), vec![first.clone(), second.clone()]);
    let by_created = page(
        &app,
        &token,
        json!({"orderBy": {"field": "CREATED_DATE_TIME", "direction": "DESC"}}),
    )
    .await;
    assert_eq!(ids(&by_created), vec![second, first]);
}

async fn action_counts_list_every_status_with_the_filter_applied(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    for i in 0..3 {
        app.block_ip(&token, &format!("10.0.0.{i}")).await;
    }
    let canceled = app.block_ip(&token, "10.0.0.9").await;
    app.cancel(&token, canceled["id"].as_str().unwrap()).await;

    let body = app
        .gql(&token, "{ actionCounts { status count } }", json!({}))
        .await;
    assert_no_errors(&body);
    assert_eq!(
        body["data"]["actionCounts"],
        json!([
            {"status": "NOT_STARTED", "count": 3},
            {"status": "RUNNING", "count": 0},
            {"status": "COMPLETED", "count": 0},
            {"status": "FAILED", "count": 0},
            {"status": "CANCELED", "count": 1},
        ])
    );
    let filtered = app
        .gql(&token, "{ actionCounts(filter: {parameter: {name: \"ip\", value: \"10.0.0.9\"}}) { status count } }", json!({}))
        .await;
    let total: i64 = filtered["data"]["actionCounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 1);
}

async fn the_catalog_lists_actions_parameters_and_providers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = app
        .gql(
            &crate::helpers::reader("tenant-a"),
            "{ actionCatalog { name verdict providers parameters { name required } } }",
            json!({}),
        )
        .await;
    assert_no_errors(&body);
    let catalog = body["data"]["actionCatalog"].as_array().unwrap();
    let names: Vec<&str> = catalog
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "blockIp",
            "blockUrl",
            "blockDomain",
            "blockFile",
            "allowIp",
            "allowUrl",
            "allowDomain",
            "allowFile"
        ]
    );
    assert_eq!(catalog[0]["providers"], json!(["blocklist"]));
    assert_eq!(
        catalog[3]["parameters"],
        json!([{"name": "fileHash", "required": true}, {"name": "expirationDateTime", "required": false}])
    );
    assert_eq!(catalog[4]["verdict"], "ALLOW");
}

async fn listing_actions_with_states_and_parameters_costs_the_same_queries_for_10_or_100(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    for i in 0..100 {
        app.block_ip(&token, &format!("10.0.{}.{}", i / 250, i % 250))
            .await;
    }
    let query = "query($n: Int) { actions(first: $n) { nodes { id parameters { name value } states { status } } } }";
    // The counter is the process's: the event relay's background reads add to
    // it (a burst of them after the 100 invokes, then one or two a second),
    // so the relay is let go quiet first and each size is measured ten times
    // and the fewest kept.
    published(&app).await;
    let mut costs = Vec::new();
    for n in [10, 100] {
        let mut fewest = u64::MAX;
        for _ in 0..10 {
            let before = app.store.queries_executed();
            let body = app.gql(&token, query, json!({"n": n})).await;
            assert_no_errors(&body);
            assert_eq!(
                body["data"]["actions"]["nodes"].as_array().unwrap().len(),
                n
            );
            fewest = fewest.min(app.store.queries_executed() - before);
        }
        costs.push(fewest);
    }
    assert_eq!(
        costs,
        [1, 1],
        "a page with states and parameters is one statement, for 10 or 100 actions"
    );
}

/// The fewest statements `query` took over ten runs, once the relay has
/// published what was written (the counter is the process's, and the event
/// relay's background reads add to it now and then, as after the cancel
/// below), and the last answer.
async fn fewest_statements(
    app: &TestApp,
    token: &str,
    query: &str,
    variables: Value,
) -> (u64, Value) {
    let mut fewest = u64::MAX;
    let mut body = Value::Null;
    published(app).await;
    for _ in 0..10 {
        let before = app.store.queries_executed();
        body = app.gql(token, query, variables.clone()).await;
        assert_no_errors(&body);
        fewest = fewest.min(app.store.queries_executed() - before);
    }
    (fewest, body)
}

async fn pages_and_lookups_read_parameters_and_states_with_the_actions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let first = app.invoke(&token, "blockIp", "ip", "192.0.2.1").await;
    app.cancel(&token, &first).await;
    app.invoke(&token, "blockUrl", "url", "https://example.com/a")
        .await;
    // Another tenant's action with the same parts must not show.
    app.invoke(&writer("tenant-b"), "blockIp", "ip", "192.0.2.1")
        .await;

    let expected = json!({"parameters": [{"name": "ip", "value": "192.0.2.1"}]});
    let lookup = "query($id: ID!) { action(id: $id) { id parameters { name value } states { status previousStatus user } } }";
    let (statements, body) = fewest_statements(&app, &token, lookup, json!({"id": first})).await;
    assert_eq!(
        statements, 1,
        "a lookup with parameters and states is one statement"
    );
    let action = &body["data"]["action"];
    assert_eq!(action["parameters"], expected["parameters"]);
    assert_eq!(statuses(action), ["NOT_STARTED", "CANCELED"]);
    assert_eq!(action["states"][1]["previousStatus"], "NOT_STARTED");

    // Through edges and through a fragment, oldest first: the same parts.
    let page = "query { actions(orderBy: {field: CREATED_DATE_TIME, direction: ASC}) { edges { node { ...Parts } } } }
                fragment Parts on SecurityAction { id parameters { name value } states { status } }";
    let (statements, body) = fewest_statements(&app, &token, page, json!({})).await;
    assert_eq!(
        statements, 1,
        "a page with parameters and states is one statement"
    );
    let edges = body["data"]["actions"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[0]["node"]["id"], json!(first));
    assert_eq!(edges[0]["node"]["parameters"], expected["parameters"]);
    assert_eq!(statuses(&edges[0]["node"]), ["NOT_STARTED", "CANCELED"]);
    assert_eq!(
        edges[1]["node"]["parameters"],
        json!([{"name": "url", "value": "https://example.com/a"}])
    );

    // Only what is selected is read: still one statement without parts.
    let (statements, _) = fewest_statements(
        &app,
        &token,
        "{ actions { nodes { id status } } }",
        json!({}),
    )
    .await;
    assert_eq!(statements, 1);
}

/// A page with its total, parameters and states, as a dashboard asks for it.
const COUNTED_PAGE: &str = "query($filter: ActionFilter, $first: Int, $after: String) {
    actions(filter: $filter, first: $first, after: $after) {
        totalCount
        nodes { id parameters { name value } states { status } }
        pageInfo { hasNextPage endCursor }
    }
}";

/// How many actions of the tenant of `token` pass `filter`, from a listing
/// of them (at most 100) without `totalCount`.
async fn listed(app: &TestApp, token: &str, filter: &Value) -> i64 {
    let body = app
        .gql(
            token,
            "query($f: ActionFilter) { actions(filter: $f, first: 100) { nodes { id } } }",
            json!({"f": filter}),
        )
        .await;
    assert_no_errors(&body);
    body["data"]["actions"]["nodes"].as_array().unwrap().len() as i64
}

async fn a_page_with_total_count_is_one_statement_when_the_counters_answer_its_filter(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            app.invoke(&token, "blockIp", "ip", &format!("10.0.0.{i}"))
                .await,
        );
    }
    for i in 0..3 {
        ids.push(
            app.invoke(
                &token,
                "blockDomain",
                "domain",
                &format!("d{i}.example.com"),
            )
            .await,
        );
    }
    // Another tenant's action is not counted.
    app.invoke(&writer("tenant-b"), "blockIp", "ip", "10.0.0.1")
        .await;
    let created = |id: &str| {
        let (app, token, id) = (&app, &token, id.to_owned());
        async move {
            let body = app
                .gql(
                    token,
                    "query($id: ID!) { action(id: $id) { createdDateTime } }",
                    json!({"id": id}),
                )
                .await;
            assert_no_errors(&body);
            body["data"]["action"]["createdDateTime"].clone()
        }
    };
    let (second, fifth, eighth) = (
        created(&ids[1]).await,
        created(&ids[4]).await,
        created(&ids[7]).await,
    );
    let filters = [
        json!({}),
        json!({"status": ["CANCELED"]}),
        json!({"status": ["NOT_STARTED", "FAILED"]}),
        json!({"status": ["FAILED"]}),
        json!({"name": ["blockDomain"]}),
        json!({"name": ["blockIp"], "status": ["CANCELED"]}),
        json!({"provider": ["blocklist"]}),
        json!({"provider": ["other"]}),
        json!({"createdAfter": fifth}),
        json!({"createdAfter": second, "createdBefore": eighth, "status": ["NOT_STARTED"]}),
        json!({"createdAfter": eighth, "createdBefore": second}),
    ];
    // Transitions between the rounds move actions from count to count.
    let mut totals = Vec::new();
    for round in 0..2 {
        for filter in &filters {
            let expected = listed(&app, &token, filter).await;
            // `first: 0` is a page without rows: the count comes all the same.
            for first in [0, 4] {
                let (statements, body) = fewest_statements(
                    &app,
                    &token,
                    COUNTED_PAGE,
                    json!({"filter": filter, "first": first}),
                )
                .await;
                let page = &body["data"]["actions"];
                assert_eq!(
                    statements, 1,
                    "a page with totalCount, parameters and states is one statement: {filter}"
                );
                assert_eq!(
                    page["totalCount"],
                    json!(expected),
                    "{filter}, first {first}"
                );
                assert_eq!(
                    page["nodes"].as_array().unwrap().len() as i64,
                    expected.min(first),
                    "{filter}, first {first}"
                );
                assert_eq!(page["pageInfo"]["hasNextPage"], json!(expected > first));
            }
            totals.push(expected);
        }
        if round == 0 {
            for id in [&ids[0], &ids[2], &ids[7]] {
                app.cancel(&token, id).await;
            }
        }
    }
    assert_eq!(
        totals,
        [
            9, 0, 9, 0, 3, 0, 9, 0, 5, 6, 0, // before the cancels
            9, 3, 6, 0, 3, 2, 9, 0, 5, 5, 0, // after
        ],
        "the filters count what they name"
    );

    // Past the last row the page is empty and the count is still read with it.
    let last = page(&app, &token, json!({"first": 9})).await;
    assert_eq!(last["pageInfo"]["hasNextPage"], json!(false));
    let (statements, body) = fewest_statements(
        &app,
        &token,
        COUNTED_PAGE,
        json!({"first": 5, "after": last["pageInfo"]["endCursor"]}),
    )
    .await;
    assert_eq!(statements, 1);
    assert_eq!(body["data"]["actions"]["nodes"], json!([]));
    assert_eq!(body["data"]["actions"]["totalCount"], json!(9));
    assert_eq!(
        page(&app, &writer("tenant-b"), json!({"first": 0})).await["totalCount"],
        json!(1),
        "each tenant counts its own"
    );
}

async fn a_filter_the_counters_cannot_answer_is_counted_from_the_rows_beside_the_page(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let alice = token_with("tenant-a", "app-1", "alice", &[actiongate::READ_WRITE_ROLE]);
    let bob = token_with("tenant-a", "app-1", "bob", &[actiongate::READ_WRITE_ROLE]);
    for i in 0..3 {
        app.invoke(&alice, "blockIp", "ip", &format!("10.0.0.{i}"))
            .await;
    }
    let canceled = app.invoke(&bob, "blockIp", "ip", "10.0.0.1").await;
    app.cancel(&bob, &canceled).await;
    app.invoke(&writer("tenant-b"), "blockIp", "ip", "10.0.0.1")
        .await;
    let cases = [
        (json!({"user": "alice"}), 3),
        (json!({"user": "bob", "status": ["CANCELED"]}), 1),
        (json!({"parameter": {"name": "ip", "value": "10.0.0.1"}}), 2),
        (json!({"lastActionAfter": "2000-01-01T00:00:00Z"}), 4),
        (
            json!({"or": [{"user": "bob"}, {"status": ["NOT_STARTED"]}]}),
            4,
        ),
        (json!({"not": {"user": "bob"}}), 3),
    ];
    for (filter, expected) in cases {
        let (statements, body) = fewest_statements(
            &app,
            &alice,
            COUNTED_PAGE,
            json!({"filter": filter, "first": 1}),
        )
        .await;
        assert_eq!(
            body["data"]["actions"]["totalCount"],
            json!(expected),
            "{filter}"
        );
        assert_eq!(listed(&app, &alice, &filter).await, expected, "{filter}");
        assert_eq!(
            statements, 2,
            "the page, then a real count of its own: {filter}"
        );
    }
}

/// The last statement of each session of the gateway's pool named `name`
/// (`application_name`) on the test's PostgreSQL database; `pg_stat_activity`
/// keeps the first 1 KiB of each.
async fn last_statements(admin: &sea_orm::DatabaseConnection, name: &str) -> Vec<String> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let rows = admin
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT query FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1 ORDER BY pid",
            [name.into()],
        ))
        .await
        .expect("read pg_stat_activity");
    rows.iter()
        .map(|row| row.try_get::<String>("", "query").unwrap())
        .collect()
}

/// The last statements of the sessions that plan for the values, once
/// nothing has run where plans are kept since those were `kept`.
async fn planned_for_values_only(
    admin: &sea_orm::DatabaseConnection,
    kept: &[String],
) -> Vec<String> {
    assert_eq!(
        last_statements(admin, PLANNED_ONCE_APPLICATION_NAME).await,
        kept,
        "nothing else ran where plans are kept"
    );
    last_statements(admin, APPLICATION_NAME).await
}

/// An app whose tenant `tenant-a` holds one action, a writer's token of that
/// tenant, and a connection of the test's own to the app's database.
async fn one_action_and_an_observer(
    backend: Backend,
) -> (TestApp, String, sea_orm::DatabaseConnection) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    app.invoke(&token, "blockIp", "ip", "10.0.0.1").await;
    let admin = sea_orm::Database::connect(app.database.url.as_str())
        .await
        .expect("connect to the test database");
    (app, token, admin)
}

/// On PostgreSQL, a page whose best plan cannot depend on its values (one
/// status, say) runs on the connections that keep one plan per statement;
/// a page of two statuses is planned for its values, on the others.
async fn only_pages_whose_plan_cannot_depend_on_their_values_keep_one_plan(backend: Backend) {
    let (app, token, admin) = one_action_and_an_observer(backend).await;
    // The statuses a page statement filters on: how many placeholders in
    // its first status condition (that of the total, which leads the text).
    let statuses_filtered = |statement: &str| {
        let (_, after) = statement.split_once("\"status\" IN (")?;
        let (list, _) = after.split_once(')')?;
        Some(list.split(", ").count())
    };

    let one = page(
        &app,
        &token,
        json!({"first": 5, "filter": {"status": ["NOT_STARTED"]}}),
    )
    .await;
    assert_eq!(one["totalCount"], json!(1));
    let kept = last_statements(&admin, PLANNED_ONCE_APPLICATION_NAME).await;
    assert!(
        kept.iter().any(|q| statuses_filtered(q) == Some(1)),
        "the page of one status ran where plans are kept: {kept:#?}"
    );

    // Asked again until seen, as a background read may take its connection.
    eventually(
        "the page of two statuses to be planned for its values",
        || async {
            let two = page(
                &app,
                &token,
                json!({"first": 5, "filter": {"status": ["NOT_STARTED", "FAILED"]}}),
            )
            .await;
            assert_eq!(two["totalCount"], json!(1));
            let planned = planned_for_values_only(&admin, &kept).await;
            match planned.iter().any(|q| statuses_filtered(q) == Some(2)) {
                true => Ok(()),
                false => Err(format!("{planned:#?}")),
            }
        },
    )
    .await;
}

/// On PostgreSQL, counts the counters answer (a time window: its whole
/// hours from counters, its edge from an index range) run where plans are
/// kept; a count of the rows, for a filter the counters cannot answer, is
/// planned for its values.
async fn only_counts_from_counters_keep_one_plan(backend: Backend) {
    let (app, token, admin) = one_action_and_an_observer(backend).await;
    let total = |body: &Value| -> i64 {
        let counts = body["data"]["actionCounts"].as_array().expect("counts");
        counts.iter().map(|c| c["count"].as_i64().unwrap()).sum()
    };
    let day_ago = (chrono::Utc::now() - chrono::Duration::hours(24)).to_rfc3339();
    let counts = "query($filter: ActionFilter) { actionCounts(filter: $filter) { status count } }";

    let window = app
        .gql(&token, counts, json!({"filter": {"createdAfter": day_ago}}))
        .await;
    assert_eq!(total(&window), 1, "{window}");
    let kept = last_statements(&admin, PLANNED_ONCE_APPLICATION_NAME).await;
    assert!(
        kept.iter()
            .any(|q| q.contains("\"action_counters\"") && q.contains("\"created_at\" >=")),
        "the window's count ran where plans are kept: {kept:#?}"
    );

    // A background read (the event relay's) may take the count's connection
    // before its statement is seen: the count is asked again until it is.
    eventually(
        "the count of the rows to be planned for its values",
        || async {
            let by_context = app
                .gql(
                    &token,
                    counts,
                    json!({"filter": {"clientContext": "case-1"}}),
                )
                .await;
            assert_eq!(total(&by_context), 0, "{by_context}");
            let planned = planned_for_values_only(&admin, &kept).await;
            match planned.iter().any(|q| q.contains("\"client_context\"")) {
                true => Ok(()),
                false => Err(format!("{planned:#?}")),
            }
        },
    )
    .await;
}

crate::on_postgres!(postgres_counts_plans: only_counts_from_counters_keep_one_plan);
crate::on_postgres!(postgres_plans: only_pages_whose_plan_cannot_depend_on_their_values_keep_one_plan);

crate::on_both_backends!(
    action_of_an_unknown_id_is_null_and_a_malformed_id_is_bad_user_input,
    pages_walk_forward_and_backward_without_gaps_while_actions_are_added,
    page_arguments_are_checked,
    every_filter_selects_what_it_names,
    malformed_filters_are_bad_user_input,
    ordering_by_last_action_follows_status_changes,
    action_counts_list_every_status_with_the_filter_applied,
    the_catalog_lists_actions_parameters_and_providers,
    listing_actions_with_states_and_parameters_costs_the_same_queries_for_10_or_100,
    pages_and_lookups_read_parameters_and_states_with_the_actions,
    a_page_with_total_count_is_one_statement_when_the_counters_answer_its_filter,
    a_filter_the_counters_cannot_answer_is_counted_from_the_rows_beside_the_page,
);
