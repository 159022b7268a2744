//! Counters of actions, kept by the database in the same transaction as every
//! change, so that counts cost the same at 1 action or 10 million.
//!
//! `action_counters` holds, per tenant, status, action name and provider, how
//! many actions there are over three spans of `created_at`: all time
//! ([`SPAN_ALL`], bucket 0), per UTC day ([`SPAN_DAY`], bucket = days since the
//! epoch) and per hour ([`SPAN_HOUR`], bucket = hours since the epoch). A time
//! window is read as whole days, whole hours and two edges shorter than an hour
//! counted from `actions` itself.
//!
//! Triggers keep the counters, not the gateway's code: every write that adds,
//! moves or removes an action (an invoke, a transition, the executor's batched
//! claim, the bench seeder, an operator's `DELETE`) changes them in its own
//! transaction, and no write path can forget to. On PostgreSQL they are
//! statement triggers with transition tables: one upsert per statement, its
//! keys sorted so concurrent writers lock counter rows in one order (no
//! deadlock), into one of [`SLOTS`] striped rows per key chosen by the
//! connection, so writers on different connections rarely wait on the same row.
//! Readers sum the slots. SQLite has one writer at a time, so its row triggers
//! use slot 0.
//!
//! [`FILL_COUNTERS`] rebuilds them from `actions`; this migration uses it for
//! the rows already there, `actiongate migrate --recount` to repair.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000001_action_counters"
    }
}

/// The counters table.
pub const COUNTERS_TABLE: &str = "action_counters";
/// `span` of the all-time counters (their `bucket` is 0).
pub const SPAN_ALL: i32 = 0;
/// `span` of the per-day counters (`bucket` = `created_at / DAY_MICROS`).
pub const SPAN_DAY: i32 = 1;
/// `span` of the per-hour counters (`bucket` = `created_at / HOUR_MICROS`).
pub const SPAN_HOUR: i32 = 2;
/// An hour in microseconds, the unit of `created_at`.
pub const HOUR_MICROS: i64 = 3_600_000_000;
/// A day in microseconds.
pub const DAY_MICROS: i64 = 24 * HOUR_MICROS;
/// Striped rows per counter key on PostgreSQL.
pub const SLOTS: i32 = 8;

#[derive(DeriveIden)]
enum ActionCounters {
    Table,
    TenantId,
    Span,
    Bucket,
    Status,
    Name,
    Provider,
    Slot,
    N,
}

/// The key columns, in the order of the primary key (and of upserts).
pub(crate) const KEY: &str = "tenant_id, span, bucket, status, name, provider, slot";

/// The bucket of `created_at` (a column expression) in the span `span` (a
/// column expression).
fn bucket(span: &str, created_at: &str) -> String {
    format!(
        "CASE {span} WHEN {SPAN_ALL} THEN 0 WHEN {SPAN_DAY} THEN {created_at} / {DAY_MICROS} \
         ELSE {created_at} / {HOUR_MICROS} END"
    )
}

/// The spans as a table `spans(span)`.
fn spans() -> String {
    format!(
        "(SELECT {SPAN_ALL} AS span UNION ALL SELECT {SPAN_DAY} UNION ALL SELECT {SPAN_HOUR}) AS spans"
    )
}

/// Rebuilds the counters from `actions` into an empty counters table (both
/// backends; slot 0).
pub static FILL_COUNTERS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let bucket = bucket("spans.span", "a.created_at");
    format!(
        "INSERT INTO {COUNTERS_TABLE} ({KEY}, n) \
         SELECT a.tenant_id, spans.span, {bucket}, a.status, a.name, a.provider, 0, COUNT(*) \
         FROM actions AS a CROSS JOIN {spans} \
         GROUP BY a.tenant_id, spans.span, {bucket}, a.status, a.name, a.provider",
        spans = spans(),
    )
});

/// The key columns but the slot.
const KEY_BUT_SLOT: &str = "tenant_id, span, bucket, status, name, provider";

/// PostgreSQL: moves up to `$1` counter rows of slots 1 and up into slot 0
/// of their key, in one statement, and returns how many it moved (`moved`).
/// Rows a writer holds are skipped; the deleted rows' sum is added to slot 0
/// in the same statement, so every snapshot sums to the same totals. The
/// slot-0 upserts go in key order, as the triggers' do.
pub static FOLD_SLOTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH picked AS ( \
           SELECT {KEY} FROM {COUNTERS_TABLE} WHERE slot <> 0 \
           ORDER BY {KEY} LIMIT $1 FOR UPDATE SKIP LOCKED \
         ), moved AS ( \
           DELETE FROM {COUNTERS_TABLE} AS c USING picked AS p \
           WHERE ({c_key}) = ({p_key}) \
           RETURNING {c_key_but_slot}, c.n \
         ), folded AS ( \
           INSERT INTO {COUNTERS_TABLE} AS c ({KEY}, n) \
           SELECT {KEY_BUT_SLOT}, 0, SUM(n) FROM moved \
           GROUP BY {KEY_BUT_SLOT} HAVING SUM(n) <> 0 ORDER BY {KEY_BUT_SLOT} \
           ON CONFLICT ({KEY}) DO UPDATE SET n = c.n + EXCLUDED.n \
           RETURNING 1 \
         ) \
         SELECT CAST(COUNT(*) AS BIGINT) AS moved FROM moved",
        c_key = qualified("c", KEY),
        p_key = qualified("p", KEY),
        c_key_but_slot = qualified("c", KEY_BUT_SLOT),
    )
});

/// `columns` (a comma-separated list) each prefixed with `alias.`.
fn qualified(alias: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|column| format!("{alias}.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every counter key whose counters do not add up to the actions it counts,
/// with the difference (`drift` = counted − actual): empty when they are exact.
/// Read in one statement, so it compares one snapshot even while writers run.
pub static COUNTER_DRIFT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let bucket = bucket("spans.span", "a.created_at");
    format!(
        "SELECT tenant_id, span, bucket, status, name, provider, CAST(SUM(n) AS BIGINT) AS drift FROM ( \
           SELECT tenant_id, span, bucket, status, name, provider, n FROM {COUNTERS_TABLE} \
           UNION ALL \
           SELECT a.tenant_id, spans.span, {bucket} AS bucket, a.status, a.name, a.provider, -COUNT(*) \
           FROM actions AS a CROSS JOIN {spans} \
           GROUP BY a.tenant_id, spans.span, {bucket}, a.status, a.name, a.provider \
         ) AS k GROUP BY tenant_id, span, bucket, status, name, provider \
         HAVING SUM(n) <> 0 \
         ORDER BY tenant_id, span, bucket, status, name, provider",
        spans = spans(),
    )
});

/// PostgreSQL: a function that folds the rows of `deltas` (a query of
/// `tenant_id, status, name, provider, created_at, d`) into the counters.
fn postgres_function(name: &str, deltas: &str) -> String {
    let bucket = bucket("spans.span", "x.created_at");
    format!(
        "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $body$ \
         BEGIN \
           INSERT INTO {COUNTERS_TABLE} AS c ({KEY}, n) \
           SELECT x.tenant_id, spans.span, {bucket}, x.status, x.name, x.provider, \
                  pg_backend_pid() % {SLOTS}, SUM(x.d) \
           FROM ({deltas}) AS x CROSS JOIN {spans} \
           GROUP BY x.tenant_id, spans.span, {bucket}, x.status, x.name, x.provider \
           HAVING SUM(x.d) <> 0 \
           ORDER BY 1, 2, 3, 4, 5, 6 \
           ON CONFLICT ({KEY}) DO UPDATE SET n = c.n + EXCLUDED.n; \
           RETURN NULL; \
         END $body$",
        spans = spans(),
    )
}

/// The columns a counter key is made of, as read from a row alias.
fn key_of(alias: &str) -> String {
    format!("{alias}.tenant_id, {alias}.status, {alias}.name, {alias}.provider, {alias}.created_at")
}

fn postgres_statements() -> Vec<String> {
    let changed = "(o.tenant_id, o.status, o.name, o.provider, o.created_at) \
                   IS DISTINCT FROM (n.tenant_id, n.status, n.name, n.provider, n.created_at)";
    vec![
        postgres_function(
            "action_counters_inserted",
            &format!("SELECT {}, 1 AS d FROM new_rows AS n", key_of("n")),
        ),
        postgres_function(
            "action_counters_updated",
            &format!(
                "SELECT {old}, -1 AS d FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id WHERE {changed} \
                 UNION ALL \
                 SELECT {new}, 1 AS d FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id WHERE {changed}",
                old = key_of("o"),
                new = key_of("n"),
            ),
        ),
        postgres_function(
            "action_counters_deleted",
            &format!("SELECT {}, -1 AS d FROM old_rows AS o", key_of("o")),
        ),
        "CREATE TRIGGER action_counters_inserted AFTER INSERT ON actions \
         REFERENCING NEW TABLE AS new_rows \
         FOR EACH STATEMENT EXECUTE FUNCTION action_counters_inserted()"
            .to_owned(),
        "CREATE TRIGGER action_counters_updated AFTER UPDATE ON actions \
         REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows \
         FOR EACH STATEMENT EXECUTE FUNCTION action_counters_updated()"
            .to_owned(),
        "CREATE TRIGGER action_counters_deleted AFTER DELETE ON actions \
         REFERENCING OLD TABLE AS old_rows \
         FOR EACH STATEMENT EXECUTE FUNCTION action_counters_deleted()"
            .to_owned(),
    ]
}

/// SQLite: an upsert adding `d` to the counters of the row `row` (`NEW` or `OLD`).
fn sqlite_upsert(row: &str, d: i32) -> String {
    let bucket = bucket("spans.span", &format!("{row}.created_at"));
    format!(
        "INSERT INTO {COUNTERS_TABLE} ({KEY}, n) \
         SELECT {row}.tenant_id, spans.span, {bucket}, {row}.status, {row}.name, {row}.provider, 0, {d} \
         FROM {spans} WHERE true \
         ON CONFLICT ({KEY}) DO UPDATE SET n = n + excluded.n;",
        spans = spans(),
    )
}

fn sqlite_statements() -> Vec<String> {
    vec![
        format!(
            "CREATE TRIGGER action_counters_inserted AFTER INSERT ON actions BEGIN {} END",
            sqlite_upsert("NEW", 1)
        ),
        format!(
            "CREATE TRIGGER action_counters_updated AFTER UPDATE ON actions \
             WHEN OLD.status IS NOT NEW.status OR OLD.name IS NOT NEW.name \
               OR OLD.provider IS NOT NEW.provider OR OLD.tenant_id IS NOT NEW.tenant_id \
               OR OLD.created_at IS NOT NEW.created_at \
             BEGIN {} {} END",
            sqlite_upsert("OLD", -1),
            sqlite_upsert("NEW", 1)
        ),
        format!(
            "CREATE TRIGGER action_counters_deleted AFTER DELETE ON actions BEGIN {} END",
            sqlite_upsert("OLD", -1)
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ActionCounters::Table)
                    .col(ColumnDef::new(ActionCounters::TenantId).string().not_null())
                    .col(ColumnDef::new(ActionCounters::Span).integer().not_null())
                    .col(
                        ColumnDef::new(ActionCounters::Bucket)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ActionCounters::Status).string().not_null())
                    .col(ColumnDef::new(ActionCounters::Name).string().not_null())
                    .col(ColumnDef::new(ActionCounters::Provider).string().not_null())
                    .col(ColumnDef::new(ActionCounters::Slot).integer().not_null())
                    .col(ColumnDef::new(ActionCounters::N).big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(ActionCounters::TenantId)
                            .col(ActionCounters::Span)
                            .col(ActionCounters::Bucket)
                            .col(ActionCounters::Status)
                            .col(ActionCounters::Name)
                            .col(ActionCounters::Provider)
                            .col(ActionCounters::Slot),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let statements = match manager.get_database_backend() {
            DbBackend::Postgres => {
                // Writers of an older gateway wait while the counters start,
                // so none of their changes falls between fill and triggers.
                db.execute_unprepared("LOCK TABLE actions IN SHARE MODE")
                    .await?;
                postgres_statements()
            }
            _ => sqlite_statements(),
        };
        for statement in statements {
            db.execute_unprepared(&statement).await?;
        }
        db.execute_unprepared(&FILL_COUNTERS).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for trigger in [
            "action_counters_inserted",
            "action_counters_updated",
            "action_counters_deleted",
        ] {
            match manager.get_database_backend() {
                DbBackend::Postgres => {
                    db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {trigger} ON actions"))
                        .await?;
                    db.execute_unprepared(&format!("DROP FUNCTION IF EXISTS {trigger}()"))
                        .await?;
                }
                _ => {
                    db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {trigger}"))
                        .await?;
                }
            }
        }
        manager
            .drop_table(Table::drop().table(ActionCounters::Table).to_owned())
            .await
    }
}
