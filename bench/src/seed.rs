//! `seed`: fills a database with a realistic history of actions, fast, so that
//! queries are measured against a table of production size.
//!
//! The schema comes from the gateway's own migrations, and the table and
//! column names, the catalog, the status names and the executor's app and
//! user from the gateway itself, so seeded rows read as the gateway's. Rows
//! are written with multi-row `INSERT`s, each under the backend's
//! bound-parameter limit, inside one transaction per batch of actions; ids are
//! bound as UUIDs, so SQLite stores them as 16-byte BLOBs exactly as the
//! gateway does.
//!
//! The action counters fill themselves: the database's triggers count every
//! inserted row in its own transaction, as they do for the gateway's writes.
//!
//! Seeded actions are history, not queued work: `work`, `due_at` and the lease
//! columns stay NULL on every row, so a gateway started on the database never
//! executes them (a seeded `NotStarted` or `Running` action stays so for ever).
//!
//! Run it while no gateway writes to the database: it numbers the state rows
//! itself. The gateway leaves numbering (`seq`, the event cursor) to its event
//! relay, which numbers committed rows one transaction at a time so that a
//! reader's cursor never skips a row committed late; that care is about
//! concurrent writers and live readers. While the seeder runs it is the only
//! writer and nothing reads events, so it assigns consecutive numbers after the
//! current `MAX(seq)` itself, in the order it plans the rows, which is as safe
//! and far cheaper. On PostgreSQL several connections write batches at once
//! (`--jobs`); their numbers are still unique and consecutive overall.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use actiongate::entities::{action, parameter, state};
use actiongate::{
    ActionStatus, CATALOG, EXECUTOR_APP, EXECUTOR_USER, IndicatorKind, ParameterKind,
};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};
use sea_orm::{DatabaseConnection, EntityName, IdenStatic, Value};
use tokio::sync::mpsc;
use uuid::{NoContext, Timestamp, Uuid};

use crate::Error;

/// Bound parameters one SQLite statement may carry (`SQLITE_MAX_VARIABLE_NUMBER`).
const SQLITE_MAX_PARAMS: usize = 32_766;
/// Bound parameters one PostgreSQL statement may carry (a 16-bit count).
const POSTGRES_MAX_PARAMS: usize = 65_535;
/// Seeded history reaches this far back.
const HISTORY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Progress is printed every this many actions.
const PROGRESS_EVERY: u64 = 100_000;

/// `actiongate-bench seed`
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Database to fill: `sqlite://path?mode=rwc` or `postgres://…`.
    #[arg(long, env = "ACTIONGATE_DATABASE_URL")]
    pub database_url: String,
    /// How many actions to add.
    #[arg(long, default_value_t = 1_000_000)]
    pub actions: u64,
    /// Spread over tenants `tenant-0` … `tenant-<T-1>`, round-robin.
    #[arg(long, default_value_t = 10)]
    pub tenants: u32,
    /// Actions per transaction.
    #[arg(long, default_value_t = 5000)]
    pub batch: u64,
    /// Connections writing batches at once (PostgreSQL; SQLite always uses one).
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Seed of the random mix (statuses, names, timings), for repeatable data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The invoking app and user.
const APP: &str = "app-1";
const USER: &str = "analyst@example.com";

/// SplitMix64: a few lines of fast, well-spread randomness, which is all the
/// mix needs (and keeps it repeatable from `--seed`).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), close enough for a data mix.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `low..=high` microseconds.
    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1) as u64) as i64
    }

    fn hex64(&mut self) -> String {
        let words = [
            self.next_u64(),
            self.next_u64(),
            self.next_u64(),
            self.next_u64(),
        ];
        words.iter().map(|w| format!("{w:016x}")).collect()
    }
}

/// One state row to write.
#[derive(Debug, Clone, PartialEq)]
struct PlannedState {
    status: ActionStatus,
    previous: Option<ActionStatus>,
    by_executor: bool,
    at: i64,
}

/// One action and everything written for it.
#[derive(Debug, Clone)]
struct Planned {
    id: Uuid,
    tenant: String,
    name: &'static str,
    status: ActionStatus,
    fingerprint: String,
    parameters: Vec<(&'static str, String)>,
    states: Vec<PlannedState>,
    created_at: i64,
    last_action_at: i64,
    completed_at: Option<i64>,
    cancel_requested_at: Option<i64>,
    error: Option<(i32, &'static str)>,
}

/// The time window of the history, in microseconds since the epoch.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    now: i64,
}

/// Plans action `i` of `total`. Creation times rise with `i` (each action in
/// its own equal slice of the window, at a random point in it): uniform over
/// the window, and in insertion order, so every `(tenant, …, created_at, id)`
/// index and the time-ordered v7 primary key grow at their ends, which keeps
/// bulk inserts fast.
fn plan(i: u64, total: u64, tenants: u32, window: Window, rng: &mut Rng) -> Planned {
    let span = (window.now - window.start).max(1) as u128;
    let slice_start = window.start + (span * i as u128 / total as u128) as i64;
    let slice_end = window.start + (span * (i as u128 + 1) / total as u128) as i64;
    let created_at = rng.between(slice_start, (slice_end - 1).max(slice_start));

    let definition = &CATALOG[rng.below(CATALOG.len() as u64) as usize];
    let kind = definition.indicator;
    let mut parameters = vec![(kind.parameter_name(), indicator(kind, i, rng))];
    if rng.below(100) < 30 {
        parameters.push((expiration_parameter(), "2030-01-01T00:00:00Z".to_owned()));
    }

    use ActionStatus::{Canceled, Completed, Failed, NotStarted, Running};
    let roll = rng.below(100);
    let status = match roll {
        0..70 => Completed,
        70..80 => Failed,
        80..90 => Running,
        90..95 => NotStarted,
        _ => Canceled,
    };
    // Canceled actions: half before they ran, half lifted after completing.
    let path: &[ActionStatus] = match status {
        NotStarted => &[NotStarted],
        Running => &[NotStarted, Running],
        Completed => &[NotStarted, Running, Completed],
        Failed => &[NotStarted, Running, Failed],
        _ if rng.below(2) == 0 => &[NotStarted, Canceled],
        _ => &[NotStarted, Running, Completed, Canceled],
    };

    let mut states = Vec::with_capacity(path.len());
    let mut at = created_at;
    let mut cancel_requested_at = None;
    for (step, &to) in path.iter().enumerate() {
        let previous = step.checked_sub(1).map(|p| path[p]);
        if step > 0 {
            let delay = match (previous, to) {
                (_, Running) => rng.between(20_000, 1_000_000),
                (_, Completed | Failed) => rng.between(50_000, 3_000_000),
                (Some(NotStarted), Canceled) => rng.between(1_000_000, 600_000_000),
                _ => rng.between(60_000_000, 7 * 86_400_000_000),
            };
            // Stay in the past, but always after the previous state.
            at = (at + delay).min(window.now.max(at + 1));
        }
        if to == Canceled {
            let requested = if previous == Some(NotStarted) {
                at
            } else {
                (at - rng.between(100_000, 2_000_000)).max(states_last(&states) + 1)
            };
            cancel_requested_at = Some(requested.min(at));
        }
        states.push(PlannedState {
            status: to,
            previous,
            // The analyst invokes and cancels what never ran; the executor
            // makes every other move.
            by_executor: !(to == NotStarted || (previous == Some(NotStarted) && to == Canceled)),
            at,
        });
    }
    let final_at = states_last(&states);
    let completed_at = matches!(status, Completed | Failed | Canceled).then_some(final_at);
    let error =
        (status == Failed).then_some((400, "the provider refused the indicator (HTTP 400)"));

    Planned {
        id: id_at(created_at),
        tenant: format!("tenant-{}", i % tenants as u64),
        name: definition.name,
        status,
        fingerprint: rng.hex64(),
        parameters,
        states,
        created_at,
        last_action_at: final_at,
        completed_at,
        cancel_requested_at,
        error,
    }
}

/// The name of the parameter that makes an action lapse.
fn expiration_parameter() -> &'static str {
    CATALOG[0]
        .parameters
        .iter()
        .find(|p| p.kind == ParameterKind::ExpirationDateTime)
        .map(|p| p.name)
        .expect("the catalog's actions take an expiry")
}

fn states_last(states: &[PlannedState]) -> i64 {
    states.last().map_or(i64::MIN, |s| s.at)
}

/// A v7 id carrying the creation time, as the gateway makes them.
fn id_at(micros: i64) -> Uuid {
    let micros = micros.max(0) as u64;
    let seconds = micros / 1_000_000;
    let nanos = (micros % 1_000_000) as u32 * 1000;
    Uuid::new_v7(Timestamp::from_unix(NoContext, seconds, nanos))
}

/// A valid indicator in the gateway's canonical form, varied by `i`.
fn indicator(kind: IndicatorKind, i: u64, rng: &mut Rng) -> String {
    match kind {
        IndicatorKind::Ip => format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
        IndicatorKind::Url => format!("https://host{}.example/path/{i}", i % 100_000),
        IndicatorKind::Domain => format!("host{i}.example"),
        IndicatorKind::FileHash => rng.hex64(),
    }
}

/// A column of a multi-row insert: bound per row, or the same literal in
/// every row (constants need no parameter slots).
#[derive(Debug, Clone, Copy)]
enum Column {
    Bind(&'static str),
    Literal(&'static str, &'static str),
}

/// A table the seeder fills, with the columns it writes, named as the
/// gateway's entities name them.
#[derive(Debug)]
struct Table {
    name: &'static str,
    columns: Vec<Column>,
}

static ACTIONS: LazyLock<Table> = LazyLock::new(|| {
    use action::Column as A;
    Table {
        name: action::Entity.table_name(),
        columns: vec![
            Column::Bind(A::Id.as_str()),
            Column::Bind(A::TenantId.as_str()),
            Column::Literal(A::AppId.as_str(), "'app-1'"),
            Column::Literal(A::UserName.as_str(), "'analyst@example.com'"),
            Column::Bind(A::Name.as_str()),
            Column::Literal(A::ActionReason.as_str(), "'seen in a phishing campaign'"),
            Column::Literal(A::Provider.as_str(), "'blocklist'"),
            Column::Literal(A::Vendor.as_str(), "'actiongate'"),
            Column::Bind(A::RequestFingerprint.as_str()),
            Column::Bind(A::Status.as_str()),
            Column::Bind(A::ErrorCode.as_str()),
            Column::Bind(A::ErrorMessage.as_str()),
            Column::Bind(A::CreatedAt.as_str()),
            Column::Bind(A::LastActionAt.as_str()),
            Column::Bind(A::CompletedAt.as_str()),
            Column::Bind(A::CancelRequestedAt.as_str()),
        ],
    }
});

static PARAMETERS: LazyLock<Table> = LazyLock::new(|| {
    use parameter::Column as P;
    Table {
        name: parameter::Entity.table_name(),
        columns: vec![
            Column::Bind(P::ActionId.as_str()),
            Column::Bind(P::Position.as_str()),
            Column::Bind(P::TenantId.as_str()),
            Column::Bind(P::Name.as_str()),
            Column::Bind(P::Value.as_str()),
        ],
    }
});

static STATES: LazyLock<Table> = LazyLock::new(|| {
    use state::Column as S;
    Table {
        name: state::Entity.table_name(),
        columns: vec![
            Column::Bind(S::Seq.as_str()),
            Column::Bind(S::ActionId.as_str()),
            Column::Bind(S::TenantId.as_str()),
            Column::Bind(S::AppId.as_str()),
            Column::Bind(S::UserName.as_str()),
            Column::Bind(S::Status.as_str()),
            Column::Bind(S::PreviousStatus.as_str()),
            Column::Bind(S::OccurredAt.as_str()),
        ],
    }
});

fn binds(table: &Table) -> usize {
    table
        .columns
        .iter()
        .filter(|c| matches!(c, Column::Bind(_)))
        .count()
}

/// `INSERT INTO table (…) VALUES (…), (…)` for `rows` rows, with the
/// backend's placeholders (`$n` on PostgreSQL, `?` on SQLite).
fn insert_sql(backend: DbBackend, table: &Table, rows: usize) -> String {
    let names: Vec<&str> = table
        .columns
        .iter()
        .map(|c| match c {
            Column::Bind(name) | Column::Literal(name, _) => *name,
        })
        .collect();
    let mut sql = format!("INSERT INTO {} ({}) VALUES ", table.name, names.join(", "));
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, column) in table.columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            match column {
                Column::Literal(_, literal) => sql.push_str(literal),
                Column::Bind(_) => {
                    n += 1;
                    match backend {
                        DbBackend::Postgres => sql.push_str(&format!("${n}")),
                        _ => sql.push('?'),
                    }
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// Values for one batch, row after row, in column order.
#[derive(Debug, Default)]
struct Rows {
    actions: Vec<Value>,
    parameters: Vec<Value>,
    states: Vec<Value>,
    parameter_rows: u64,
    state_rows: u64,
}

impl Rows {
    /// Adds `planned`, numbering its state rows from `*next_seq` on.
    fn push(&mut self, planned: Planned, next_seq: &mut i64) {
        let tenant = planned.tenant;
        self.actions.extend([
            Value::Uuid(Some(planned.id)),
            Value::String(Some(tenant.clone())),
            Value::String(Some(planned.name.to_owned())),
            Value::String(Some(planned.fingerprint)),
            Value::String(Some(planned.status.as_str().to_owned())),
            Value::Int(planned.error.map(|e| e.0)),
            Value::String(planned.error.map(|e| e.1.to_owned())),
            Value::BigInt(Some(planned.created_at)),
            Value::BigInt(Some(planned.last_action_at)),
            Value::BigInt(planned.completed_at),
            Value::BigInt(planned.cancel_requested_at),
        ]);
        for (position, (name, value)) in planned.parameters.into_iter().enumerate() {
            self.parameters.extend([
                Value::Uuid(Some(planned.id)),
                Value::Int(Some(position as i32)),
                Value::String(Some(tenant.clone())),
                Value::String(Some(name.to_owned())),
                Value::String(Some(value)),
            ]);
            self.parameter_rows += 1;
        }
        for state in planned.states {
            let (app, user) = if state.by_executor {
                (EXECUTOR_APP, EXECUTOR_USER)
            } else {
                (APP, USER)
            };
            self.states.extend([
                Value::BigInt(Some(*next_seq)),
                Value::Uuid(Some(planned.id)),
                Value::String(Some(tenant.clone())),
                Value::String(Some(app.to_owned())),
                Value::String(Some(user.to_owned())),
                Value::String(Some(state.status.as_str().to_owned())),
                Value::String(state.previous.map(|s| s.as_str().to_owned())),
                Value::BigInt(Some(state.at)),
            ]);
            *next_seq += 1;
            self.state_rows += 1;
        }
    }
}

/// One connection that writes batches.
struct Writer {
    db: DatabaseConnection,
    backend: DbBackend,
    max_params: usize,
}

impl Writer {
    async fn connect(url: &str) -> Result<Writer, Error> {
        let mut options = ConnectOptions::new(url.to_owned());
        // One connection each: the session settings below hold for every batch.
        options
            .max_connections(1)
            .min_connections(1)
            .sqlx_logging(false);
        let db = Database::connect(options)
            .await
            .map_err(|e| format!("connecting to {}: {e}", redact(url)))?;
        let backend = db.get_database_backend();
        let max_params = match backend {
            DbBackend::Postgres => {
                // A crash could lose the last batches, never corrupt: fine for
                // data that is re-seeded, and commits stop waiting for fsync.
                db.execute_unprepared("SET synchronous_commit TO OFF")
                    .await?;
                POSTGRES_MAX_PARAMS
            }
            DbBackend::Sqlite => {
                db.execute_unprepared(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144",
                )
                .await?;
                SQLITE_MAX_PARAMS
            }
            other => return Err(format!("unsupported database backend {other:?}").into()),
        };
        Ok(Writer {
            db,
            backend,
            max_params,
        })
    }

    /// Applies the gateway's migrations and returns the highest `seq` so far.
    async fn prepare(&self) -> Result<i64, Error> {
        use migrations::MigratorTrait;
        migrations::Migrator::up(&self.db, None)
            .await
            .map_err(|e| format!("migrating: {e}"))?;
        let head = self
            .db
            .query_one_raw(Statement::from_string(
                self.backend,
                "SELECT COALESCE(MAX(seq), 0) AS head FROM action_states",
            ))
            .await?
            .map(|row| row.try_get::<i64>("", "head"))
            .transpose()?
            .unwrap_or(0);
        Ok(head)
    }

    async fn write(&self, rows: Rows) -> Result<(), Error> {
        let txn = self.db.begin().await?;
        self.insert(&txn, &ACTIONS, rows.actions).await?;
        self.insert(&txn, &PARAMETERS, rows.parameters).await?;
        self.insert(&txn, &STATES, rows.states).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn insert<C: ConnectionTrait>(
        &self,
        db: &C,
        table: &Table,
        values: Vec<Value>,
    ) -> Result<(), Error> {
        let width = binds(table);
        let per_statement = (self.max_params / width).max(1);
        let total = values.len() / width;
        let mut values = values.into_iter();
        let mut done = 0;
        while done < total {
            let rows = (total - done).min(per_statement);
            let chunk: Vec<Value> = values.by_ref().take(rows * width).collect();
            let sql = insert_sql(self.backend, table, rows);
            db.execute_raw(Statement::from_sql_and_values(self.backend, sql, chunk))
                .await
                .map_err(|e| format!("inserting into {}: {e}", table.name))?;
            done += rows;
        }
        Ok(())
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub async fn run(args: SeedArgs) -> Result<(), Error> {
    if args.tenants == 0 || args.batch == 0 || args.jobs == 0 {
        return Err("--tenants, --batch and --jobs must be at least 1".into());
    }
    let first = Writer::connect(&args.database_url).await?;
    let head = first.prepare().await?;
    let backend = first.backend;
    // SQLite has one writer at a time: more connections would only wait.
    let jobs = if backend == DbBackend::Sqlite {
        1
    } else {
        args.jobs
    };
    let mut writers = vec![first];
    for _ in 1..jobs {
        writers.push(Writer::connect(&args.database_url).await?);
    }

    let now = chrono::Utc::now().timestamp_micros();
    let window = Window {
        start: now - HISTORY.as_micros() as i64,
        now,
    };
    let started = Instant::now();
    let committed = Arc::new(AtomicU64::new(0));
    let mut queues = Vec::with_capacity(jobs);
    let mut tasks = Vec::with_capacity(jobs);
    for writer in writers {
        // One batch queued per writer: generation stays just ahead of the
        // database without holding many batches in memory.
        let (queue, mut batches) = mpsc::channel::<(u64, Rows)>(1);
        queues.push(queue);
        let committed = committed.clone();
        let total = args.actions;
        tasks.push(tokio::spawn(async move {
            while let Some((actions, rows)) = batches.recv().await {
                writer.write(rows).await?;
                let before = committed.fetch_add(actions, Ordering::Relaxed);
                let after = before + actions;
                if after / PROGRESS_EVERY > before / PROGRESS_EVERY && after < total {
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!(
                        "{after} of {total} actions, {secs:.1} s, {:.0} actions/s",
                        after as f64 / secs
                    );
                }
            }
            Ok::<Writer, Error>(writer)
        }));
    }

    // Batches are planned here, in order, so state rows are numbered in the
    // order the actions were planned whichever writer commits them.
    let mut rng = Rng::new(args.seed);
    let mut next_seq = head + 1;
    let (mut parameter_rows, mut state_rows) = (0u64, 0u64);
    let mut done = 0;
    let mut turn = 0;
    while done < args.actions {
        let end = (done + args.batch).min(args.actions);
        let mut rows = Rows::default();
        for i in done..end {
            rows.push(
                plan(i, args.actions, args.tenants, window, &mut rng),
                &mut next_seq,
            );
        }
        parameter_rows += rows.parameter_rows;
        state_rows += rows.state_rows;
        if queues[turn % jobs].send((end - done, rows)).await.is_err() {
            // That writer failed; its error is reported below.
            break;
        }
        turn += 1;
        done = end;
    }
    drop(queues);
    let mut finished = Vec::with_capacity(jobs);
    let mut failure = None;
    for task in tasks {
        match task.await {
            Ok(Ok(writer)) => finished.push(writer),
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(format!("a writer stopped: {e}").into());
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let analyzed = Instant::now();
    // Fresh statistics, so the planner sees the seeded tables as they are; on
    // PostgreSQL also the visibility map, as autovacuum keeps it on a table
    // in service, so that counts are index-only scans as they would be.
    let writer = finished.first().ok_or("no writer finished")?;
    let refresh = match writer.db.get_database_backend() {
        sea_orm::DbBackend::Postgres => "VACUUM ANALYZE",
        _ => "ANALYZE",
    };
    writer.db.execute_unprepared(refresh).await?;
    let analyze = analyzed.elapsed().as_secs_f64();
    for writer in finished {
        writer.db.close().await?;
    }

    let backend = match backend {
        DbBackend::Postgres => "postgres",
        _ => "sqlite",
    };
    println!("backend: {backend}");
    println!("actions: {}", args.actions);
    println!("tenants: {}", args.tenants);
    println!("writers: {jobs}");
    println!("state rows: {state_rows}");
    println!("parameter rows: {parameter_rows}");
    println!("elapsed s: {elapsed:.2}");
    println!(
        "actions/s: {:.0}",
        args.actions as f64 / elapsed.max(f64::EPSILON)
    );
    println!("analyze s: {analyze:.2}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ActionStatus::{Canceled, Completed, Failed, NotStarted, Running};
    use actiongate::Indicator;

    fn window() -> Window {
        let now = 1_800_000_000_000_000;
        Window {
            start: now - HISTORY.as_micros() as i64,
            now,
        }
    }

    fn sample(n: u64) -> Vec<Planned> {
        let mut rng = Rng::new(7);
        (0..n).map(|i| plan(i, n, 3, window(), &mut rng)).collect()
    }

    #[test]
    fn state_paths_follow_the_lifecycle_and_end_in_the_status() {
        for p in sample(5000) {
            assert_eq!(p.states[0].status, NotStarted);
            assert_eq!(p.states[0].previous, None);
            assert!(!p.states[0].by_executor);
            assert_eq!(p.states.last().unwrap().status, p.status);
            for pair in p.states.windows(2) {
                assert_eq!(pair[1].previous, Some(pair[0].status));
                assert!(pair[0].status.can_become(pair[1].status));
                assert_ne!(pair[0].status, pair[1].status);
                assert!(pair[1].at > pair[0].at, "{p:?}");
            }
            assert_eq!(p.states[0].at, p.created_at);
            assert_eq!(p.last_action_at, p.states.last().unwrap().at);
            assert!(p.last_action_at >= p.created_at);
            let terminal = matches!(p.status, Completed | Failed | Canceled);
            assert_eq!(p.completed_at.is_some(), terminal);
            assert_eq!(p.error.is_some(), p.status == Failed);
            assert_eq!(p.cancel_requested_at.is_some(), p.status == Canceled);
            if let Some(requested) = p.cancel_requested_at {
                assert!(requested > p.created_at);
                assert!(requested <= p.last_action_at);
            }
        }
    }

    #[test]
    fn the_mix_is_close_to_the_target_shares() {
        let planned = sample(20_000);
        let share = |status: ActionStatus| {
            planned.iter().filter(|p| p.status == status).count() as f64 / planned.len() as f64
        };
        for (status, target) in [
            (Completed, 0.70),
            (Failed, 0.10),
            (Running, 0.10),
            (NotStarted, 0.05),
            (Canceled, 0.05),
        ] {
            let got = share(status);
            assert!((got - target).abs() < 0.02, "{status}: {got}");
        }
        let with_expiry = planned.iter().filter(|p| p.parameters.len() == 2).count() as f64
            / planned.len() as f64;
        assert!((with_expiry - 0.30).abs() < 0.02, "{with_expiry}");
        let lifted = planned
            .iter()
            .filter(|p| p.status == Canceled && p.states.len() == 4)
            .count();
        let canceled = planned.iter().filter(|p| p.status == Canceled).count();
        assert!(lifted > canceled / 3 && lifted < canceled * 2 / 3);
    }

    #[test]
    fn creation_times_rise_across_the_window_and_tenants_rotate() {
        let w = window();
        let planned = sample(1000);
        for pair in planned.windows(2) {
            assert!(pair[1].created_at > pair[0].created_at);
        }
        assert!(planned[0].created_at < w.start + HISTORY.as_micros() as i64 / 500);
        assert!(planned[999].created_at > w.now - HISTORY.as_micros() as i64 / 500);
        assert!(planned.iter().all(|p| p.last_action_at <= w.now + 10));
        assert_eq!(planned[0].tenant, "tenant-0");
        assert_eq!(planned[4].tenant, "tenant-1");
        let ids: std::collections::HashSet<Uuid> = planned.iter().map(|p| p.id).collect();
        assert_eq!(ids.len(), planned.len());
        assert_eq!(planned[10].id.get_version_num(), 7);
    }

    #[test]
    fn parameters_are_canonical_indicators_of_the_action() {
        for p in sample(2000) {
            let definition = CATALOG.iter().find(|d| d.name == p.name).unwrap();
            let (name, value) = &p.parameters[0];
            assert_eq!(*name, definition.indicator_parameter().name);
            let parsed = Indicator::parse(definition.indicator, value).unwrap();
            assert_eq!(&parsed.to_string(), value, "{} is not canonical", value);
            if let Some((name, value)) = p.parameters.get(1) {
                assert_eq!(*name, "expirationDateTime");
                assert!(chrono::DateTime::parse_from_rfc3339(value).is_ok());
            }
            assert_eq!(p.fingerprint.len(), 64);
        }
    }

    #[test]
    fn inserts_bind_every_non_literal_column_once() {
        let sql = insert_sql(DbBackend::Postgres, &PARAMETERS, 2);
        assert_eq!(
            sql,
            "INSERT INTO action_parameters (action_id, position, tenant_id, name, value) VALUES \
             ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10)"
        );
        let sql = insert_sql(DbBackend::Sqlite, &ACTIONS, 1);
        assert_eq!(sql.matches('?').count(), binds(&ACTIONS));
        assert!(sql.contains("'blocklist'"));

        let mut rows = Rows::default();
        let mut seq = 41;
        let mut rng = Rng::new(3);
        for i in 0..10 {
            rows.push(plan(i, 10, 2, window(), &mut rng), &mut seq);
        }
        assert_eq!(rows.actions.len(), 10 * binds(&ACTIONS));
        assert_eq!(rows.states.len() as u64, rows.state_rows * 8);
        assert_eq!(rows.parameters.len() as u64, rows.parameter_rows * 5);
        assert_eq!(seq, 41 + rows.state_rows as i64);
        assert_eq!(rows.states[0], Value::BigInt(Some(41)));
    }

    #[test]
    fn passwords_are_kept_out_of_messages() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("sqlite://x.db?mode=rwc"), "sqlite://x.db?mode=rwc");
    }
}
