//! A bad day for the database: the disk fills up, commits fail, writes wait
//! too long. Nothing a client was told is stored may be lost, no block may be
//! applied for an action that is not stored, no work done twice for it, and
//! the gateway recovers by itself when the fault clears.

use std::collections::BTreeSet;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_no_errors, eventually, statuses, writer};
use crate::receivers::{Reply, WebhookReceiver};

const INVOKE: &str = "mutation($ip: String!) { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: $ip}]}) { id } }";

/// What became of one invoke.
enum Invoked {
    /// The client was told the action is stored.
    Acknowledged { id: String, ip: String },
    /// The client was told it failed.
    Refused,
}

/// Invokes `blockIp` on `ip`; a refusal must be an internal error that says
/// nothing of the database.
async fn invoke(app: &TestApp, token: &str, ip: &str) -> Invoked {
    let body = app.gql(token, INVOKE, json!({ "ip": ip })).await;
    match body["data"]["invokeAction"]["id"].as_str() {
        Some(id) => {
            assert_no_errors(&body);
            Invoked::Acknowledged {
                id: id.to_owned(),
                ip: ip.to_owned(),
            }
        }
        None => {
            assert_eq!(
                body["errors"][0]["extensions"]["code"], "INTERNAL_SERVER_ERROR",
                "{body}"
            );
            let text = body.to_string().to_lowercase();
            for leak in ["sqlite", "disk", "full", "constraint", "insert", "commit"] {
                assert!(!text.contains(leak), "'{leak}' reached the client: {body}");
            }
            Invoked::Refused
        }
    }
}

/// The lines of the tenant's `blocked-ip.txt`.
fn blocked_ips(app: &TestApp, tenant: &str) -> BTreeSet<String> {
    let file = app
        .data_path()
        .join(format!("blocklists/{tenant}/blocked-ip.txt"));
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// One number from a query of the test's own connection.
async fn number(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Checks what a client sees after a fault: every acknowledged action is
/// stored and carried out, and the blocklist holds exactly their IPs.
async fn assert_nothing_lost_and_nothing_orphaned(
    app: &TestApp,
    token: &str,
    acknowledged: &[(String, String)],
) {
    for (id, _) in acknowledged {
        app.wait_for_status(token, id, "COMPLETED").await;
    }
    let expected: BTreeSet<String> = acknowledged.iter().map(|(_, ip)| ip.clone()).collect();
    let stored = {
        let body = app
            .gql(
                token,
                "{ actions(first: 100) { totalCount nodes { id parameters { value } } } }",
                json!({}),
            )
            .await;
        assert_no_errors(&body);
        body["data"]["actions"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|node| node["parameters"][0]["value"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<String>>()
    };
    assert!(
        expected.is_subset(&stored),
        "acknowledged {expected:?}, stored {stored:?}"
    );
    let blocked = blocked_ips(app, "tenant-a");
    assert!(
        blocked.is_subset(&stored),
        "blocked {blocked:?} for actions that are not stored (stored {stored:?})"
    );
    assert_eq!(blocked, stored, "every stored action was carried out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sqlite_disk_loses_nothing_acknowledged_and_recovers_without_restart() {
    let backend = Backend::Sqlite;
    // Room for the schema and a little more; the test fills the rest.
    let max_pages: i64 = 400;
    let app = TestApp::builder(backend.clone())
        .with_executor()
        .configure(move |c| c.store.sqlite_max_bytes = Some(max_pages as u64 * 4096))
        .spawn()
        .await;
    let token = writer("tenant-a");
    let db = Database::connect(app.database.url.as_str()).await.unwrap();
    assert_eq!(number(&db, "PRAGMA page_size").await, 4096);

    // Fill the disk, from another connection (which has no cap), until a
    // few pages are left.
    db.execute_unprepared("CREATE TABLE filler (b BLOB)")
        .await
        .unwrap();
    for (blob, spare) in [(40_000, 40), (2_000, 6)] {
        while number(&db, "PRAGMA page_count").await < max_pages - spare {
            db.execute_unprepared(&format!("INSERT INTO filler VALUES (zeroblob({blob}))"))
                .await
                .unwrap();
        }
    }

    // Invoke until the disk is full, some at once.
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut next_ip = 0;
    while refused < 12 {
        assert!(next_ip < 2000, "the disk never filled");
        let batch: Vec<String> = (next_ip..next_ip + 4)
            .map(|i| format!("10.9.{}.{}", i / 250, i % 250 + 1))
            .collect();
        next_ip += 4;
        let results =
            futures_util::future::join_all(batch.iter().map(|ip| invoke(&app, &token, ip))).await;
        for result in results {
            match result {
                Invoked::Acknowledged { id, ip } => acknowledged.push((id, ip)),
                Invoked::Refused => refused += 1,
            }
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "some fitted before the disk filled"
    );

    // Space is freed: the gateway recovers without a restart.
    db.execute_unprepared("DELETE FROM filler").await.unwrap();
    let mut ip = 0;
    let first = eventually("an invoke to succeed once space is free", || {
        ip += 1;
        let ip = format!("10.10.0.{ip}");
        let (app, token) = (&app, &token);
        async move {
            match invoke(app, token, &ip).await {
                Invoked::Acknowledged { id, ip } => Some((id, ip)),
                Invoked::Refused => None,
            }
        }
    })
    .await;
    acknowledged.push(first);
    for i in 0..20 {
        match invoke(&app, &token, &format!("10.11.0.{}", i + 1)).await {
            Invoked::Acknowledged { id, ip } => acknowledged.push((id, ip)),
            Invoked::Refused => panic!("refused after recovery"),
        }
    }
    assert_nothing_lost_and_nothing_orphaned(&app, &token, &acknowledged).await;

    // And after a restart, everything acknowledged is still there.
    let database = app.database.clone();
    app.stop().await;
    let again = TestApp::builder(backend)
        .on_database(&database)
        .spawn()
        .await;
    for (id, _) in &acknowledged {
        let action = again.action(&token, id).await;
        assert_eq!(action["status"], "COMPLETED", "{id}");
    }
}

/// Makes every commit that appended a state row fail: on SQLite a row that
/// breaks a deferred foreign key (checked at `COMMIT`), on PostgreSQL a
/// deferred constraint trigger that raises `disk_full` at `COMMIT`.
async fn break_commits(db: &DatabaseConnection) {
    let statements: &[&str] = match db.get_database_backend() {
        DbBackend::Postgres => &[
            "CREATE FUNCTION fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$",
            "CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON action_states \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_commit()",
        ],
        _ => &[
            "CREATE TABLE fault_parent (id INTEGER PRIMARY KEY)",
            "CREATE TABLE fault_child (parent INTEGER REFERENCES fault_parent (id) \
             DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TRIGGER fail_commit AFTER INSERT ON action_states \
             BEGIN INSERT INTO fault_child VALUES (-1); END",
        ],
    };
    for statement in statements {
        db.execute_unprepared(statement).await.unwrap();
    }
}

/// Lets commits succeed again.
async fn mend_commits(db: &DatabaseConnection) {
    let statement = match db.get_database_backend() {
        DbBackend::Postgres => "DROP TRIGGER fail_commit ON action_states",
        _ => "DROP TRIGGER fail_commit",
    };
    db.execute_unprepared(statement).await.unwrap();
}

async fn failed_commits_are_rolled_back_and_the_gateway_recovers_when_they_succeed_again(
    backend: Backend,
) {
    let app = TestApp::builder(backend)
        .with_executor()
        .configure(|c| {
            c.store.max_connections = 4;
            c.executor.lease = Duration::from_secs(4);
        })
        .spawn()
        .await;
    let token = writer("tenant-a");
    let db = Database::connect(app.database.url.as_str()).await.unwrap();
    let mut acknowledged = Vec::new();
    for i in 1..=3 {
        match invoke(&app, &token, &format!("10.20.0.{i}")).await {
            Invoked::Acknowledged { id, ip } => acknowledged.push((id, ip)),
            Invoked::Refused => panic!("refused before the fault"),
        }
    }

    break_commits(&db).await;
    // More requests than connections, so every connection meets the fault.
    let during: Vec<String> = (1..=12).map(|i| format!("10.21.0.{i}")).collect();
    let results =
        futures_util::future::join_all(during.iter().map(|ip| invoke(&app, &token, ip))).await;
    for result in results {
        match result {
            Invoked::Acknowledged { id, ip } => acknowledged.push((id, ip)),
            Invoked::Refused => {}
        }
    }
    let stored_during = number(
        &db,
        "SELECT COUNT(*) FROM action_parameters WHERE value LIKE '10.21.%'",
    )
    .await;
    assert_eq!(
        stored_during,
        acknowledged.len() as i64 - 3,
        "what failed left nothing behind"
    );
    mend_commits(&db).await;

    // Every request succeeds again, on every connection of the pool.
    for i in 1..=12 {
        match invoke(&app, &token, &format!("10.22.0.{i}")).await {
            Invoked::Acknowledged { id, ip } => acknowledged.push((id, ip)),
            Invoked::Refused => panic!("refused after the fault cleared"),
        }
    }
    assert_nothing_lost_and_nothing_orphaned(&app, &token, &acknowledged).await;
    let body: Value = app
        .gql(&token, "{ actions { totalCount } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["actions"]["totalCount"],
        acknowledged.len(),
        "{body}"
    );
}

/// Holds, from another connection, what keeps the gateway from writing `id`'s
/// outcome: on PostgreSQL the action's row lock, on SQLite the write lock.
/// The transaction is rolled back when the returned value is dropped.
async fn hold_writes_to(db: &DatabaseConnection, id: &str) -> sea_orm::DatabaseTransaction {
    use sea_orm::TransactionTrait;
    let txn = db.begin().await.unwrap();
    let statement = match db.get_database_backend() {
        DbBackend::Postgres => format!("SELECT id FROM actions WHERE id = '{id}'::uuid FOR UPDATE"),
        // Any write takes SQLite's one write lock until the transaction ends.
        _ => "CREATE TABLE write_hold (x INTEGER)".to_owned(),
    };
    txn.execute_unprepared(&statement).await.unwrap();
    txn
}

/// The provider applied the action, but writing that down runs out of time
/// behind a lock held for several statement timeouts. The executor tries the
/// write again while its lease lasts: the action completes once the lock is
/// gone, and the provider is not called a second time (which it would be if
/// the outcome were dropped and the lease left to expire).
async fn an_outcome_that_cannot_be_written_in_time_is_written_once_the_database_lets_it(
    backend: Backend,
) {
    let receiver =
        WebhookReceiver::start(|_, _| Reply::slow(200, Duration::from_millis(1500))).await;
    let app = TestApp::builder(backend)
        .with_executor()
        .configure(|c| {
            c.store.statement_timeout = Duration::from_millis(400);
            c.executor.lease = Duration::from_secs(30);
        })
        .providers(&receiver.provider_toml("10s"))
        .spawn()
        .await;
    let token = writer("tenant-a");
    let db = Database::connect(app.database.url.as_str()).await.unwrap();
    let id = app.invoke(&token, "blockIp", "ip", "198.51.100.41").await;
    eventually("the execute request", || async {
        receiver.count(&id, "execute") == 1
    })
    .await;

    // The provider answers 1.5 s after the request; its outcome's first
    // writes run out of time behind the lock until it is let go at 4 s.
    let held = hold_writes_to(&db, &id).await;
    let before = app.action(&token, &id).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    held.rollback().await.unwrap();

    let completed = app.wait_for_status(&token, &id, "COMPLETED").await;
    assert_eq!(before["status"], "RUNNING", "{before}");
    assert_eq!(
        statuses(&completed),
        ["NOT_STARTED", "RUNNING", "COMPLETED"]
    );
    assert_eq!(
        receiver.count(&id, "execute"),
        1,
        "the outcome the provider gave was written, not the work done again"
    );
    let retries = crate::operations::total(
        &crate::operations::samples(&app.get_text("/metrics").await),
        "actiongate_executor_recording_retries_total",
        &[],
    );
    assert!(retries >= 1.0, "the write was tried again: {retries}");
}

crate::on_both_backends!(
    failed_commits_are_rolled_back_and_the_gateway_recovers_when_they_succeed_again,
    an_outcome_that_cannot_be_written_in_time_is_written_once_the_database_lets_it,
);
