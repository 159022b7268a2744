//! The executor and the providers: actions that change something, retries,
//! cancels that lift what was applied, crashes and shutdowns.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

use crate::defender_fake::FakeDefender;
use crate::helpers::{Backend, TestApp, error_code, eventually, statuses, writer};
use crate::receivers::{Reply, WebhookReceiver};

/// Each state's previous status is the status before it: the history is one chain.
fn assert_history_is_a_chain(action: &Value) {
    let states = action["states"].as_array().unwrap();
    assert!(states[0]["previousStatus"].is_null(), "{action:#}");
    for pair in states.windows(2) {
        assert_eq!(pair[1]["previousStatus"], pair[0]["status"], "{action:#}");
    }
    assert_eq!(
        states.last().unwrap()["status"],
        action["status"],
        "{action:#}"
    );
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

async fn a_blocked_ip_lands_in_the_blocklist_and_cancel_lifts_it(backend: Backend) {
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let token = writer("tenant-a");
    let file = app.data_path().join("blocklists/tenant-a/blocked-ip.txt");

    let id = app.invoke(&token, "blockIp", "ip", "203.0.113.7").await;
    let completed = app.wait_for_status(&token, &id, "COMPLETED").await;
    assert_eq!(lines(&file), ["203.0.113.7"]);
    assert!(completed["completedDateTime"].is_string());

    let requested = app.cancel(&token, &id).await;
    assert!(requested["cancelRequestedDateTime"].is_string());
    let canceled = app.wait_for_status(&token, &id, "CANCELED").await;

    assert!(lines(&file).is_empty(), "the IP is unblocked");
    assert_eq!(
        statuses(&canceled),
        ["NOT_STARTED", "RUNNING", "COMPLETED", "CANCELED"]
    );
    assert_history_is_a_chain(&canceled);
    assert_eq!(canceled["states"][1]["user"], "executor");
}

async fn an_indicator_held_by_two_actions_stays_until_both_are_canceled(backend: Backend) {
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let token = writer("tenant-a");
    let blocked = app
        .data_path()
        .join("blocklists/tenant-a/blocked-domain.txt");
    let allowed = app
        .data_path()
        .join("blocklists/tenant-a/allowed-sha256.txt");

    let first = app
        .invoke(&token, "blockDomain", "domain", "Evil.Example")
        .await;
    let second = app
        .invoke(&token, "blockDomain", "domain", "evil.example.")
        .await;
    let other = app
        .invoke(&token, "blockDomain", "domain", "another.example")
        .await;
    let allow = app
        .invoke(&token, "allowFile", "fileHash", &"AB".repeat(32))
        .await;
    for id in [&first, &second, &other, &allow] {
        app.wait_for_status(&token, id, "COMPLETED").await;
    }
    assert_eq!(
        lines(&blocked),
        ["another.example", "evil.example"],
        "sorted, each once"
    );
    assert_eq!(lines(&allowed), ["ab".repeat(32)]);

    app.cancel(&token, &first).await;
    app.wait_for_status(&token, &first, "CANCELED").await;
    assert_eq!(
        lines(&blocked),
        ["another.example", "evil.example"],
        "the second action still holds it"
    );
    app.cancel(&token, &second).await;
    app.wait_for_status(&token, &second, "CANCELED").await;
    assert_eq!(lines(&blocked), ["another.example"]);
}

async fn a_webhook_is_signed_and_retried_through_server_errors(backend: Backend) {
    let receiver =
        WebhookReceiver::start(|_, before| Reply::status(if before < 2 { 500 } else { 200 })).await;
    let app = TestApp::builder(backend)
        .with_executor()
        .providers(&receiver.provider_toml("2s"))
        .spawn()
        .await;
    let token = writer("tenant-a");

    let id = app
        .invoke(&token, "blockUrl", "url", "https://evil.example/login")
        .await;
    let action = app.wait_for_status(&token, &id, "COMPLETED").await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "two 500s, then the 200");
    assert!(
        requests.iter().all(|r| r.signature_valid),
        "every body is signed with the secret"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.idempotency_key == format!("{id}:execute"))
    );
    let attempts: Vec<i64> = requests
        .iter()
        .map(|r| r.body["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let body = &requests[2].body;
    assert_eq!(body["operation"], "execute");
    assert_eq!(
        body["action"]["indicator"],
        json!({"kind": "url", "value": "https://evil.example/login"})
    );
    assert_eq!(body["action"]["azureTenantId"], "tenant-a");
    assert_eq!(body["action"]["verdict"], "block");
    assert!(
        action["errorInfo"].is_null(),
        "a completed action carries no error"
    );
    assert_eq!(statuses(&action), ["NOT_STARTED", "RUNNING", "COMPLETED"]);
}

async fn a_webhook_client_error_fails_the_action_at_once(backend: Backend) {
    let receiver = WebhookReceiver::start(|_, _| Reply::status(400)).await;
    let app = TestApp::builder(backend)
        .with_executor()
        .providers(&receiver.provider_toml("2s"))
        .spawn()
        .await;
    let token = writer("tenant-a");

    let id = app.invoke(&token, "blockIp", "ip", "198.51.100.4").await;
    let failed = app.wait_for_status(&token, &id, "FAILED").await;

    assert_eq!(failed["errorInfo"]["code"], 400);
    assert!(
        failed["errorInfo"]["message"]
            .as_str()
            .unwrap()
            .contains("400")
    );
    assert_eq!(receiver.count(&id, "execute"), 1, "a 4xx is not retried");
    assert_eq!(statuses(&failed), ["NOT_STARTED", "RUNNING", "FAILED"]);
    let body = app
        .gql(
            &token,
            "mutation($id: ID!) { cancelAction(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_CANCELABLE");
}

async fn a_webhook_slower_than_the_timeout_is_retried_then_fails(backend: Backend) {
    let receiver = WebhookReceiver::start(|_, _| Reply::slow(200, Duration::from_secs(5))).await;
    let app = TestApp::builder(backend)
        .with_executor()
        .configure(|c| c.executor.max_attempts = 3)
        .providers(&receiver.provider_toml("300ms"))
        .spawn()
        .await;
    let token = writer("tenant-a");

    let id = app.invoke(&token, "blockIp", "ip", "198.51.100.5").await;
    let failed = app.wait_for_status(&token, &id, "FAILED").await;

    assert_eq!(receiver.count(&id, "execute"), 3);
    assert_eq!(failed["errorInfo"]["code"], 408);
    let message = failed["errorInfo"]["message"].as_str().unwrap();
    assert!(message.contains("gave up after 3 attempts"), "{message}");
}

async fn retry_after_is_honoured(backend: Backend) {
    let receiver = WebhookReceiver::start(|_, before| {
        if before == 0 {
            Reply {
                status: 503,
                delay: Duration::ZERO,
                retry_after: Some("1"),
            }
        } else {
            Reply::status(200)
        }
    })
    .await;
    let app = TestApp::builder(backend)
        .with_executor()
        .providers(&receiver.provider_toml("2s"))
        .spawn()
        .await;
    let token = writer("tenant-a");
    let id = app.invoke(&token, "blockIp", "ip", "198.51.100.6").await;
    app.wait_for_status(&token, &id, "COMPLETED").await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "the retry came {gap:?} after a Retry-After of 1 s"
    );
}

async fn cancel_of_a_running_action_stops_the_attempt_and_reverts(backend: Backend) {
    let receiver = WebhookReceiver::start(|r, _| match r.operation.as_str() {
        "execute" => Reply::slow(200, Duration::from_secs(20)),
        _ => Reply::status(200),
    })
    .await;
    let app = TestApp::builder(backend)
        .with_executor()
        .configure(|c| c.executor.lease = Duration::from_secs(40))
        .providers(&receiver.provider_toml("30s"))
        .spawn()
        .await;
    let token = writer("tenant-a");
    let id = app.invoke(&token, "blockIp", "ip", "198.51.100.7").await;
    eventually("the execute request", || async {
        receiver.count(&id, "execute") == 1
    })
    .await;

    let requested = app.cancel(&token, &id).await;
    assert_eq!(
        requested["status"], "RUNNING",
        "the mutation returns the action as it stands"
    );
    assert!(requested["cancelRequestedDateTime"].is_string());
    let canceled = app.wait_for_status(&token, &id, "CANCELED").await;

    assert_eq!(statuses(&canceled), ["NOT_STARTED", "RUNNING", "CANCELED"]);
    assert_history_is_a_chain(&canceled);
    assert_eq!(
        receiver.count(&id, "revert"),
        1,
        "what the stopped attempt may have applied is reverted"
    );
    assert_eq!(
        receiver.count(&id, "execute"),
        1,
        "the stopped attempt is not retried"
    );
}

async fn a_revert_that_keeps_failing_leaves_the_action_completed_and_says_so(backend: Backend) {
    let reverts_work = Arc::new(AtomicBool::new(false));
    let switch = reverts_work.clone();
    let receiver = WebhookReceiver::start(move |r, _| match r.operation.as_str() {
        "revert" if !switch.load(Ordering::SeqCst) => Reply::status(503),
        _ => Reply::status(200),
    })
    .await;
    let app = TestApp::builder(backend)
        .with_executor()
        .configure(|c| c.executor.max_attempts = 2)
        .providers(&receiver.provider_toml("2s"))
        .spawn()
        .await;
    let token = writer("tenant-a");
    let id = app.invoke(&token, "blockIp", "ip", "198.51.100.8").await;
    app.wait_for_status(&token, &id, "COMPLETED").await;

    app.cancel(&token, &id).await;
    eventually("two revert attempts", || async {
        receiver.count(&id, "revert") == 2
    })
    .await;
    let action = eventually("a state row for the failed revert", || async {
        let action = app.action(&token, &id).await;
        // The action row and its states are read by two queries: wait for both.
        let revert_failed = action["errorInfo"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("revert failed"));
        if action["states"].as_array().unwrap().len() == 4 && revert_failed {
            Ok(action)
        } else {
            Err(action)
        }
    })
    .await;
    assert_eq!(action["status"], "COMPLETED");
    assert!(
        action["errorInfo"]["message"]
            .as_str()
            .unwrap()
            .starts_with("revert failed"),
        "{action:#}"
    );
    assert_eq!(action["errorInfo"]["code"], 503);
    let last = &action["states"][3];
    assert_eq!(last["status"], "COMPLETED");
    assert_eq!(last["previousStatus"], "COMPLETED");
    assert!(last["detail"].as_str().unwrap().contains("revert failed"));

    // Once the receiver recovers, canceling again lifts the block.
    reverts_work.store(true, Ordering::SeqCst);
    app.cancel(&token, &id).await;
    let canceled = app.wait_for_status(&token, &id, "CANCELED").await;
    assert!(canceled["errorInfo"].is_null());
    assert_history_is_a_chain(&canceled);
}

async fn defender_indicators_are_submitted_and_deleted_with_a_refreshed_token(backend: Backend) {
    let defender = FakeDefender::start().await;
    let app = TestApp::builder(backend)
        .with_executor()
        .providers(&defender.provider_toml())
        .spawn()
        .await;
    let token = writer("tenant-a");

    let ip = app.invoke(&token, "blockIp", "ip", "203.0.113.9").await;
    app.wait_for_status(&token, &ip, "COMPLETED").await;
    let indicators = defender.indicators();
    assert_eq!(indicators.len(), 1);
    assert_eq!(indicators[0]["indicatorValue"], "203.0.113.9");
    assert_eq!(indicators[0]["indicatorType"], "IpAddress");
    assert_eq!(indicators[0]["action"], "Block");
    assert!(indicators[0]["description"].as_str().unwrap().contains(&ip));
    assert_eq!(defender.tokens_issued(), ["token-1"]);

    // The token the gateway holds expires: the API refuses it, a new one is fetched.
    defender.expire("token-1");
    let file = app
        .invoke(&token, "allowFile", "fileHash", &"c".repeat(64))
        .await;
    app.wait_for_status(&token, &file, "COMPLETED").await;
    assert_eq!(defender.tokens_issued(), ["token-1", "token-2"]);
    let allowed = defender
        .indicators()
        .into_iter()
        .find(|i| i["indicatorType"] == "FileSha256")
        .unwrap();
    assert_eq!(allowed["action"], "Allowed");

    app.cancel(&token, &ip).await;
    app.wait_for_status(&token, &ip, "CANCELED").await;
    let remaining: Vec<String> = defender
        .indicators()
        .iter()
        .map(|i| i["indicatorValue"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(remaining, ["c".repeat(64)], "the IP's indicator is deleted");
    let delete = &defender.calls_to("POST", "/api/indicators/BatchDelete")[0];
    assert_eq!(delete.items, 1);
    assert_eq!(delete.token, "token-2");
}

async fn a_defender_indicator_shared_by_two_actions_stays_until_both_are_canceled(
    backend: Backend,
) {
    let defender = FakeDefender::start().await;
    let app = TestApp::builder(backend)
        .with_executor()
        .providers(&defender.provider_toml())
        .spawn()
        .await;
    let (a, b) = (writer("tenant-a"), writer("tenant-b"));
    let first = app.invoke(&a, "blockIp", "ip", "203.0.113.20").await;
    let second = app.invoke(&b, "blockIp", "ip", "203.0.113.20").await;
    app.wait_for_status(&a, &first, "COMPLETED").await;
    app.wait_for_status(&b, &second, "COMPLETED").await;
    assert_eq!(
        defender.indicators().len(),
        1,
        "Defender keeps one indicator per value"
    );

    app.cancel(&a, &first).await;
    let canceled = app.wait_for_status(&a, &first, "CANCELED").await;
    assert_eq!(defender.indicators().len(), 1, "tenant B's block stays");
    let last = canceled["states"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        last["detail"].as_str().unwrap().contains("other actions"),
        "{last}"
    );

    app.cancel(&b, &second).await;
    app.wait_for_status(&b, &second, "CANCELED").await;
    assert!(defender.indicators().is_empty(), "the last holder lifts it");
}

async fn an_instance_that_dies_mid_execution_is_taken_over_and_the_effect_applied_once(
    backend: Backend,
) {
    // The first request hangs (the instance dies while it waits); later ones succeed.
    let receiver = WebhookReceiver::hanging_first().await;
    let short_lease = |c: &mut actiongate::Config| {
        c.executor.lease = Duration::from_secs(3);
        c.executor.provider_timeout = Duration::from_secs(2);
    };
    let first = TestApp::builder(backend.clone())
        .with_executor()
        .configure(short_lease)
        .providers(&receiver.provider_toml("2s"))
        .spawn()
        .await;
    let token = writer("tenant-a");
    let id = first.invoke(&token, "blockIp", "ip", "203.0.113.10").await;
    eventually("the first attempt", || async {
        receiver.count(&id, "execute") == 1
    })
    .await;
    let database = first.database.clone();
    first.crash().await;

    let second = TestApp::builder(backend)
        .with_executor()
        .configure(short_lease)
        .providers(&receiver.provider_toml("2s"))
        .on_database(&database)
        .spawn()
        .await;
    let action = second.wait_for_status(&token, &id, "COMPLETED").await;

    let keys: HashSet<String> = receiver
        .requests()
        .iter()
        .map(|r| r.idempotency_key.clone())
        .collect();
    assert_eq!(
        receiver.count(&id, "execute"),
        2,
        "the dead attempt and the one that took over"
    );
    assert_eq!(
        keys.len(),
        1,
        "both carry one idempotency key: the receiver applies the action once"
    );
    assert_eq!(
        statuses(&action),
        ["NOT_STARTED", "RUNNING", "COMPLETED"],
        "no Running is lost or doubled"
    );
}

async fn two_executors_on_one_database_execute_each_of_1000_actions_once(backend: Backend) {
    let receiver = WebhookReceiver::ok().await;
    let first = TestApp::builder(backend.clone())
        .with_executor()
        .providers(&receiver.provider_toml("5s"))
        .spawn()
        .await;
    let second = TestApp::builder(backend)
        .with_executor()
        .providers(&receiver.provider_toml("5s"))
        .on_database(&first.database)
        .spawn()
        .await;
    let token = writer("tenant-a");

    let mut ids = Vec::new();
    for chunk in 0..20 {
        let app = if chunk % 2 == 0 { &first } else { &second };
        let batch = (0..50).map(|i| {
            let n = chunk * 50 + i;
            let ip = format!("10.{}.{}.{}", n / 65536, (n / 256) % 256, n % 256);
            let token = token.clone();
            async move { app.invoke(&token, "blockIp", "ip", &ip).await }
        });
        ids.extend(futures_util::future::join_all(batch).await);
    }
    eventually("all 1000 actions to complete", || async {
        let counts = first
            .gql(&token, "{ actionCounts { status count } }", json!({}))
            .await;
        let completed = counts["data"]["actionCounts"][2]["count"].as_i64();
        if completed == Some(1000) {
            Ok(())
        } else {
            Err(counts)
        }
    })
    .await;

    let mut per_action: HashMap<String, usize> = HashMap::new();
    for request in receiver.requests() {
        *per_action.entry(request.action_id).or_default() += 1;
    }
    assert_eq!(per_action.len(), 1000);
    assert!(
        per_action.values().all(|n| *n == 1),
        "an action was executed twice"
    );
    let ids: HashSet<String> = ids.into_iter().collect();
    assert_eq!(ids, per_action.keys().cloned().collect());
}

async fn a_cancel_racing_a_completion_ends_in_one_final_status(backend: Backend) {
    let receiver = WebhookReceiver::start(|r, _| {
        let jitter = r.action_id.bytes().map(u64::from).sum::<u64>() % 40;
        Reply::slow(200, Duration::from_millis(jitter))
    })
    .await;
    let app = TestApp::builder(backend)
        .with_executor()
        .providers(&receiver.provider_toml("5s"))
        .spawn()
        .await;
    let token = writer("tenant-a");

    let mut ids = Vec::new();
    for i in 0..40 {
        let id = app
            .invoke(&token, "blockIp", "ip", &format!("10.9.0.{i}"))
            .await;
        // Cancel at different points of the execution.
        tokio::time::sleep(Duration::from_millis((i % 8) * 7)).await;
        app.cancel(&token, &id).await;
        ids.push(id);
    }
    for id in &ids {
        let action = app.wait_for_status(&token, id, "CANCELED").await;
        assert_history_is_a_chain(&action);
        let statuses = statuses(&action);
        assert_eq!(
            statuses.iter().filter(|s| **s == "CANCELED").count(),
            1,
            "{action:#}"
        );
        assert!(
            statuses.iter().filter(|s| **s == "COMPLETED").count() <= 1,
            "{action:#}"
        );
        let executed = receiver.count(id, "execute");
        assert!(executed <= 1, "executed {executed} times");
        if statuses.contains(&"COMPLETED") {
            assert_eq!(
                receiver.count(id, "revert"),
                1,
                "a completed block is lifted: {action:#}"
            );
        }
    }
}

async fn shutdown_lets_attempts_in_flight_finish(backend: Backend) {
    let receiver =
        WebhookReceiver::start(|_, _| Reply::slow(200, Duration::from_millis(800))).await;
    let app = TestApp::builder(backend.clone())
        .with_executor()
        .providers(&receiver.provider_toml("5s"))
        .spawn()
        .await;
    let token = writer("tenant-a");
    let id = app.invoke(&token, "blockIp", "ip", "203.0.113.11").await;
    eventually("the execute request", || async {
        receiver.count(&id, "execute") == 1
    })
    .await;
    let database = app.database.clone();

    app.stop().await;

    let after = TestApp::builder(backend)
        .on_database(&database)
        .spawn()
        .await;
    assert_eq!(after.action(&token, &id).await["status"], "COMPLETED");
}

async fn shutdown_gives_back_the_leases_of_attempts_that_outlast_the_grace_period(
    backend: Backend,
) {
    let receiver = WebhookReceiver::hanging_first().await;
    let slow = |c: &mut actiongate::Config| {
        c.executor.lease = Duration::from_secs(120);
        c.executor.provider_timeout = Duration::from_secs(100);
        c.executor.shutdown_grace = Duration::from_millis(300);
    };
    let app = TestApp::builder(backend.clone())
        .with_executor()
        .configure(slow)
        .providers(&receiver.provider_toml("100s"))
        .spawn()
        .await;
    let token = writer("tenant-a");
    let id = app.invoke(&token, "blockIp", "ip", "203.0.113.12").await;
    eventually("the execute request", || async {
        receiver.count(&id, "execute") == 1
    })
    .await;
    let database = app.database.clone();

    app.stop().await;

    let db = Database::connect(database.url.as_str()).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT lease_owner, due_at FROM actions",
        ))
        .await
        .unwrap()
        .unwrap();
    let owner: Option<String> = row.try_get("", "lease_owner").unwrap();
    let due_at: i64 = row.try_get("", "due_at").unwrap();
    assert_eq!(owner, None, "the lease was given back");
    assert!(
        due_at <= chrono::Utc::now().timestamp_micros(),
        "and the work is due at once"
    );
    db.close().await.ok();

    // Another instance takes it over at once, long before the lease would have expired.
    let next = TestApp::builder(backend)
        .with_executor()
        .configure(slow)
        .providers(&receiver.provider_toml("100s"))
        .on_database(&database)
        .spawn()
        .await;
    next.wait_for_status(&token, &id, "COMPLETED").await;
    assert_eq!(receiver.count(&id, "execute"), 2);
}

/// Every field of an action, as a page reads only the columns its selection
/// asks for and a lookup reads them all.
const EVERY_FIELD: &str = "id name actionReason parameters { name value }
    vendorInformation { provider providerVersion subProvider vendor } clientContext appId
    azureTenantId user status errorInfo { code message subcode } states { status }
    createdDateTime lastActionDateTime completedDateTime cancelRequestedDateTime";

async fn a_page_asking_for_every_field_answers_as_the_lookup_does(backend: Backend) {
    let receiver = WebhookReceiver::start(|_, _| Reply::status(400)).await;
    let app = TestApp::builder(backend)
        .with_executor()
        .providers(&receiver.provider_toml("2s"))
        .spawn()
        .await;
    let token = writer("tenant-a");
    let invoked = app
        .gql(
            &token,
            "mutation { invokeAction(input: {name: \"blockIp\", actionReason: \"phishing wave\",
                clientContext: \"ticket-42\", parameters: [{name: \"ip\", value: \"198.51.100.8\"}]}) { id } }",
            json!({}),
        )
        .await;
    let id = invoked["data"]["invokeAction"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_status(&token, &id, "FAILED").await;

    let lookup = app
        .gql(
            &token,
            &format!("query($id: ID!) {{ action(id: $id) {{ {EVERY_FIELD} }} }}"),
            json!({ "id": id }),
        )
        .await;
    let action = &lookup["data"]["action"];
    assert_eq!(action["errorInfo"]["code"], 400, "{lookup}");
    assert_eq!(action["clientContext"], "ticket-42");
    assert!(action["completedDateTime"].is_string());
    for shape in [
        format!("{{ actions {{ nodes {{ {EVERY_FIELD} }} }} }}"),
        format!("{{ actions {{ edges {{ node {{ {EVERY_FIELD} }} }} }} }}"),
        format!("{{ actions {{ nodes {{ id }} edges {{ node {{ {EVERY_FIELD} }} }} }} }}"),
    ] {
        let page = app.gql(&token, &shape, json!({})).await;
        let connection = &page["data"]["actions"];
        let node = match connection["nodes"][0]["name"].is_null() {
            true => &connection["edges"][0]["node"],
            false => &connection["nodes"][0],
        };
        assert_eq!(node, action, "{shape}");
    }
}

crate::on_both_backends!(
    a_blocked_ip_lands_in_the_blocklist_and_cancel_lifts_it,
    an_indicator_held_by_two_actions_stays_until_both_are_canceled,
    a_webhook_is_signed_and_retried_through_server_errors,
    a_webhook_client_error_fails_the_action_at_once,
    a_page_asking_for_every_field_answers_as_the_lookup_does,
    a_webhook_slower_than_the_timeout_is_retried_then_fails,
    retry_after_is_honoured,
    cancel_of_a_running_action_stops_the_attempt_and_reverts,
    a_revert_that_keeps_failing_leaves_the_action_completed_and_says_so,
    defender_indicators_are_submitted_and_deleted_with_a_refreshed_token,
    a_defender_indicator_shared_by_two_actions_stays_until_both_are_canceled,
    an_instance_that_dies_mid_execution_is_taken_over_and_the_effect_applied_once,
    two_executors_on_one_database_execute_each_of_1000_actions_once,
    a_cancel_racing_a_completion_ends_in_one_final_status,
    shutdown_lets_attempts_in_flight_finish,
    shutdown_gives_back_the_leases_of_attempts_that_outlast_the_grace_period,
);
