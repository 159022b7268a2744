//! Counting actions: from the counters the database keeps with every change
//! (see the migration that creates `action_counters`) whenever the filter can
//! be answered from them, and by counting rows otherwise.
//!
//! A filter is answered from counters when it sets nothing but `status`,
//! `name`, `provider`, `createdAfter` and `createdBefore`: the dimensions the
//! counters are kept by. Any other field, present or added later, means a real
//! count, bounded by the statement timeout. A time window is read as whole
//! days and whole hours of counters plus the two edges shorter than an hour,
//! counted from `actions` (at most an hour of rows each), in one statement.

use std::collections::HashMap;

use migrations::counters::{
    COUNTER_DRIFT, DAY_MICROS, FILL_COUNTERS, FOLD_SLOTS, HOUR_MICROS, SPAN_ALL, SPAN_DAY,
    SPAN_HOUR,
};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Query, SelectStatement, UnionType};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use tracing::instrument;

use super::Store;
use super::entities::{action, counter};
use super::filter_sql::{in_list, tenant_condition};
use super::rows::status;
use crate::domain::filter::{ActionFilter, Comparison, TimeBound, Timestamp};
use crate::domain::status::ActionStatus;
use crate::domain::time::{from_micros, to_micros};
use crate::error::AppError;

/// A counter key whose counters disagree with the rows they count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDrift {
    pub tenant_id: String,
    /// 0 all time, 1 a day, 2 an hour.
    pub span: i32,
    pub bucket: i64,
    pub status: String,
    pub name: String,
    pub provider: String,
    /// Counted minus actual.
    pub drift: i64,
}

impl Store {
    /// How many actions of `tenant` that pass `filter` are in each status;
    /// every status is listed, in lifecycle order, zeros included.
    #[instrument(level = "debug", skip(self, filter), fields(db.system = self.db_system()))]
    pub(crate) async fn count_by_status(
        &self,
        tenant: &str,
        filter: &ActionFilter,
    ) -> Result<Vec<(ActionStatus, u64)>, AppError> {
        let (query, connection) = match answerable(filter) {
            Some(window) => (
                counted(self.backend(), tenant, filter, window),
                self.reads_planned_once(),
            ),
            None => (
                Some(rows_by_status(self.backend(), tenant, filter)),
                self.connection(),
            ),
        };
        let mut counts: HashMap<ActionStatus, u64> = HashMap::new();
        if let Some(query) = query {
            let statement = self.backend().build(&query);
            for row in connection.query_all_raw(statement).await? {
                let (status, n) = status_and_count(&row)?;
                *counts.entry(status).or_default() += n;
            }
        }
        Ok(ActionStatus::ALL
            .into_iter()
            .map(|s| (s, counts.get(&s).copied().unwrap_or(0)))
            .collect())
    }

    /// How many actions of `tenant` pass `filter`: from the counters when
    /// the filter can be answered from them, else by counting the rows.
    #[instrument(level = "debug", skip(self, filter), fields(db.system = self.db_system()))]
    pub(crate) async fn count_actions(
        &self,
        tenant: &str,
        filter: &ActionFilter,
    ) -> Result<u64, AppError> {
        let (query, connection) = match total_from_counters(self.backend(), tenant, filter) {
            Some(query) => (query, self.reads_planned_once()),
            None => (
                rows_total(self.backend(), tenant, filter),
                self.connection(),
            ),
        };
        let statement = self.backend().build(&query);
        let n: i64 = match connection.query_one_raw(statement).await? {
            Some(row) => row.try_get("", TOTAL)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// How many actions on `provider`, of every tenant, are in effect or
    /// being applied (`Running` or `Completed`): what a provider that holds
    /// one effect per action counts against its capacity. Read from the
    /// all-time counters, so it costs the same at any number of actions.
    #[instrument(level = "debug", skip(self), fields(db.system = self.db_system()))]
    pub(crate) async fn count_live_on_provider(&self, provider: &str) -> Result<u64, AppError> {
        use counter::Column as C;
        let query = Query::select()
            .expr_as(Expr::col(C::N).sum().cast_as("BIGINT").if_null(0), "n")
            .from(counter::Entity)
            .cond_where(
                Condition::all()
                    .add(Expr::col(C::Span).eq(SPAN_ALL))
                    .add(Expr::col(C::Provider).eq(provider))
                    .add(in_list(
                        C::Status,
                        [ActionStatus::Running, ActionStatus::Completed].map(|s| s.as_str()),
                    )),
            )
            .to_owned();
        let statement = self.backend().build(&query);
        let row = self.connection().query_one_raw(statement).await?;
        let n: i64 = match row {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Every counter key whose counters disagree with the actions they count,
    /// compared in one snapshot: empty when the counters are exact.
    pub async fn counter_drift(&self) -> Result<Vec<CounterDrift>, AppError> {
        let statement = Statement::from_string(self.backend(), COUNTER_DRIFT.as_str());
        self.connection()
            .query_all_raw(statement)
            .await?
            .into_iter()
            .map(|row| {
                Ok(CounterDrift {
                    tenant_id: row.try_get("", "tenant_id")?,
                    span: row.try_get("", "span")?,
                    bucket: row.try_get("", "bucket")?,
                    status: row.try_get("", "status")?,
                    name: row.try_get("", "name")?,
                    provider: row.try_get("", "provider")?,
                    drift: row.try_get("", "drift")?,
                })
            })
            .collect()
    }

    /// Rebuilds the counters from the actions, with writers held off meanwhile
    /// (on PostgreSQL a `SHARE` lock on `actions`; readers go on). Returns how
    /// many counter keys were wrong.
    pub async fn recount(&self) -> Result<usize, AppError> {
        let txn = self.begin_write().await?;
        if self.backend() == DbBackend::Postgres {
            txn.execute_unprepared("LOCK TABLE actions IN SHARE MODE")
                .await?;
        }
        let drifted = txn
            .query_all_raw(Statement::from_string(
                self.backend(),
                COUNTER_DRIFT.as_str(),
            ))
            .await?
            .len();
        txn.execute_unprepared("DELETE FROM action_counters")
            .await?;
        txn.execute_unprepared(&FILL_COUNTERS).await?;
        txn.commit().await?;
        Ok(drifted)
    }
}

/// Most counter rows one folding statement moves.
const FOLD_BATCH: i64 = 5_000;

impl Store {
    /// Folds the counter rows of slots 1 and up into slot 0 of their key, so
    /// a total sums one row per key instead of up to
    /// [`SLOTS`](migrations::counters::SLOTS); returns how many rows it moved.
    ///
    /// Counts stay exact throughout: each statement deletes the rows it moves
    /// and adds their sum to slot 0 at once. It never holds writers up for
    /// long nor deadlocks with them: rows a writer holds are skipped (a later
    /// fold takes them), and a fold that would wait on a writer's slot-0 row
    /// longer than [`FOLD_LOCK_TIMEOUT`] gives up (a database timeout) before
    /// PostgreSQL's deadlock check could pick the writer instead. SQLite's
    /// counters are one row per key already: nothing to fold.
    #[instrument(level = "debug", skip(self), fields(db.system = self.db_system()))]
    pub async fn fold_counters(&self) -> Result<u64, AppError> {
        if self.backend() != DbBackend::Postgres {
            return Ok(0);
        }
        let mut moved = 0;
        loop {
            let txn = self.begin_write().await?;
            txn.execute_unprepared(&format!(
                "SET LOCAL lock_timeout = '{}ms'",
                FOLD_LOCK_TIMEOUT.as_millis()
            ))
            .await?;
            let row = txn
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    FOLD_SLOTS.as_str(),
                    [FOLD_BATCH.into()],
                ))
                .await?;
            txn.commit().await?;
            let n: i64 = match row {
                Some(row) => row.try_get("", "moved")?,
                None => 0,
            };
            moved += u64::try_from(n).unwrap_or(0);
            if n < FOLD_BATCH {
                return Ok(moved);
            }
        }
    }
}

/// How long a fold of the counters waits for a writer's lock before giving
/// up; well under PostgreSQL's `deadlock_timeout` (1 s by default).
pub(crate) const FOLD_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(100);

/// The name of the one column of a total's statement.
pub(super) const TOTAL: &str = "total_count";

/// The statement that reads how many actions of `tenant` pass `filter` from
/// the counters, as one row with one column, [`TOTAL`]; `None` when the
/// filter needs a real count. The standalone count and the count read in the
/// same statement as a page (see `Store::list_actions`) are this statement.
pub(super) fn total_from_counters(
    backend: DbBackend,
    tenant: &str,
    filter: &ActionFilter,
) -> Option<SelectStatement> {
    let window = answerable(filter)?;
    let mut total = Query::select();
    match counted(backend, tenant, filter, window) {
        // An aggregate without GROUP BY: one row, even when nothing counts.
        Some(by_status) => total
            .expr_as(
                Expr::col(Alias::new("n"))
                    .sum()
                    .if_null(0)
                    .cast_as("BIGINT"),
                TOTAL,
            )
            .from_subquery(by_status, Alias::new("by_status")),
        None => total.expr_as(Expr::val(0i64), TOTAL),
    };
    Some(total)
}

/// `SELECT COUNT(*) AS total_count` over the rows: the real count of a filter
/// the counters cannot answer, bounded by the statement timeout.
fn rows_total(backend: DbBackend, tenant: &str, filter: &ActionFilter) -> SelectStatement {
    Query::select()
        .expr_as(Expr::col(action::Column::Id).count(), TOTAL)
        .from(action::Entity)
        .cond_where(tenant_condition(backend, tenant, filter))
        .to_owned()
}

/// The statement that reads the counts by status of a filter answerable in
/// `window`: the sums of its counters and the counts of its edges' rows,
/// `status` and `n` (a status may come once from each); `None` when the
/// window is empty.
fn counted(
    backend: DbBackend,
    tenant: &str,
    filter: &ActionFilter,
    window: Window,
) -> Option<SelectStatement> {
    let mut parts = Vec::new();
    if let Some(spans) = window.counters() {
        use counter::Column as C;
        let mut keys = Condition::all().add(Expr::col(C::TenantId).eq(tenant));
        if let Some(statuses) = &filter.statuses {
            keys = keys.add(in_list(C::Status, statuses.iter().map(|s| s.as_str())));
        }
        if let Some(names) = &filter.names {
            keys = keys.add(in_list(C::Name, names.iter().copied()));
        }
        if let Some(providers) = &filter.providers {
            keys = keys.add(in_list(C::Provider, providers.iter().cloned()));
        }
        parts.push(
            Query::select()
                .column(C::Status)
                .expr_as(Expr::col(C::N).sum().cast_as("BIGINT"), "n")
                .from(counter::Entity)
                .cond_where(keys.add(spans))
                .group_by_col(C::Status)
                .to_owned(),
        );
    }
    if !window.edges.is_empty() {
        let edges = ActionFilter {
            // Every status when the filter names none: the same rows, but
            // then the index of the tenant's actions by status and creation
            // answers the count by itself (one range per status, no row
            // read), where the index by creation would fetch every row of
            // the edge for its status.
            statuses: Some(
                filter
                    .statuses
                    .clone()
                    .unwrap_or_else(|| ActionStatus::ALL.to_vec()),
            ),
            names: filter.names.clone(),
            providers: filter.providers.clone(),
            or: Some(
                window
                    .edges
                    .iter()
                    .map(|&(from, to)| ActionFilter {
                        times: vec![
                            created(Comparison::AtOrAfter, from),
                            created(Comparison::Before, to),
                        ],
                        ..ActionFilter::default()
                    })
                    .collect(),
            ),
            ..ActionFilter::default()
        };
        parts.push(rows_by_status(backend, tenant, &edges));
    }
    let mut parts = parts.into_iter();
    let mut query = parts.next()?;
    for part in parts {
        query.union(UnionType::All, part);
    }
    Some(query)
}

/// A bound on `createdDateTime` at `micros`.
fn created(comparison: Comparison, micros: i64) -> TimeBound {
    TimeBound {
        timestamp: Timestamp::Created,
        comparison,
        at: from_micros(micros),
    }
}

/// `SELECT status, COUNT(*) AS n … GROUP BY status` over the rows.
fn rows_by_status(backend: DbBackend, tenant: &str, filter: &ActionFilter) -> SelectStatement {
    Query::select()
        .column(action::Column::Status)
        .expr_as(Expr::col(action::Column::Id).count(), "n")
        .from(action::Entity)
        .cond_where(tenant_condition(backend, tenant, filter))
        .group_by_col(action::Column::Status)
        .to_owned()
}

fn status_and_count(row: &QueryResult) -> Result<(ActionStatus, u64), AppError> {
    let name: String = row.try_get("", "status")?;
    let n: i64 = row.try_get("", "n")?;
    Ok((status(&name)?, u64::try_from(n).unwrap_or(0)))
}

/// The window of a filter the counters can answer, or `None` when the filter
/// sets anything the counters are not kept by.
fn answerable(filter: &ActionFilter) -> Option<Window> {
    // Rebuilt from the counted dimensions only: if that is not the whole
    // filter, some other field is set, whatever fields the filter grows.
    let counted = ActionFilter {
        statuses: filter.statuses.clone(),
        names: filter.names.clone(),
        providers: filter.providers.clone(),
        times: filter
            .times
            .iter()
            .filter(|b| b.timestamp == Timestamp::Created)
            .copied()
            .collect(),
        ..ActionFilter::default()
    };
    if counted != *filter {
        return None;
    }
    // The bounds as one half-open range of microseconds, compared as the
    // SQL of `filter_sql` compares them.
    let (mut from, mut to): (Option<i64>, Option<i64>) = (None, None);
    for bound in &filter.times {
        let at = to_micros(bound.at);
        let (lower, upper) = match bound.comparison {
            Comparison::After => (Some(at + 1), None),
            Comparison::AtOrAfter => (Some(at), None),
            Comparison::Before => (None, Some(at)),
            Comparison::AtOrBefore => (None, Some(at + 1)),
        };
        from = Ord::max(from, lower);
        to = match (to, upper) {
            (Some(a), Some(b)) => Some(Ord::min(a, b)),
            (a, b) => a.or(b),
        };
    }
    Some(Window::plan(from, to))
}

/// A half-open range of buckets; `None` leaves that end open.
type Buckets = (Option<i64>, Option<i64>);

/// `[from, to)` of `createdDateTime` (microseconds, either end open) as
/// counters to sum and edges to count.
#[derive(Debug, Default, PartialEq, Eq)]
struct Window {
    /// Everything: the all-time counters.
    all: bool,
    /// Ranges of day buckets.
    days: Vec<Buckets>,
    /// Ranges of hour buckets.
    hours: Vec<Buckets>,
    /// Ranges `[from, to)` of microseconds to count from the rows.
    edges: Vec<(i64, i64)>,
}

impl Window {
    fn plan(from: Option<i64>, to: Option<i64>) -> Window {
        let mut window = Window::default();
        let (Some(from), Some(to)) = (from, to) else {
            if from.is_none() && to.is_none() {
                window.all = true;
                return window;
            }
            return window.whole_hours(from, to);
        };
        if from >= to {
            return window;
        }
        let (first_hour, last_hour) = (ceil(from, HOUR_MICROS), floor(to, HOUR_MICROS));
        if first_hour >= last_hour {
            // No whole hour inside: one edge, or two where the window
            // crosses an hour's start, so each stays shorter than an hour.
            if first_hour == last_hour && from < first_hour && first_hour < to {
                window.edges.push((from, first_hour));
                window.edges.push((first_hour, to));
            } else {
                window.edges.push((from, to));
            }
            return window;
        }
        if from < first_hour {
            window.edges.push((from, first_hour));
        }
        if last_hour < to {
            window.edges.push((last_hour, to));
        }
        window.whole_hours_between(Some(first_hour), Some(last_hour))
    }

    /// For a window open at one end: the edge at the other, then whole hours.
    fn whole_hours(mut self, from: Option<i64>, to: Option<i64>) -> Window {
        let from = from.map(|f| {
            let hour = ceil(f, HOUR_MICROS);
            if f < hour {
                self.edges.push((f, hour));
            }
            hour
        });
        let to = to.map(|t| {
            let hour = floor(t, HOUR_MICROS);
            if hour < t {
                self.edges.push((hour, t));
            }
            hour
        });
        self.whole_hours_between(from, to)
    }

    /// `[from, to)`, each end on an hour or open, as whole days and the hours
    /// around them.
    fn whole_hours_between(mut self, from: Option<i64>, to: Option<i64>) -> Window {
        let first_day = from.map(|f| ceil(f, DAY_MICROS));
        let last_day = to.map(|t| floor(t, DAY_MICROS));
        if let (Some(f), Some(t), Some(first), Some(last)) = (from, to, first_day, last_day)
            && first >= last
        {
            self.hours
                .push((Some(f / HOUR_MICROS), Some(t / HOUR_MICROS)));
            return self;
        }
        if let (Some(f), Some(first)) = (from, first_day)
            && f < first
        {
            self.hours
                .push((Some(f / HOUR_MICROS), Some(first / HOUR_MICROS)));
        }
        self.days.push((
            first_day.map(|d| d / DAY_MICROS),
            last_day.map(|d| d / DAY_MICROS),
        ));
        if let (Some(t), Some(last)) = (to, last_day)
            && last < t
        {
            self.hours
                .push((Some(last / HOUR_MICROS), Some(t / HOUR_MICROS)));
        }
        self
    }

    /// The condition on counters that picks this window's spans and buckets,
    /// `None` when it reads no counters.
    fn counters(&self) -> Option<Condition> {
        use counter::Column as C;
        let mut any = Condition::any();
        let mut parts = 0;
        if self.all {
            any = any.add(Expr::col(C::Span).eq(SPAN_ALL));
            parts += 1;
        }
        let ranges = self
            .days
            .iter()
            .map(|r| (SPAN_DAY, r))
            .chain(self.hours.iter().map(|r| (SPAN_HOUR, r)));
        for (span, &(from, to)) in ranges {
            let mut c = Condition::all().add(Expr::col(C::Span).eq(span));
            if let Some(from) = from {
                c = c.add(Expr::col(C::Bucket).gte(from));
            }
            if let Some(to) = to {
                c = c.add(Expr::col(C::Bucket).lt(to));
            }
            any = any.add(c);
            parts += 1;
        }
        (parts > 0).then_some(any)
    }
}

fn floor(micros: i64, unit: i64) -> i64 {
    micros.div_euclid(unit) * unit
}

fn ceil(micros: i64, unit: i64) -> i64 {
    -floor(-micros, unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// How many parts of the window count an action created at `t`.
    fn times_counted(window: &Window, t: i64) -> usize {
        let within =
            |(from, to): Buckets, b: i64| from.is_none_or(|f| b >= f) && to.is_none_or(|e| b < e);
        usize::from(window.all)
            + window
                .days
                .iter()
                .filter(|&&r| within(r, t.div_euclid(DAY_MICROS)))
                .count()
            + window
                .hours
                .iter()
                .filter(|&&r| within(r, t.div_euclid(HOUR_MICROS)))
                .count()
            + window
                .edges
                .iter()
                .filter(|&&(f, e)| t >= f && t < e)
                .count()
    }

    proptest! {
        #[test]
        fn every_action_in_the_window_is_counted_once_and_no_other(
            from in proptest::option::of(0i64..40 * DAY_MICROS),
            length in 0i64..20 * DAY_MICROS,
            open_end in any::<bool>(),
            t in 0i64..70 * DAY_MICROS,
        ) {
            let to = if open_end { None } else { Some(from.unwrap_or(0) + length) };
            let window = Window::plan(from, to);
            let inside = from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e);
            prop_assert_eq!(times_counted(&window, t), usize::from(inside), "{:?}", window);
            for (f, e) in &window.edges {
                prop_assert!(e - f < HOUR_MICROS && f < e, "an edge is less than an hour: {:?}", window);
            }
        }
    }

    #[test]
    fn an_hour_long_window_off_the_hour_is_two_edges() {
        let from = 10 * DAY_MICROS + 5 * HOUR_MICROS + 1;
        let window = Window::plan(Some(from), Some(from + HOUR_MICROS));
        let hour = 10 * DAY_MICROS + 6 * HOUR_MICROS;
        assert_eq!(window.edges, vec![(from, hour), (hour, from + HOUR_MICROS)]);
        assert!(window.hours.is_empty() && window.days.is_empty());
    }

    #[test]
    fn a_day_long_window_is_whole_hours_and_two_edges() {
        let from = 10 * DAY_MICROS + 5 * HOUR_MICROS + 1;
        let window = Window::plan(Some(from), Some(from + DAY_MICROS));
        assert_eq!(window.edges.len(), 2);
        assert!(!window.all);
        let hours: i64 = window
            .hours
            .iter()
            .map(|(f, t)| t.unwrap() - f.unwrap())
            .sum();
        assert_eq!(hours, 23);
    }

    #[test]
    fn only_counted_dimensions_are_answered_from_counters() {
        let counted = ActionFilter {
            statuses: Some(vec![ActionStatus::Running]),
            names: Some(vec!["blockIp"]),
            providers: Some(vec!["blocklist".into()]),
            times: vec![created(Comparison::After, 1_000_000)],
            ..ActionFilter::default()
        };
        assert!(answerable(&counted).is_some());
        assert_eq!(
            answerable(&ActionFilter::default()),
            Some(Window {
                all: true,
                ..Window::default()
            })
        );
        let by_user = ActionFilter {
            user: Some("bob".into()),
            ..counted.clone()
        };
        assert!(answerable(&by_user).is_none());
        let by_last_action = ActionFilter {
            times: vec![TimeBound {
                timestamp: Timestamp::LastAction,
                ..created(Comparison::Before, 1_000_000)
            }],
            ..ActionFilter::default()
        };
        assert!(answerable(&by_last_action).is_none());
        let by_prefix = ActionFilter {
            prefixes: vec![crate::domain::filter::Prefix {
                field: crate::domain::filter::TextField::Provider,
                prefix: "block".into(),
            }],
            ..ActionFilter::default()
        };
        assert!(answerable(&by_prefix).is_none());
        let nested = ActionFilter {
            and: vec![ActionFilter::default()],
            ..ActionFilter::default()
        };
        assert!(answerable(&nested).is_none());
    }
}
