//! The executor executes batches: actions of one provider and tenant due
//! together go to the provider in one call (the blocklist writes a batch in one
//! file replacement per list), and each action still ends on its own: its own
//! states, failures, cancels and recovery after a crash.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_no_errors, eventually, statuses, writer};

const INVOKE_MANY: &str = "mutation($inputs: [InvokeActionInput!]!) {
    invokeActions(inputs: $inputs) { action { id } error { code message } }
}";

fn block_ip(ip: &str) -> Value {
    json!({"name": "blockIp", "parameters": [{"name": "ip", "value": ip}]})
}

fn block_domain(domain: &str) -> Value {
    json!({"name": "blockDomain", "parameters": [{"name": "domain", "value": domain}]})
}

/// A distinct address for each `i` below 65,536.
fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
}

/// Invokes `inputs` in bulk calls of 500 and returns the ids, in input order.
async fn invoke_in_bulk(app: &TestApp, token: &str, inputs: Vec<Value>) -> Vec<String> {
    let mut ids = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(500) {
        let body = app
            .gql(token, INVOKE_MANY, json!({ "inputs": chunk }))
            .await;
        assert_no_errors(&body);
        for result in body["data"]["invokeActions"].as_array().unwrap() {
            assert!(result["error"].is_null(), "{result}");
            ids.push(result["action"]["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

/// Every action of the tenant with its status, indicator and states, by id.
async fn all_actions(app: &TestApp, token: &str) -> HashMap<String, Value> {
    let query = "query($after: String) { actions(first: 100, after: $after) {
        nodes { id status errorInfo { code message } parameters { value } states { status previousStatus } }
        pageInfo { hasNextPage endCursor } } }";
    let mut actions = HashMap::new();
    let mut after = Value::Null;
    loop {
        let body = app.gql(token, query, json!({ "after": after })).await;
        assert_no_errors(&body);
        let page = &body["data"]["actions"];
        for node in page["nodes"].as_array().unwrap() {
            actions.insert(node["id"].as_str().unwrap().to_owned(), node.clone());
        }
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return actions;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

/// How many of the tenant's actions are in each status.
async fn counts(app: &TestApp, token: &str) -> HashMap<String, i64> {
    let body = app
        .gql(token, "{ actionCounts { status count } }", json!({}))
        .await;
    assert_no_errors(&body);
    body["data"]["actionCounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_owned(),
                c["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Waits until no action of the tenant is waiting or running.
async fn settled(app: &TestApp, token: &str, total: i64) -> HashMap<String, i64> {
    eventually(format!("all {total} actions to end"), || async {
        let counts = counts(app, token).await;
        let ended: i64 = ["COMPLETED", "FAILED", "CANCELED"]
            .iter()
            .map(|s| counts.get(*s).copied().unwrap_or(0))
            .sum();
        if ended == total {
            Ok(counts)
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// A blocklist provider writing under `directory`, so that two apps share it.
fn blocklist_at(directory: &Path) -> String {
    format!(
        "[[providers]]\nname = \"edge\"\nkind = \"blocklist\"\ndefault = true\ndirectory = \"{}\"\n",
        directory.display()
    )
}

/// Each indicator once in the list, exactly those of `expected`.
fn assert_listed_once(file: &Path, expected: &HashSet<String>) {
    let listed = lines(file);
    let unique: HashSet<String> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "an indicator is listed twice");
    assert_eq!(&unique, expected);
}

async fn a_feed_of_1000_ips_invoked_in_bulk_completes_with_each_listed_once(backend: Backend) {
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let token = writer("tenant-a");
    let inputs = (0..1000).map(|i| block_ip(&ip(i))).collect();

    let ids = invoke_in_bulk(&app, &token, inputs).await;
    let counts = settled(&app, &token, 1000).await;

    assert_eq!(counts["COMPLETED"], 1000, "{counts:?}");
    let expected: HashSet<String> = (0..1000).map(ip).collect();
    assert_listed_once(
        &app.data_path().join("blocklists/tenant-a/blocked-ip.txt"),
        &expected,
    );
    let actions = all_actions(&app, &token).await;
    assert_eq!(actions.len(), 1000);
    for id in &ids {
        let action = &actions[id];
        assert_eq!(
            statuses(action),
            ["NOT_STARTED", "RUNNING", "COMPLETED"],
            "{action:#}"
        );
        assert_eq!(action["states"][2]["previousStatus"], "RUNNING");
    }
}

async fn a_list_that_cannot_be_written_fails_only_the_actions_of_the_batch_bound_for_it(
    backend: Backend,
) {
    let app = TestApp::builder(backend)
        .with_executor()
        .configure(|c| c.executor.max_attempts = 2)
        .spawn()
        .await;
    let token = writer("tenant-a");
    // A directory where the domain list goes: no write of that list can
    // replace it, while the IP list beside it is written as usual.
    let tenant_dir = app.data_path().join("blocklists/tenant-a");
    std::fs::create_dir_all(tenant_dir.join("blocked-domain.txt")).unwrap();
    let inputs: Vec<Value> = (0..100)
        .map(|i| {
            if i % 10 == 3 {
                block_domain(&format!("bad{i}.example"))
            } else {
                block_ip(&ip(i))
            }
        })
        .collect();

    let ids = invoke_in_bulk(&app, &token, inputs).await;
    let counts = settled(&app, &token, 100).await;

    assert_eq!(counts["COMPLETED"], 90, "{counts:?}");
    assert_eq!(counts["FAILED"], 10, "{counts:?}");
    let actions = all_actions(&app, &token).await;
    for (i, id) in ids.iter().enumerate() {
        let action = &actions[id];
        if i % 10 == 3 {
            assert_eq!(action["status"], "FAILED", "{action:#}");
            let message = action["errorInfo"]["message"].as_str().unwrap();
            assert!(
                message.contains("gave up after 2 attempts") && message.contains("blocked-domain"),
                "{message}"
            );
        } else {
            assert_eq!(action["status"], "COMPLETED", "{action:#}");
        }
    }
    let expected: HashSet<String> = (0..100).filter(|i| i % 10 != 3).map(ip).collect();
    assert_listed_once(&tenant_dir.join("blocked-ip.txt"), &expected);
}

async fn cancels_during_a_bulk_execution_lift_exactly_the_canceled_indicators(backend: Backend) {
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let token = writer("tenant-a");
    let inputs = (0..500).map(|i| block_ip(&ip(i))).collect();

    let ids = invoke_in_bulk(&app, &token, inputs).await;
    // Cancel every fifth while the batches run: some have not started, some
    // are running, some are done.
    let canceled: Vec<usize> = (0..500).step_by(5).collect();
    let answers = futures_util::future::join_all(canceled.iter().map(|&i| {
        let (app, token, id) = (&app, &token, &ids[i]);
        async move { app.cancel(token, id).await }
    }))
    .await;
    for answer in &answers {
        assert!(answer["cancelRequestedDateTime"].is_string(), "{answer}");
    }
    // A canceled action that had completed is `COMPLETED` until its revert
    // ends, so wait for the cancels themselves.
    let counts = eventually("the 100 cancels to end", || async {
        let counts = counts(&app, &token).await;
        if counts["CANCELED"] == 100 && counts["COMPLETED"] == 400 {
            Ok(counts)
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await;

    assert_eq!(counts["CANCELED"], 100, "{counts:?}");
    assert_eq!(counts["COMPLETED"], 400, "{counts:?}");
    let expected: HashSet<String> = (0..500).filter(|i| i % 5 != 0).map(ip).collect();
    assert_listed_once(
        &app.data_path().join("blocklists/tenant-a/blocked-ip.txt"),
        &expected,
    );
    let actions = all_actions(&app, &token).await;
    for i in canceled {
        let states = statuses(&actions[&ids[i]]);
        assert_eq!(states.last(), Some(&"CANCELED"), "{states:?}");
        assert!(!states.contains(&"FAILED"), "{states:?}");
    }
}

async fn an_instance_that_dies_with_batches_claimed_is_taken_over_and_each_action_ends_once(
    backend: Backend,
) {
    let shared = tempfile::tempdir().unwrap();
    let short_lease = |c: &mut actiongate::Config| c.executor.lease = Duration::from_secs(4);
    let first = TestApp::builder(backend.clone())
        .with_executor()
        .configure(short_lease)
        .providers(&blocklist_at(shared.path()))
        .spawn()
        .await;
    let token = writer("tenant-a");
    let inputs = (0..1000).map(|i| block_ip(&ip(i))).collect();
    // The executor works on the first 500 while the second call stores the rest.
    let ids = invoke_in_bulk(&first, &token, inputs).await;
    let database = first.database.clone();
    first.crash().await;

    let second = TestApp::builder(backend)
        .with_executor()
        .configure(short_lease)
        .providers(&blocklist_at(shared.path()))
        .on_database(&database)
        .spawn()
        .await;
    let counts = settled(&second, &token, 1000).await;

    assert_eq!(counts["COMPLETED"], 1000, "{counts:?}");
    let expected: HashSet<String> = (0..1000).map(ip).collect();
    assert_listed_once(&shared.path().join("tenant-a/blocked-ip.txt"), &expected);
    let actions = all_actions(&second, &token).await;
    for id in &ids {
        assert_eq!(
            statuses(&actions[id]),
            ["NOT_STARTED", "RUNNING", "COMPLETED"],
            "no state is lost or doubled"
        );
    }
}

async fn two_executors_sharing_a_database_and_a_blocklist_end_each_action_once(backend: Backend) {
    let shared = tempfile::tempdir().unwrap();
    let first = TestApp::builder(backend.clone())
        .with_executor()
        .providers(&blocklist_at(shared.path()))
        .spawn()
        .await;
    let second = TestApp::builder(backend)
        .with_executor()
        .providers(&blocklist_at(shared.path()))
        .on_database(&first.database)
        .spawn()
        .await;
    let token = writer("tenant-a");
    let mut ids = Vec::new();
    for chunk in 0..4 {
        let app = if chunk % 2 == 0 { &first } else { &second };
        let inputs = (chunk * 500..(chunk + 1) * 500)
            .map(|i| block_ip(&ip(i)))
            .collect();
        ids.extend(invoke_in_bulk(app, &token, inputs).await);
    }
    let counts = settled(&first, &token, 2000).await;

    assert_eq!(counts["COMPLETED"], 2000, "{counts:?}");
    let expected: HashSet<String> = (0..2000).map(ip).collect();
    assert_listed_once(&shared.path().join("tenant-a/blocked-ip.txt"), &expected);
    let actions = all_actions(&second, &token).await;
    for id in &ids {
        assert_eq!(
            statuses(&actions[id]),
            ["NOT_STARTED", "RUNNING", "COMPLETED"],
            "claimed once, completed once"
        );
    }
}

crate::on_both_backends!(
    a_feed_of_1000_ips_invoked_in_bulk_completes_with_each_listed_once,
    a_list_that_cannot_be_written_fails_only_the_actions_of_the_batch_bound_for_it,
    cancels_during_a_bulk_execution_lift_exactly_the_canceled_indicators,
    an_instance_that_dies_with_batches_claimed_is_taken_over_and_each_action_ends_once,
    two_executors_sharing_a_database_and_a_blocklist_end_each_action_once,
);
