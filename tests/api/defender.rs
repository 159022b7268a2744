//! The Defender provider within Defender's limits: feeds go in a few import
//! calls, cancels in a few batch deletes, every call paced by a budget the
//! replicas share, the tenant's cap refused at once, a 429 waited out without
//! burning attempts, and a batch cut short by a crash applied once.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::defender_fake::{DefenderLimits, FakeDefender, MAX_BATCH};
use crate::helpers::{Backend, TestApp, TestAppBuilder, assert_no_errors, eventually, writer};

const INVOKE_MANY: &str = "mutation($inputs: [InvokeActionInput!]!) {
    invokeActions(inputs: $inputs) { action { id } error { code message } }
}";

/// A distinct address for each `i` below 65,536.
fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
}

/// Invokes `blockIp` on each address in calls of 500; the ids, in order.
async fn block_ips(app: &TestApp, token: &str, ips: &[String]) -> Vec<String> {
    let mut ids = Vec::with_capacity(ips.len());
    for chunk in ips.chunks(500) {
        let inputs: Vec<Value> = chunk
            .iter()
            .map(|ip| json!({"name": "blockIp", "parameters": [{"name": "ip", "value": ip}]}))
            .collect();
        let body = app
            .gql(token, INVOKE_MANY, json!({ "inputs": inputs }))
            .await;
        assert_no_errors(&body);
        for result in body["data"]["invokeActions"].as_array().unwrap() {
            assert!(result["error"].is_null(), "{result}");
            ids.push(result["action"]["id"].as_str().unwrap().to_owned());
        }
    }
    ids
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

/// Waits until `n` of the tenant's actions have `status`.
async fn wait_for_count(app: &TestApp, token: &str, status: &str, n: i64) {
    eventually(format!("{n} actions {status}"), || async {
        let seen = count_with_status(app, token, status).await;
        if seen == n { Ok(()) } else { Err(seen) }
    })
    .await
}

/// Waits until `n` of the tenant's actions have `status`, for up to five
/// minutes: under the documented budget a feed may rightly wait out a whole
/// minute for room (more than 30 import and batch-delete calls), longer than
/// `eventually` waits on a loaded machine.
async fn wait_for_count_under_budget(app: &TestApp, token: &str, status: &str, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let seen = count_with_status(app, token, status).await;
        if seen == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {n} actions {status}; last seen: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Cancels `ids`, many at a time.
async fn cancel_all(app: &TestApp, token: &str, ids: &[String]) {
    for chunk in ids.chunks(250) {
        for body in join_all(chunk.iter().map(|id| app.cancel(token, id))).await {
            assert!(body["id"].is_string(), "{body}");
        }
    }
}

/// The values of the indicators Defender holds, sorted.
fn values(defender: &FakeDefender) -> Vec<String> {
    let mut values: Vec<String> = defender
        .indicators()
        .iter()
        .map(|i| i["indicatorValue"].as_str().unwrap().to_owned())
        .collect();
    values.sort();
    values
}

/// Asserts that no window of the fake's limits held more accepted calls
/// than they allow, and that the fake never had to answer 429.
fn assert_within(defender: &FakeDefender, limits: &DefenderLimits) {
    assert_eq!(defender.throttled(), 0, "the fake answered 429");
    assert!(defender.most_in_any_window(limits.minute, |_| true) <= limits.calls_per_minute);
    assert!(defender.most_in_any_window(limits.hour, |_| true) <= limits.calls_per_hour);
    for path in ["/api/indicators/import", "/api/indicators/BatchDelete"] {
        assert!(
            defender.most_in_any_window(limits.minute, |c| c.path == path)
                <= limits.imports_per_minute,
            "{path}"
        );
    }
    assert!(defender.calls().iter().all(|c| c.items <= MAX_BATCH));
}

fn on_defender(builder: TestAppBuilder, toml: &str) -> TestAppBuilder {
    builder.with_executor().providers(toml)
}

async fn a_feed_of_2000_indicators_takes_a_few_imports_and_its_cancels_a_few_batch_deletes(
    backend: Backend,
) {
    // The documented limits, on both sides: the gateway on its defaults.
    let limits = DefenderLimits::documented();
    let defender = FakeDefender::with_limits(limits).await;
    let app = on_defender(
        TestApp::builder(backend),
        &defender.provider_toml_with_defaults(),
    )
    .spawn()
    .await;
    let token = writer("tenant-a");
    let ips: Vec<String> = (0..2_000).map(ip).collect();

    let ids = block_ips(&app, &token, &ips).await;

    wait_for_count_under_budget(&app, &token, "COMPLETED", 2_000).await;
    assert_eq!(values(&defender).len(), 2_000);
    let imports = defender.calls_to("POST", "/api/indicators/import");
    // The executor claims more at a time as it finds a feed queued: at least
    // a hundred indicators a call.
    assert!(imports.len() <= 20, "{} import calls", imports.len());
    assert_eq!(defender.calls_to("POST", "/api/indicators").len(), 0);
    assert_within(&defender, &limits);

    cancel_all(&app, &token, &ids[..1_000]).await;

    wait_for_count_under_budget(&app, &token, "CANCELED", 1_000).await;
    let mut kept = ips[1_000..].to_vec();
    kept.sort();
    assert_eq!(values(&defender), kept, "the canceled indicators are gone");
    // Cancels come one mutation each and are reverted as they come, in
    // batches of what is due: far fewer calls than indicators.
    let deletes = defender.calls_to("POST", "/api/indicators/BatchDelete");
    assert!(deletes.len() <= 100, "{} batch deletes", deletes.len());
    assert_within(&defender, &limits);
}

async fn an_indicator_past_the_tenants_cap_fails_at_once_with_a_clear_message(backend: Backend) {
    let limits = DefenderLimits {
        max_active: 3,
        ..DefenderLimits::documented()
    };
    let defender = FakeDefender::with_limits(limits).await;
    let app = on_defender(TestApp::builder(backend), &defender.provider_toml())
        .spawn()
        .await;
    let token = writer("tenant-a");
    let held = block_ips(&app, &token, &[ip(1), ip(2), ip(3)]).await;
    wait_for_count(&app, &token, "COMPLETED", 3).await;

    let past = app.invoke(&token, "blockIp", "ip", &ip(4)).await;

    let failed = app.wait_for_status(&token, &past, "FAILED").await;
    let message = failed["errorInfo"]["message"].as_str().unwrap();
    assert!(
        message.contains("at most 3 active indicators per tenant"),
        "{message}"
    );
    assert_eq!(failed["errorInfo"]["code"], 507);
    let statuses: Vec<&str> = failed["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["NOT_STARTED", "RUNNING", "FAILED"], "no retries");
    let imported: usize = defender
        .calls_to("POST", "/api/indicators/import")
        .iter()
        .map(|c| c.items)
        .sum();
    assert_eq!(imported, 3, "the fourth never reached Defender");

    // A cancel makes room: the next one fits.
    app.cancel(&token, &held[0]).await;
    app.wait_for_status(&token, &held[0], "CANCELED").await;
    let next = app.invoke(&token, "blockIp", "ip", &ip(5)).await;
    app.wait_for_status(&token, &next, "COMPLETED").await;
    assert_eq!(values(&defender), [ip(2), ip(3), ip(5)]);
    assert_within(&defender, &limits);
}

async fn the_15001st_active_indicator_of_a_tenant_fails_at_once_under_the_documented_cap(
    backend: Backend,
) {
    // The documented numbers on both sides; the gateway on its defaults.
    let limits = DefenderLimits::documented();
    let defender = FakeDefender::with_limits(limits).await;
    let toml = defender.provider_toml_with_defaults();
    // The feed is stored first, then an executor takes it up: 15,000 stored
    // while being executed would be a test of SQLite's one writer.
    let storing = TestApp::builder(backend.clone())
        .providers(&toml)
        .spawn()
        .await;
    let token = writer("tenant-a");
    let ips: Vec<String> = (0..15_000).map(ip).collect();
    block_ips(&storing, &token, &ips).await;
    let app = on_defender(TestApp::builder(backend), &toml)
        .on_database(&storing.database)
        .spawn()
        .await;
    wait_for_count_under_budget(&app, &token, "COMPLETED", 15_000).await;

    let past = app.invoke(&token, "blockIp", "ip", "192.0.2.1").await;

    let failed = app.wait_for_status(&token, &past, "FAILED").await;
    let message = failed["errorInfo"]["message"].as_str().unwrap();
    assert!(
        message.contains("at most 15000 active indicators per tenant"),
        "{message}"
    );
    assert_eq!(defender.indicators().len(), 15_000);
    assert_within(&defender, &limits);
}

async fn an_indicator_defender_refuses_fails_its_action_alone(backend: Backend) {
    let defender = FakeDefender::start().await;
    defender.refuse(&ip(2), "Indicator value is excluded by an allow rule");
    let app = on_defender(TestApp::builder(backend), &defender.provider_toml())
        .spawn()
        .await;
    let token = writer("tenant-a");

    let ids = block_ips(&app, &token, &[ip(1), ip(2), ip(3)]).await;

    app.wait_for_status(&token, &ids[0], "COMPLETED").await;
    app.wait_for_status(&token, &ids[2], "COMPLETED").await;
    let failed = app.wait_for_status(&token, &ids[1], "FAILED").await;
    assert_eq!(failed["errorInfo"]["code"], 400);
    let message = failed["errorInfo"]["message"].as_str().unwrap();
    assert!(message.contains("excluded by an allow rule"), "{message}");
    assert_eq!(values(&defender), [ip(1), ip(3)]);
}

async fn a_cancel_whose_indicator_was_removed_by_hand_still_lifts_the_others(backend: Backend) {
    let defender = FakeDefender::start().await;
    let app = on_defender(TestApp::builder(backend), &defender.provider_toml())
        .spawn()
        .await;
    let token = writer("tenant-a");
    let ips: Vec<String> = (0..6).map(ip).collect();
    let ids = block_ips(&app, &token, &ips).await;
    wait_for_count(&app, &token, "COMPLETED", 6).await;
    defender.remove_by_hand(&ip(0));

    cancel_all(&app, &token, &ids[..3]).await;

    wait_for_count(&app, &token, "CANCELED", 3).await;
    assert_eq!(values(&defender), ips[3..].to_vec());
    assert_within(&defender, &DefenderLimits::documented());
}

async fn a_cancel_leaves_an_indicator_that_another_action_still_holds(backend: Backend) {
    let defender = FakeDefender::start().await;
    let app = on_defender(TestApp::builder(backend), &defender.provider_toml())
        .spawn()
        .await;
    let (a, b) = (writer("tenant-a"), writer("tenant-b"));
    let of_a = block_ips(&app, &a, &[ip(1), ip(2), ip(3)]).await;
    let of_b = block_ips(&app, &b, &[ip(1)]).await;
    wait_for_count(&app, &a, "COMPLETED", 3).await;
    wait_for_count(&app, &b, "COMPLETED", 1).await;

    // One batch of reverts: the shared indicator stays, the others go.
    cancel_all(&app, &a, &of_a).await;

    wait_for_count(&app, &a, "CANCELED", 3).await;
    assert_eq!(
        values(&defender),
        [ip(1)],
        "tenant-b's action still holds it"
    );
    let canceled_detail = |action: &Value| {
        action["states"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["status"] == "CANCELED")
            .map(|s| s["detail"].clone())
            .unwrap_or_default()
    };
    let kept = app.action(&a, &of_a[0]).await;
    let detail = canceled_detail(&kept);
    assert!(
        detail.as_str().is_some_and(|d| d.contains("still hold")),
        "{kept}"
    );
    let lifted = app.action(&a, &of_a[1]).await;
    assert!(canceled_detail(&lifted).is_null(), "{lifted}");
    cancel_all(&app, &b, &of_b).await;
    wait_for_count(&app, &b, "CANCELED", 1).await;
    assert!(values(&defender).is_empty());
}

async fn two_replicas_share_one_budget_and_stay_within_the_limits_together(backend: Backend) {
    // Small limits and short windows, on both sides, so the budget binds.
    let limits = DefenderLimits {
        calls_per_minute: 6,
        calls_per_hour: 30,
        imports_per_minute: 3,
        minute: Duration::from_millis(1_000),
        hour: Duration::from_millis(5_000),
        max_active: 15_000,
    };
    let defender = FakeDefender::with_limits(limits).await;
    let toml = defender.provider_toml();
    let first = on_defender(TestApp::builder(backend.clone()), &toml)
        .spawn()
        .await;
    let second = on_defender(TestApp::builder(backend), &toml)
        .on_database(&first.database)
        .spawn()
        .await;
    // A batch carries one tenant's actions: 16 tenants make 16 imports at least.
    let tenants: Vec<String> = (0..16).map(|t| writer(&format!("tenant-{t}"))).collect();
    for (t, token) in tenants.iter().enumerate() {
        let app = if t % 2 == 0 { &first } else { &second };
        block_ips(
            app,
            token,
            &(0..5).map(|i| ip(t * 10 + i)).collect::<Vec<_>>(),
        )
        .await;
    }

    for token in &tenants {
        wait_for_count(&first, token, "COMPLETED", 5).await;
    }

    assert_eq!(values(&defender).len(), 80);
    assert_within(&defender, &limits);
    let tokens: std::collections::HashSet<String> =
        defender.calls().into_iter().map(|c| c.token).collect();
    assert_eq!(tokens.len(), 2, "both replicas called Defender");
}

async fn cancels_that_wait_for_the_budget_go_in_one_batch_delete_once_it_has_room(
    backend: Backend,
) {
    // Two batch calls a window of 4 s, on both sides; one call at a time in
    // the executor, as when its other calls are busy: the budget, not the
    // calls free, is what must decide how many calls the cancels take.
    let limits = DefenderLimits {
        calls_per_minute: 100,
        calls_per_hour: 1_000,
        imports_per_minute: 2,
        minute: Duration::from_secs(4),
        hour: Duration::from_secs(120),
        max_active: 15_000,
    };
    let defender = FakeDefender::with_limits(limits).await;
    let app = on_defender(TestApp::builder(backend), &defender.provider_toml())
        .configure(|c| c.executor.concurrency = 1)
        .spawn()
        .await;
    let token = writer("tenant-a");
    let ips: Vec<String> = (0..42).map(ip).collect();
    let ids = block_ips(&app, &token, &ips).await;
    wait_for_count(&app, &token, "COMPLETED", 42).await;
    // Two cancels, one after the other, spend the window's batch calls.
    for id in &ids[..2] {
        app.cancel(&token, id).await;
        app.wait_for_status(&token, id, "CANCELED").await;
    }
    assert_eq!(
        defender
            .calls_to("POST", "/api/indicators/BatchDelete")
            .len(),
        2
    );

    // Forty cancels, one mutation each, while the budget is spent.
    cancel_all(&app, &token, &ids[2..]).await;

    wait_for_count(&app, &token, "CANCELED", 42).await;
    assert_eq!(values(&defender), Vec::<String>::new());
    let deletes = defender.calls_to("POST", "/api/indicators/BatchDelete");
    let carried: Vec<usize> = deletes[2..].iter().map(|c| c.items).collect();
    assert_eq!(carried.iter().sum::<usize>(), 40, "{carried:?}");
    // What is due when there is room goes in one call: one for the cancels
    // that waited, and at most one for each call the budget had room for
    // while they were still arriving.
    assert!(
        carried.len() <= 40usize.div_ceil(MAX_BATCH) + limits.imports_per_minute,
        "the cancels took {} batch deletes: {carried:?}",
        carried.len()
    );
    assert!(defender.calls().iter().all(|c| c.method != "DELETE"));
    assert_within(&defender, &limits);
}

async fn a_429_is_waited_out_without_burning_attempts(backend: Backend) {
    // Defender allows fewer imports than the gateway was told.
    let fake_limits = DefenderLimits {
        imports_per_minute: 1,
        minute: Duration::from_millis(1_000),
        ..DefenderLimits::documented()
    };
    let defender = FakeDefender::with_limits(fake_limits).await;
    let toml = defender
        .provider_toml()
        .replace("imports_per_minute = 1", "imports_per_minute = 30");
    let app = on_defender(TestApp::builder(backend), &toml)
        .configure(|c| c.executor.max_attempts = 1)
        .spawn()
        .await;
    let tenants: Vec<String> = (0..4).map(|t| writer(&format!("tenant-{t}"))).collect();
    for (t, token) in tenants.iter().enumerate() {
        block_ips(&app, token, &[ip(t)]).await;
    }

    for token in &tenants {
        wait_for_count(&app, token, "COMPLETED", 1).await;
    }

    assert!(defender.throttled() > 0, "the fake answered 429");
    assert_eq!(values(&defender).len(), 4);
}

async fn a_gateway_that_dies_after_an_import_applies_each_action_once_after_restart(
    backend: Backend,
) {
    // The documented numbers in windows of 2 s and 20 s, so waits are short.
    let limits = DefenderLimits {
        minute: Duration::from_secs(2),
        hour: Duration::from_secs(20),
        ..DefenderLimits::documented()
    };
    let defender = FakeDefender::with_limits(limits).await;
    defender.hang_imports(true);
    let toml = defender
        .provider_toml()
        .replace("timeout = \"8s\"", "timeout = \"3s\"");
    let short_lease = |c: &mut actiongate::Config| c.executor.lease = Duration::from_secs(4);
    let app = on_defender(TestApp::builder(backend.clone()), &toml)
        .configure(short_lease)
        .spawn()
        .await;
    let token = writer("tenant-a");
    let ips: Vec<String> = (0..40).map(ip).collect();
    let ids = block_ips(&app, &token, &ips).await;
    eventually("an import applied, its answer not yet sent", || async {
        let imports = defender.calls_to("POST", "/api/indicators/import");
        let held = defender.indicators().len();
        match imports.first() {
            Some(first) if held >= first.items => Ok(()),
            _ => Err(held),
        }
    })
    .await;

    // Dies with the import's answer still on its way.
    let database = app.database.clone();
    app.crash().await;
    defender.hang_imports(false);
    let restarted = on_defender(TestApp::builder(backend), &toml)
        .configure(short_lease)
        .on_database(&database)
        .spawn()
        .await;

    wait_for_count(&restarted, &token, "COMPLETED", 40).await;
    let mut sorted = ips.clone();
    sorted.sort();
    assert_eq!(values(&defender), sorted, "each indicator once");
    for id in &ids {
        let action = restarted.action(&token, id).await;
        let completed = action["states"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "COMPLETED")
            .count();
        assert_eq!(completed, 1, "{action}");
    }
    assert!(defender.calls_to("POST", "/api/indicators/import").len() >= 2);
    assert_eq!(defender.throttled(), 0);
}

crate::on_both_backends!(
    a_feed_of_2000_indicators_takes_a_few_imports_and_its_cancels_a_few_batch_deletes,
    an_indicator_past_the_tenants_cap_fails_at_once_with_a_clear_message,
    an_indicator_defender_refuses_fails_its_action_alone,
    the_15001st_active_indicator_of_a_tenant_fails_at_once_under_the_documented_cap,
    a_cancel_whose_indicator_was_removed_by_hand_still_lifts_the_others,
    a_cancel_leaves_an_indicator_that_another_action_still_holds,
    two_replicas_share_one_budget_and_stay_within_the_limits_together,
    cancels_that_wait_for_the_budget_go_in_one_batch_delete_once_it_has_room,
    a_429_is_waited_out_without_burning_attempts,
    a_gateway_that_dies_after_an_import_applies_each_action_once_after_restart,
);
