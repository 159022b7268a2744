//! `invokeActions`: a batch of actions in one call, each with its own outcome.

use std::time::Duration;

use actiongate::Rate;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, assert_no_errors, error_code, error_field, eventually, reader, total_count,
    writer,
};

const INVOKE_MANY: &str = "mutation($inputs: [InvokeActionInput!]!) {
    invokeActions(inputs: $inputs) {
        action { id name status clientContext parameters { name value } states { status } }
        error { code message field }
    }
}";

fn block_ip(ip: &str) -> Value {
    json!({"name": "blockIp", "parameters": [{"name": "ip", "value": ip}]})
}

/// A distinct documentation-range address for each `i` below 65,536.
fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
}

async fn invoke_many(app: &TestApp, token: &str, inputs: Vec<Value>) -> Value {
    app.gql(token, INVOKE_MANY, json!({ "inputs": inputs }))
        .await
}

fn results(body: &Value) -> &Vec<Value> {
    assert_no_errors(body);
    body["data"]["invokeActions"]
        .as_array()
        .expect("a list of results")
}

/// How many of the tenant's actions have `status`.
async fn count_with_status(app: &TestApp, token: &str, status: &str) -> i64 {
    let body = app
        .gql(
            token,
            "query($s: [OperationStatus!]) { actions(filter: {status: $s}) { totalCount } }",
            json!({"s": [status]}),
        )
        .await;
    assert_no_errors(&body);
    body["data"]["actions"]["totalCount"].as_i64().unwrap()
}

async fn three_bad_inputs_among_500_fail_alone_and_the_others_are_stored_and_executed(
    backend: Backend,
) {
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let token = writer("tenant-a");
    let mut inputs: Vec<Value> = (0..500).map(|i| block_ip(&ip(i))).collect();
    inputs[7] = block_ip("not-an-ip");
    inputs[250] =
        json!({"name": "launchMissiles", "parameters": [{"name": "ip", "value": "10.9.9.9"}]});
    inputs[499] = json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "10.9.9.8"}, {"name": "colour", "value": "red"}]});

    let body = invoke_many(&app, &token, inputs).await;

    let results = results(&body);
    assert_eq!(results.len(), 500);
    for (i, result) in results.iter().enumerate() {
        if [7, 250, 499].contains(&i) {
            assert!(result["action"].is_null(), "item {i}: {result}");
            assert_eq!(result["error"]["code"], "BAD_USER_INPUT", "item {i}");
        } else {
            assert!(result["error"].is_null(), "item {i}: {result}");
            let action = &result["action"];
            // In input order: each result is the action of its own input.
            assert_eq!(action["parameters"][0]["value"], ip(i).as_str());
            assert_eq!(action["status"], "NOT_STARTED");
            // The executor may already have moved it on when its states are read.
            assert_eq!(action["states"][0], json!({"status": "NOT_STARTED"}));
        }
    }
    assert_eq!(
        results[7]["error"]["field"],
        "inputs[7].parameters[0].value"
    );
    assert_eq!(results[250]["error"]["field"], "inputs[250].name");
    assert_eq!(
        results[499]["error"]["field"],
        "inputs[499].parameters[1].name"
    );
    assert_eq!(total_count(&app, &token).await, 497);

    eventually("497 actions completed", || async {
        count_with_status(&app, &token, "COMPLETED").await == 497
    })
    .await;
    let file = app.data_path().join("blocklists/tenant-a/blocked-ip.txt");
    let blocked = std::fs::read_to_string(file).expect("the blocklist");
    assert_eq!(blocked.lines().count(), 497);
    assert!(blocked.lines().any(|line| line == ip(498)));
    assert!(!blocked.lines().any(|line| line == ip(7)));
}

async fn more_than_500_inputs_are_bad_user_input_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let inputs = (0..501).map(|i| block_ip(&ip(i))).collect();

    let body = invoke_many(&app, &token, inputs).await;

    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(error_field(&body), "inputs");
    assert_eq!(total_count(&app, &token).await, 0);
}

async fn client_contexts_replay_earlier_actions_and_repeats_in_the_batch(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let with_context = |ip: &str, context: &str| {
        let mut input = block_ip(ip);
        input["clientContext"] = json!(context);
        input
    };
    let earlier = invoke_many(&app, &token, vec![with_context("10.0.0.1", "feed-1")]).await;
    let earlier_id = results(&earlier)[0]["action"]["id"].clone();

    let body = invoke_many(
        &app,
        &token,
        vec![
            with_context("10.0.0.1", "feed-1"), // replays the earlier action
            with_context("10.0.0.2", "feed-1"), // other input: conflict
            with_context("10.0.0.3", "feed-2"), // new
            with_context("10.0.0.3", "feed-2"), // repeats the item before: the same action
            with_context("10.0.0.4", "feed-2"), // repeats it with other input: conflict
            block_ip("10.0.0.5"),               // new, no key
        ],
    )
    .await;

    let results = results(&body);
    assert_eq!(results[0]["action"]["id"], earlier_id);
    assert_eq!(results[1]["error"]["code"], "CONFLICT");
    assert!(results[1]["error"]["field"].is_null());
    let new_id = &results[2]["action"]["id"];
    assert!(new_id.is_string());
    assert_ne!(new_id, &earlier_id);
    assert_eq!(&results[3]["action"]["id"], new_id);
    assert_eq!(results[4]["error"]["code"], "CONFLICT");
    assert!(results[5]["action"]["id"].is_string());
    assert_eq!(total_count(&app, &token).await, 3);
}

async fn concurrent_bulk_calls_with_the_same_keys_store_each_action_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let inputs: Vec<Value> = (0..50)
        .map(|i| {
            let mut input = block_ip(&ip(i));
            input["clientContext"] = json!(format!("key-{i}"));
            input
        })
        .collect();

    let calls = (0..6).map(|_| invoke_many(&app, &token, inputs.clone()));
    let bodies = futures_util::future::join_all(calls).await;

    let first: Vec<Value> = results(&bodies[0])
        .iter()
        .map(|r| r["action"]["id"].clone())
        .collect();
    assert!(first.iter().all(Value::is_string), "{first:?}");
    for body in &bodies[1..] {
        let ids: Vec<Value> = results(body)
            .iter()
            .map(|r| r["action"]["id"].clone())
            .collect();
        assert_eq!(ids, first);
    }
    assert_eq!(total_count(&app, &token).await, 50);
}

async fn each_item_counts_against_the_mutation_rate_limit(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| {
            c.http.rate_limits.mutations = Rate {
                per_second: 1.0,
                burst: 10.0,
            };
        })
        .spawn()
        .await;
    let token = writer("tenant-a");
    let inputs = (0..100).map(|i| block_ip(&ip(i))).collect();

    let body = invoke_many(&app, &token, inputs).await;
    assert_eq!(results(&body).len(), 100);

    // 100 items against a burst of 10 at 1/s: the next change waits ~90 s.
    let next = invoke_many(&app, &token, vec![block_ip("10.1.1.1")]).await;
    assert_eq!(error_code(&next), "RATE_LIMITED");
    let message = next["errors"][0]["message"].as_str().unwrap();
    let wait: f64 = message
        .rsplit("try again in ")
        .next()
        .and_then(|rest| rest.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("a wait in {message}"));
    assert!(wait > Duration::from_secs(60).as_secs_f64(), "{message}");
    assert_eq!(total_count(&app, &token).await, 100);
}

async fn a_read_only_token_cannot_invoke_in_bulk(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = invoke_many(&app, &reader("tenant-a"), vec![block_ip("10.0.0.1")]).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    assert_eq!(total_count(&app, &writer("tenant-a")).await, 0);
}

crate::on_both_backends!(
    three_bad_inputs_among_500_fail_alone_and_the_others_are_stored_and_executed,
    more_than_500_inputs_are_bad_user_input_and_store_nothing,
    client_contexts_replay_earlier_actions_and_repeats_in_the_batch,
    concurrent_bulk_calls_with_the_same_keys_store_each_action_once,
    each_item_counts_against_the_mutation_rate_limit,
    a_read_only_token_cannot_invoke_in_bulk,
);
