//! Counts from counters: `actionCounts` and `totalCount` read the counters the
//! database keeps with every change, and those stay exact under concurrent
//! invokes, executions and cancels on two replicas; `actionCountsChanged`
//! pushes them live, across replicas, only when they change.

use std::sync::Arc;

use actiongate::Store;
use futures_util::future::join_all;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_no_errors, eventually, reader, writer};
use crate::ws_client::{TRANSPORT, WsClient};

const LIVE: &str =
    "subscription($filter: ActionFilter) { actionCountsChanged(filter: $filter) { status count } }";

/// The next counts pushed to subscription `id`.
async fn next_counts(client: &mut WsClient, id: &str) -> Value {
    let message = client.next_message().await;
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(message["id"], id, "{message}");
    assert!(message["payload"].get("errors").is_none(), "{message}");
    message["payload"]["data"]["actionCountsChanged"].clone()
}

/// The last counts pushed to each subscription of a client.
#[derive(Default)]
struct Latest(std::collections::HashMap<String, Vec<i64>>);

impl Latest {
    fn of(&self, id: &str) -> &[i64] {
        self.0.get(id).map(Vec::as_slice).unwrap_or_default()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// Reads pushes until `done` holds; each push must differ from the
    /// subscription's one before.
    async fn until(&mut self, client: &mut WsClient, done: impl Fn(&Latest) -> bool) {
        while !done(self) {
            let message = client.next_message().await;
            assert_eq!(message["type"], "next", "{message}");
            let id = message["id"].as_str().expect("an id").to_owned();
            let counts = by_status(&message["payload"]["data"]["actionCountsChanged"]);
            let before = self.0.insert(id.clone(), counts.clone());
            assert_ne!(
                before,
                Some(counts),
                "{id} pushed counts that did not change"
            );
        }
    }
}

/// Counts as `[NOT_STARTED, RUNNING, COMPLETED, FAILED, CANCELED]`.
fn by_status(counts: &Value) -> Vec<i64> {
    counts
        .as_array()
        .expect("a list of counts")
        .iter()
        .map(|c| c["count"].as_i64().expect("a count"))
        .collect()
}

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
    let is_postgres = matches!(backend, Backend::Postgres(_));
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
    // Both replicas fold the striped counter rows over and over meanwhile.
    let folding = [first.clone(), second.clone()].map(|app| {
        let writing = writing.abort_handle();
        tokio::spawn(async move {
            let (mut moved, mut gave_way) = (0, 0);
            while !writing.is_finished() {
                match app.store.fold_counters().await {
                    Ok(n) => moved += n,
                    Err(actiongate::AppError::Timeout(_)) => gave_way += 1,
                    Err(err) => panic!("folding counters: {err:?}"),
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            (moved, gave_way)
        })
    });
    // While they write, every snapshot of the counters is exact.
    while !writing.is_finished() {
        assert_exact(&first.store).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for task in writing.await.expect("the writers finish") {
        task.expect("a writer finishes");
    }
    let mut moved = 0;
    for fold in folding {
        let (n, gave_way) = fold.await.expect("a folder finishes");
        eprintln!("folded {n} counter rows; gave way to a writer {gave_way} times");
        moved += n;
    }
    if is_postgres {
        assert!(moved > 0, "the writers' striped rows were folded");
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
    if is_postgres {
        // Once changes stop, the gateway folds what is left on its own.
        let db = sql(&first).await;
        eventually("the gateway to fold the striped counter rows", || async {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM action_counters WHERE slot <> 0",
                ))
                .await
                .expect("the count runs")
                .expect("one row");
            let striped: i64 = row.try_get("", "n").unwrap();
            (striped == 0).then_some(()).ok_or(striped)
        })
        .await;
        assert_exact(&first.store).await;
    }
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

async fn live_counts_start_now_and_follow_changes_made_on_another_replica(backend: Backend) {
    let listening = TestApp::spawn(backend.clone()).await;
    let working = TestApp::builder(backend)
        .on_database(&listening.database)
        .spawn()
        .await;
    let token = writer("live");
    let first = working.invoke(&token, "blockIp", "ip", "10.7.0.1").await;
    let mut client = WsClient::connect(&listening, TRANSPORT, &reader("live")).await;
    client.subscribe("all", LIVE, json!({})).await;
    client
        .subscribe("blocks", LIVE, json!({"filter": {"name": ["blockIp"]}}))
        .await;
    client
        .subscribe("urls", LIVE, json!({"filter": {"name": ["allowUrl"]}}))
        .await;
    let mut latest = Latest::default();
    latest.until(&mut client, |l| l.len() == 3).await;
    assert_eq!(
        latest.of("all"),
        [1, 0, 0, 0, 0],
        "the counts now come first"
    );
    assert_eq!(latest.of("blocks"), [1, 0, 0, 0, 0]);
    assert_eq!(latest.of("urls"), [0, 0, 0, 0, 0]);
    assert_eq!(listening.events.count_watchers(), 3);

    // Changes on the other replica: two invokes and a cancel.
    for i in 2..4 {
        working
            .invoke(&token, "blockIp", "ip", &format!("10.7.0.{i}"))
            .await;
    }
    working.cancel(&token, &first).await;
    latest
        .until(&mut client, |l| {
            l.of("all") == [2, 0, 0, 0, 1] && l.of("blocks") == [2, 0, 0, 0, 1]
        })
        .await;
    assert_eq!(
        latest.of("urls"),
        [0, 0, 0, 0, 0],
        "untouched counts are not pushed"
    );
    // An event may reach a watcher after its read already saw the change,
    // and owe one more read (finding nothing new): wait until the reads
    // settle (a watcher that polled never would), then nothing changes and
    // nothing is pushed or counted.
    let settled = eventually("the live-count reads to settle", || async {
        let before = listening.events.live_count_reads();
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let after = listening.events.live_count_reads();
        (before == after).then_some(after)
    })
    .await;
    client
        .assert_quiet(std::time::Duration::from_millis(1200))
        .await;
    assert_eq!(
        listening.events.live_count_reads(),
        settled,
        "no counting while nothing changes"
    );

    // A second subscriber of the same counts shares the watcher, and gets
    // the counts now.
    let mut other = WsClient::connect(&working, TRANSPORT, &reader("live")).await;
    other.subscribe("all", LIVE, json!({})).await;
    assert_eq!(
        by_status(&next_counts(&mut other, "all").await),
        [2, 0, 0, 0, 1]
    );
    let mut again = WsClient::connect(&listening, TRANSPORT, &reader("live")).await;
    again.subscribe("all", LIVE, json!({})).await;
    assert_eq!(
        by_status(&next_counts(&mut again, "all").await),
        [2, 0, 0, 0, 1]
    );
    assert_eq!(listening.events.count_watchers(), 3);
    working
        .invoke(&token, "allowUrl", "url", "https://example.com/x")
        .await;
    assert_eq!(
        by_status(&next_counts(&mut again, "all").await),
        [3, 0, 0, 0, 1]
    );
    latest
        .until(&mut client, |l| {
            l.of("urls") == [1, 0, 0, 0, 0] && l.of("all") == [3, 0, 0, 0, 1]
        })
        .await;
    assert_eq!(
        latest.of("blocks"),
        [2, 0, 0, 0, 1],
        "blockIp counts did not change"
    );
    // Watchers end with their last subscriber.
    client.close().await;
    again.close().await;
    eventually("the watchers to end", || async {
        listening.events.count_watchers() == 0
    })
    .await;
}

async fn live_counts_refuse_a_malformed_filter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut client = WsClient::connect(&app, TRANSPORT, &writer("live")).await;
    client
        .subscribe("bad", LIVE, json!({"filter": {"name": ["noSuchAction"]}}))
        .await;
    let message = client.next_message().await;
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(
        message["payload"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{message}"
    );
    assert_eq!(app.events.count_watchers(), 0);
}

crate::on_both_backends!(
    live_counts_start_now_and_follow_changes_made_on_another_replica,
    live_counts_refuse_a_malformed_filter,
    counters_stay_exact_under_concurrent_changes_on_two_replicas,
    time_windows_add_whole_days_hours_and_edges_exactly,
    recount_repairs_counters_that_drifted,
);
