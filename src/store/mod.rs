//! The store: the only code that talks to the database.
//!
//! It takes and returns domain types; sea-orm models stay inside. Every function
//! that serves a caller takes the caller's tenant and scopes the query by it, so
//! one tenant's id never reaches another tenant's rows. The executor's queue
//! (`work`) and the event relay (`events`) work across tenants and hand nothing
//! to a caller unscoped.
//!
//! `invoke` stores new actions, `read` reads them back (and `parts` their
//! parameters and states in the same statement), `counts` counts them
//! (from the counters the database keeps with every change), `cancel` cancels,
//! `work` is the executor's queue, `closing` records how a batch of its
//! attempts ended, `transition` the one way statuses change,
//! `events` numbers and reads the state history as events, and `notify` carries
//! PostgreSQL `LISTEN`/`NOTIFY` between replicas, and `budget` the call budget
//! that rate-limited providers share across replicas.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    QueryResult, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait, Value,
};
use tokio::sync::Notify;
use tracing::info;

use crate::error::AppError;

mod budget;
mod cancel;
mod closing;
mod connect;
mod counts;
pub mod entities;
mod events;
mod fields;
mod filter_sql;
mod invoke;
mod notify;
mod parts;
mod read;
mod rows;
mod secrets;
mod sql;
mod stale;
mod transition;
mod work;

pub(crate) use budget::{BudgetLimits, CallKind};
pub(crate) use cancel::CancelOutcome;
pub(crate) use closing::Closing;
pub use counts::CounterDrift;
pub(crate) use events::StoredEvent;
pub(crate) use fields::FieldsWanted;
pub(crate) use invoke::Invoked;
pub(crate) use parts::{Parts, PartsWanted};
pub(crate) use read::{ActionPage, Side};
pub(crate) use work::{AfterWork, Claim, Group, Lease, Work};

/// Settings of the connection pool.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a query may run before the database cancels it.
    pub statement_timeout: Duration,
    /// A pooled connection idle this long is pinged before it is handed out;
    /// busier ones are not (a ping per statement is a round trip per
    /// statement). sqlx also tests each connection as it goes back to the
    /// pool and drops a broken one, so a connection the server closed fails
    /// at most the one statement that found it broken.
    pub ping_idle_after: Duration,
    /// Largest the SQLite database may grow, in bytes (counted in pages of
    /// [`SQLITE_PAGE_BYTES`]); past it writes fail as on a full disk while
    /// reads go on. `None`: as large as the disk allows.
    pub sqlite_max_bytes: Option<u64>,
}

/// How the gateway's PostgreSQL sessions name themselves (`application_name`,
/// in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "actiongate";
/// How the sessions of the pool that keeps one plan per statement name
/// themselves: those serving list pages and counts whose plan cannot depend
/// on their values (README, "List pages").
pub const PLANNED_ONCE_APPLICATION_NAME: &str = "actiongate-planned-once";

/// The page size of SQLite databases the gateway creates.
pub(crate) const SQLITE_PAGE_BYTES: u64 = 4096;

impl StoreOptions {
    /// The defaults, also those of the command line.
    pub(crate) const DEFAULT: StoreOptions = StoreOptions {
        max_connections: 16,
        statement_timeout: Duration::from_secs(10),
        ping_idle_after: Duration::from_secs(5),
        sqlite_max_bytes: None,
    };
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions::DEFAULT
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// PostgreSQL: a pool for the reads whose best plan is the same whatever
    /// their values (see [`Store::reads_planned_once`]).
    planned_once: Option<DatabaseConnection>,
    queries: Arc<AtomicU64>,
    /// Signalled after every commit that appended state rows, so the event
    /// relay numbers them at once.
    states_appended: Arc<Notify>,
    /// What other replicas announced (PostgreSQL).
    notices: Arc<notify::Notices>,
    /// When the server last dropped a connection (PostgreSQL; see `stale`).
    losses: Arc<stale::Losses>,
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`). On SQLite it turns on
    /// WAL with a sync at every commit, a busy timeout and foreign keys. A
    /// server that cannot be reached is tried again a few times; the error
    /// says what failed and what to do, for the operator starting the gateway.
    ///
    /// A connection whose transaction did not end cleanly is never handed out
    /// again: a failed `COMMIT` (a full disk, a deferred constraint) is
    /// followed by a `ROLLBACK`, and when that fails too (SQLite has already
    /// rolled back by itself) the connection still counts as inside a
    /// transaction. Reused, it would nest the next transaction in a
    /// savepoint of one that never commits, hold the write lock for ever and
    /// lose every write made on it. The pool closes such a connection before
    /// anyone acquires it, and opens a fresh one.
    pub(crate) async fn connect(url: &str, options: &StoreOptions) -> Result<Store, String> {
        let target = connect::Target::parse(url)?;
        let mut connect = ConnectOptions::new(url.to_owned());
        connect
            .max_connections(options.max_connections)
            .min_connections(1)
            .connect_timeout(connect::CONNECT_TIMEOUT)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire_if_idle_for(options.ping_idle_after)
            .set_application_name(APPLICATION_NAME)
            .sqlx_logging(false);
        let is_sqlite = matches!(target, connect::Target::Sqlite { .. });
        let losses = Arc::new(stale::Losses::new());
        if is_sqlite {
            let busy = options.statement_timeout;
            let max_pages = options
                .sqlite_max_bytes
                .map(|bytes| (bytes / SQLITE_PAGE_BYTES).max(1));
            connect.map_sqlx_sqlite_opts(move |opts| {
                let opts = opts
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .page_size(SQLITE_PAGE_BYTES as u32)
                    // Acknowledged means durable: a commit reaches the disk
                    // before it returns, so neither a crash of the machine
                    // nor a power cut loses an action a client was told is
                    // stored, nor the claim the executor commits before it
                    // calls a provider (which would leave a block applied
                    // for an action the database no longer holds).
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                    .busy_timeout(busy)
                    .foreign_keys(true);
                match max_pages {
                    Some(pages) => opts.pragma("max_page_count", pages.to_string()),
                    None => opts,
                }
            });
            connect.map_sqlx_sqlite_before_acquire(|connection, _| {
                Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(connection)) })
            });
        } else {
            connect.statement_timeout(options.statement_timeout);
            let losses = losses.clone();
            connect.map_sqlx_postgres_before_acquire(move |connection, meta| {
                let fresh = !losses.predates_last(meta.age);
                Box::pin(
                    async move { Ok(fresh && !sqlx::Connection::is_in_transaction(connection)) },
                )
            });
        }
        // PostgreSQL plans a prepared statement afresh at every execution
        // while its generic plan, costed without the values, looks dearer
        // than the plans made for them; a list page's does (its `LIMIT` is a
        // value), so every page paid 0.3 ms of planning for 0.6 ms of
        // executing. A quarter of the connections keep one generic plan per
        // statement (`plan_cache_mode`), for the reads whose plan cannot
        // depend on their values; together the pools open at most
        // `max_connections`.
        let planned_once_connections = match is_sqlite {
            true => 0,
            false => options.max_connections / 4,
        };
        let planned_once = match planned_once_connections {
            0 => None,
            n => {
                let mut planned_once = connect.clone();
                planned_once
                    .max_connections(n)
                    .min_connections(0)
                    .set_application_name(PLANNED_ONCE_APPLICATION_NAME)
                    .map_sqlx_postgres_opts(|opts| {
                        // A generic plan's estimate, made without the values,
                        // can pass `jit_above_cost` or the costs that start
                        // parallel workers: compiling would cost 40 ms at every
                        // execution of a 0.5 ms page, and starting workers 8 ms
                        // at every count of the last 24 hours.
                        opts.options([
                            ("plan_cache_mode", "force_generic_plan"),
                            ("jit", "off"),
                            ("max_parallel_workers_per_gather", "0"),
                        ])
                    });
                connect.max_connections(options.max_connections - n);
                Some(planned_once)
            }
        };
        target.wait_until_reachable(url).await?;
        let mut db = Database::connect(connect)
            .await
            .map_err(|err| target.explain(&err))?;
        let mut planned_once = match planned_once {
            Some(options) => Some(
                Database::connect(options)
                    .await
                    .map_err(|err| target.explain(&err))?,
            ),
            None => None,
        };
        let queries = Arc::new(AtomicU64::new(0));
        for db in std::iter::once(&mut db).chain(planned_once.as_mut()) {
            let counter = queries.clone();
            db.set_metric_callback(move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::metrics::db_query();
            });
        }
        info!(backend = ?db.get_database_backend(), "database connected");
        Ok(Store {
            db,
            planned_once,
            queries,
            states_appended: Arc::new(Notify::new()),
            notices: Arc::new(notify::Notices::new()),
            losses,
        })
    }

    /// Applies every pending migration. On PostgreSQL an advisory lock makes
    /// replicas that start together migrate one after the other.
    pub async fn migrate(&self) -> Result<(), AppError> {
        use migrations::MigratorTrait;
        match self.backend() {
            DbBackend::Postgres => {
                let txn = self.db.begin().await?;
                txn.execute_unprepared("SELECT pg_advisory_xact_lock(7367021865)")
                    .await?;
                migrations::Migrator::up(&txn, None).await?;
                txn.commit().await?;
            }
            _ => migrations::Migrator::up(&self.db, None).await?,
        }
        Ok(())
    }

    /// Connections of the pools together: in use, idle, and the most they open.
    pub(crate) fn pool_state(&self) -> (u32, u32, u32) {
        let (mut size, mut idle, mut max) = (0, 0, 0);
        for db in std::iter::once(&self.db).chain(&self.planned_once) {
            let (s, i, m) = match self.backend() {
                DbBackend::Postgres => {
                    let pool = db.get_postgres_connection_pool();
                    (
                        pool.size(),
                        pool.num_idle() as u32,
                        pool.options().get_max_connections(),
                    )
                }
                _ => {
                    let pool = db.get_sqlite_connection_pool();
                    (
                        pool.size(),
                        pool.num_idle() as u32,
                        pool.options().get_max_connections(),
                    )
                }
            };
            (size, idle, max) = (size + s, idle + i, max + m);
        }
        (size.saturating_sub(idle), idle, max)
    }

    /// Whether the database answers.
    pub(crate) async fn ping(&self) -> Result<(), AppError> {
        self.db.ping().await.map_err(AppError::from)
    }

    /// Queries run since start, for `/metrics` and tests of batching.
    pub fn queries_executed(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// The database as OpenTelemetry's `db.system` names it, for the spans
    /// of the statement groups below.
    fn db_system(&self) -> &'static str {
        match self.backend() {
            DbBackend::Postgres => "postgresql",
            DbBackend::Sqlite => "sqlite",
            _ => "other_sql",
        }
    }

    pub(crate) fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The connection for a read whose best plan is the same whatever its
    /// values: on PostgreSQL, one that plans each statement once and keeps
    /// the plan, instead of planning it at every execution (the default
    /// when the generic plan's estimate looks dearer, as a page's does: its
    /// `LIMIT` is a value). Only for statements an index answers whatever
    /// the values, reading no more than they return: a page an index holds
    /// in its order, and a count from counters (whose edges, shorter than
    /// an hour, are ranges of an index too); any other keeps the plans made
    /// for its values.
    pub(crate) fn reads_planned_once(&self) -> &DatabaseConnection {
        self.planned_once.as_ref().unwrap_or(&self.db)
    }

    /// Runs `sql`, written for PostgreSQL with `$n` placeholders for
    /// `values`, and returns its rows.
    pub(super) async fn query_postgres(
        &self,
        sql: String,
        values: Vec<Value>,
    ) -> Result<Vec<QueryResult>, AppError> {
        let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
        Ok(self.db.query_all_raw(statement).await?)
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock
    /// at once (`BEGIN IMMEDIATE`), so it waits for other writers instead of
    /// failing when it upgrades from reading.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction, AppError> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        let asked = std::time::Instant::now();
        let txn = self.db.begin_with_options(options).await?;
        crate::telemetry::metrics::db_acquired(asked.elapsed());
        Ok(txn)
    }

    /// Commits a transaction that appended state rows and wakes the relay.
    pub(crate) async fn commit_appended(&self, txn: DatabaseTransaction) -> Result<(), AppError> {
        txn.commit().await?;
        self.states_appended.notify_one();
        Ok(())
    }

    /// Resolves when state rows were appended since the last call.
    pub(crate) async fn states_appended(&self) {
        self.states_appended.notified().await;
    }

    /// The sqlx pool of a PostgreSQL store, for `LISTEN`.
    pub(crate) fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        match self.backend() {
            DbBackend::Postgres => Some(self.db.get_postgres_connection_pool()),
            _ => None,
        }
    }

    /// Closes every connection of the pools.
    pub(crate) async fn close(self) {
        for db in std::iter::once(self.db).chain(self.planned_once) {
            if let Err(err) = db.close().await {
                tracing::warn!(error = %err, "closing the database pool");
            }
        }
    }
}
