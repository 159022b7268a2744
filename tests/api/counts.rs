//! Counts from counters: `actionCounts` and `totalCount` read the counters the
//! database keeps with every change, and those stay exact under concurrent
//! invokes, executions and cancels on two replicas.

use std::sync::Arc;

use actiongate::Store;
use futures_util::future::join_all;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_no_errors, eventually, writer};

const COUNTS: &str =
    "query($filter: ActionFilter) { actionCounts(filter: $filter) { status count } }";

async fn counts(app: &TestApp, token: &str, filter: Value) -> Value {
    let body = app.gql(token, COUNTS, json!({ "filter": filter })).await;
    assert_no_errors(&body);
    body["data"]["actionCounts"].clone()
}

/// `filter` with a field the counters are not kept by, which every action
/// of the tests passes: its counts are counted from the rows.
fn counted_from_rows(filter: &Value) -> Value {
    let mut filter = filter.clone();
    filter["user"] = json!("analyst@example.com");
    filter
}

/// A connection of the test's own to the app's database, to change rows
/// beneath the API.
async fn sql(app: &TestApp) -> sea_orm::DatabaseConnection {
    sea_orm::Database::connect(app.database.url.as_str())
        .await
        .expect("connect to the test database")
}

async fn assert_exact(store: &Store) {
    let drift = store.counter_drift().await.expect("the drift query runs");
    assert!(
        drift.is_empty(),
        "counters differ from COUNT(*): {drift:#?}"
    );
}

async fn counters_stay_exact_under_concurrent_changes_on_two_replicas(backend: Backend) {
    let first = Arc::new(
        TestApp::builder(backend.clone())
            .with_executor()
            .spawn()
            .await,
    );
    let second = Arc::new(
        TestApp::builder(backend)
            .with_executor()
            .on_database(&first.database)
            .spawn()
            .await,
    );
    let tenants = ["counts-a", "counts-b"];
    let writers = 16;
    let per_writer = 63;
    let tasks = (0..writers).map(|w| {
        let app = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let token = writer(tenants[w % tenants.len()]);
        tokio::spawn(async move {
            for i in 0..per_writer {
                let (name, parameter, value) = match i % 3 {
                    0 => ("blockIp", "ip", format!("10.{w}.{i}.1")),
                    1 => ("allowIp", "ip", format!("10.{w}.{i}.2")),
                    _ => ("blockDomain", "domain", format!("d{w}-{i}.example.com")),
                };
                let id = app.invoke(&token, name, parameter, &value).await;
                // Cancel some at once (NotStarted → Canceled), some later (a
                // revert of a running or completed action).
                if i % 4 == 0 {
                    app.cancel(&token, &id).await;
                }
                if i % 5 == 1 && i > 5 {
                    let body = app
                        .gql(
                            &token,
                            "mutation($id: ID!) { cancelAction(id: $id) { id } }",
                            json!({"id": id}),
                        )
                        .await;
                    // A cancel of an action that failed meanwhile is refused; fine.
                    let _ = body;
                }
            }
        })
    });
    let writing = tokio::spawn(join_all(tasks));
    // While they write, every snapshot of the counters is exact.
    while !writing.is_finished() {
        assert_exact(&first.store).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for task in writing.await.expect("the writers finish") {
        task.expect("a writer finishes");
    }
    // Then wait until the executors have nothing left to do.
    let token = writer(tenants[0]);
    eventually("the executors to finish", || async {
        let counts = counts(&first, &token, json!({})).await;
        let busy: i64 = counts
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "NOT_STARTED" || c["status"] == "RUNNING")
            .map(|c| c["count"].as_i64().unwrap())
            .sum();
        (busy == 0).then_some(()).ok_or(counts)
    })
    .await;
    assert_exact(&first.store).await;
    for tenant in tenants {
        let token = writer(tenant);
        let all = counts(&first, &token, json!({})).await;
        let total: i64 = all
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["count"].as_i64().unwrap())
            .sum();
        assert_eq!(
            total,
            (writers / tenants.len() * per_writer) as i64,
            "{all}"
        );
        for filter in [
            json!({}),
            json!({"status": ["CANCELED", "COMPLETED"]}),
            json!({"name": ["blockIp"], "provider": ["blocklist"]}),
        ] {
            assert_eq!(
                counts(&second, &token, filter.clone()).await,
                counts(&second, &token, counted_from_rows(&filter)).await,
                "{filter}"
            );
        }
    }
}

async fn time_windows_add_whole_days_hours_and_edges_exactly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("windows");
    for i in 0..60 {
        app.invoke(&token, "blockIp", "ip", &format!("10.9.{i}.1"))
            .await;
    }
    // Spread the actions over the last five days, 2 h 7 min apart, and
    // cancel a few: the counters follow both changes.
    let hour: i64 = 3_600_000_000;
    sql(&app)
        .await
        .execute_unprepared(&format!(
            "UPDATE actions SET created_at = created_at - ((SELECT COUNT(*) FROM actions AS b \
             WHERE b.id < actions.id) * {}) WHERE tenant_id = 'windows'",
            2 * hour + 7 * 60_000_000
        ))
        .await
        .expect("the update runs");
    let ids: Vec<String> = {
        let body = app
            .gql(&token, "{ actions(first: 10) { nodes { id } } }", json!({}))
            .await;
        body["data"]["actions"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for id in ids.iter().step_by(3) {
        app.cancel(&token, id).await;
    }
    assert_exact(&app.store).await;
    let now = chrono::Utc::now();
    let at = |hours_ago: f64| {
        (now - chrono::Duration::milliseconds((hours_ago * 3_600_000.0) as i64)).to_rfc3339()
    };
    let windows = [
        json!({"createdAfter": at(24.0)}),
        json!({"createdAfter": at(24.0), "status": ["CANCELED"]}),
        json!({"createdBefore": at(30.5)}),
        json!({"createdAfter": at(100.25), "createdBefore": at(3.75)}),
        json!({"createdAfter": at(50.0), "createdBefore": at(49.5)}),
        json!({"createdAfter": at(2.0), "createdBefore": at(90.0)}),
    ];
    let mut nonzero = 0;
    for filter in windows {
        let from_counters = counts(&app, &token, filter.clone()).await;
        assert_eq!(
            from_counters,
            counts(&app, &token, counted_from_rows(&filter)).await,
            "{filter}"
        );
        nonzero += from_counters
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["count"] != 0)
            .count();
    }
    assert!(nonzero > 3, "the windows hold actions");
    // totalCount beside a page reads the same counters.
    let body = app
        .gql(
            &token,
            "query($f: ActionFilter) { actions(filter: $f, first: 1) { totalCount } }",
            json!({"f": {"createdAfter": at(24.0)}}),
        )
        .await;
    let expected: i64 = counts(&app, &token, json!({"createdAfter": at(24.0)}))
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_i64().unwrap())
        .sum();
    assert_eq!(body["data"]["actions"]["totalCount"], json!(expected));
}

async fn recount_repairs_counters_that_drifted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("recount");
    for i in 0..5 {
        app.invoke(&token, "blockIp", "ip", &format!("10.8.{i}.1"))
            .await;
    }
    let before = counts(&app, &token, json!({})).await;
    sql(&app)
        .await
        .execute_unprepared("UPDATE action_counters SET n = n + 3")
        .await
        .expect("the update runs");
    assert!(!app.store.counter_drift().await.unwrap().is_empty());
    assert_ne!(counts(&app, &token, json!({})).await, before);
    let wrong = app.store.recount().await.expect("the recount runs");
    assert!(wrong >= 3, "all, day and hour counters were wrong: {wrong}");
    assert_exact(&app.store).await;
    assert_eq!(counts(&app, &token, json!({})).await, before);
}

crate::on_both_backends!(
    counters_stay_exact_under_concurrent_changes_on_two_replicas,
    time_windows_add_whole_days_hours_and_edges_exactly,
    recount_repairs_counters_that_drifted,
);
