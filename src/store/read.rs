//! Reading actions back: by id and as keyset pages, with their parts (see
//! `parts`) and, for a page, the total from the counters when asked for, in
//! one statement; and parameters and states in batches (counts are
//! `counts`). Every read is scoped by the tenant.

use std::collections::HashMap;
use std::sync::OnceLock;

use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, JoinType, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult,
    Order, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use tracing::instrument;
use uuid::Uuid;

use super::Store;
use super::counts::{TOTAL, total_from_counters};
use super::entities::{action, parameter, state};
use super::fields::{self, FieldsWanted, action_from_row};
use super::filter_sql::tenant_condition;
use super::parts::{Parts, PartsWanted, with_parts};
use crate::domain::action::{Action, Parameter, StateChange};
use crate::domain::filter::{ActionFilter, Timestamp};
use crate::domain::page::{ActionOrder, Cursor, Direction, OrderField, PageDirection, PageRequest};
use crate::error::AppError;

/// Most ids one statement of `Store::joined_to_ids` joins (two values each).
const IDS_PER_STATEMENT: usize = 10_000;

/// One page of an action list.
#[derive(Debug)]
pub(crate) struct ActionPage {
    /// In list order.
    pub actions: Vec<Action>,
    /// Their parameters and states, as far as asked for.
    pub parts: Parts,
    /// Whether rows follow the page in the direction it was read.
    pub has_more: bool,
    /// How many actions pass the filter, on every page together: read with
    /// the page when asked for and the counters can answer the filter,
    /// `None` otherwise.
    pub total: Option<u64>,
}

/// Which side of a cursor, in list order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The cursor's row and those listed before it.
    AtOrBefore,
    /// The cursor's row and those listed after it.
    AtOrAfter,
}

impl Store {
    /// The action with this id in `tenant`, if any.
    #[instrument(level = "debug", skip(self), fields(db.system = self.db_system()))]
    pub(crate) async fn action(&self, tenant: &str, id: Uuid) -> Result<Option<Action>, AppError> {
        action::Entity::find_by_id(id)
            .filter(action::Column::TenantId.eq(tenant))
            .one(self.connection())
            .await?
            .map(Action::try_from)
            .transpose()
    }

    /// The action with this id in `tenant`, if any, with the parts `wanted`,
    /// in one statement.
    #[instrument(level = "debug", skip(self))]
    pub(crate) async fn action_with_parts(
        &self,
        tenant: &str,
        id: Uuid,
        wanted: PartsWanted,
    ) -> Result<Option<(Action, Parts)>, AppError> {
        let statement = lookup_statement(self.backend(), tenant, id, wanted);
        let mut read = self
            .read_actions(
                self.connection(),
                statement,
                FieldsWanted::ALL,
                wanted,
                1,
                false,
            )
            .await?;
        Ok(read.actions.pop().map(|action| (action, read.parts)))
    }

    /// The actions of `tenant` among `ids`, in no particular order.
    #[instrument(level = "debug", skip(self, ids), fields(db.system = self.db_system(), count = ids.len()))]
    pub(crate) async fn actions_by_ids(
        &self,
        tenant: &str,
        ids: &[Uuid],
    ) -> Result<Vec<Action>, AppError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = if self.backend() == DbBackend::Postgres {
            self.joined_to_ids::<action::Model>("actions", "id", None, tenant, ids)
                .await?
        } else {
            action::Entity::find()
                .filter(action::Column::TenantId.eq(tenant))
                .filter(action::Column::Id.is_in(ids.iter().copied()))
                .all(self.connection())
                .await?
        };
        rows.into_iter().map(Action::try_from).collect()
    }

    /// PostgreSQL: the rows of `table` whose `key` and tenant are those of
    /// one of `ids` in `tenant`, ordered by `order`. The ids and the tenant
    /// are rows of a `VALUES` list joined to the table, not an `IN` list
    /// beside a constant tenant: from the constant, a planner whose
    /// statistics predate a burst of new actions expects few rows of the
    /// tenant, reads all of them through the tenant's index and compares
    /// each with every id (seconds for a few hundred ids in a tenant of
    /// 100,000 actions); the join leaves it the primary-key lookups.
    async fn joined_to_ids<M: FromQueryResult>(
        &self,
        table: &str,
        key: &str,
        order: Option<&str>,
        tenant: &str,
        ids: &[Uuid],
    ) -> Result<Vec<M>, AppError> {
        let mut found = Vec::new();
        for ids in ids.chunks(IDS_PER_STATEMENT) {
            let mut values: Vec<sea_orm::Value> = Vec::with_capacity(ids.len() * 2);
            let rows: Vec<String> = ids
                .iter()
                .map(|id| {
                    values.push(sea_orm::Value::Uuid(Some(*id)));
                    values.push(tenant.into());
                    let n = values.len();
                    format!("(${}::uuid, ${n}::text)", n - 1)
                })
                .collect();
            let mut sql = format!(
                "SELECT t.* FROM \"{table}\" AS t JOIN (VALUES {rows}) AS v (\"id\", \"tenant_id\") \
                 ON t.\"{key}\" = v.\"id\" AND t.\"tenant_id\" = v.\"tenant_id\"",
                rows = rows.join(", "),
            );
            if let Some(order) = order {
                sql.push_str(&format!(" ORDER BY {order}"));
            }
            let rows = self.query_postgres(sql, values).await?;
            for row in rows {
                found.push(M::from_query_result(&row, "")?);
            }
        }
        Ok(found)
    }

    /// One page of the actions of `tenant` that pass `filter`, in `order`,
    /// with the `fields` and the parts `wanted`, and, when `with_total` and
    /// the counters can answer `filter`, how many pass it, in the same
    /// statement.
    #[instrument(level = "debug", skip(self, filter), fields(db.system = self.db_system()))]
    // What to read of each action is two sets of its own (its columns and
    // its parts) beside the page's request; a struct for them would only
    // be taken apart here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn list_actions(
        &self,
        tenant: &str,
        filter: &ActionFilter,
        order: ActionOrder,
        page: &PageRequest,
        fields: FieldsWanted,
        wanted: PartsWanted,
        with_total: bool,
    ) -> Result<ActionPage, AppError> {
        let key = sort_column(order.field);
        // A backward page is read in reverse order, then flipped.
        let read_direction = match (page.direction, order.direction) {
            (PageDirection::Forward, d) => d,
            (PageDirection::Backward, Direction::Asc) => Direction::Desc,
            (PageDirection::Backward, Direction::Desc) => Direction::Asc,
        };
        let sql_order = match read_direction {
            Direction::Asc => Order::Asc,
            Direction::Desc => Order::Desc,
        };
        let mut query =
            fields::select(fields).filter(tenant_condition(self.backend(), tenant, filter));
        if let Some(cursor) = &page.cursor {
            query = query.filter(beyond(key, cursor, read_direction, false));
        }
        if page.skip > 0 {
            query = query.offset(page.skip);
        }
        let query = query
            .order_by(key, sql_order.clone())
            .order_by(action::Column::Id, sql_order.clone())
            .limit(page.size + 1);
        let mut statement = with_parts(self.backend(), query, wanted);
        // A count the counters cannot answer is a real count, bounded by the
        // statement timeout: it stays a statement of its own, made only when
        // `totalCount` is read (`count_actions`).
        let total = match with_total {
            true => total_from_counters(self.backend(), tenant, filter),
            false => None,
        };
        let counted = total.is_some();
        if let Some(total) = total {
            statement = beside_total(statement, total, key, sql_order);
        }
        let statement = self.backend().build(&statement);
        let connection = match plan_is_value_independent(filter, order.field) {
            true => self.reads_planned_once(),
            false => self.connection(),
        };
        let Read {
            mut actions,
            parts,
            total,
        } = self
            .read_actions(
                connection,
                statement,
                fields,
                wanted,
                page.size as usize + 1,
                counted,
            )
            .await?;
        let has_more = actions.len() as u64 > page.size;
        actions.truncate(page.size as usize);
        if page.direction == PageDirection::Backward {
            actions.reverse();
        }
        Ok(ActionPage {
            actions,
            parts,
            has_more,
            total,
        })
    }

    /// Whether any action passing `filter` lies on `side` of `cursor` in the list
    /// ordered by `order`, the cursor's own row included.
    #[instrument(level = "debug", skip(self, filter), fields(db.system = self.db_system()))]
    pub(crate) async fn any_beside(
        &self,
        tenant: &str,
        filter: &ActionFilter,
        order: ActionOrder,
        cursor: &Cursor,
        side: Side,
    ) -> Result<bool, AppError> {
        // "After in list order" is "greater" for an ascending list.
        let toward = match (side, order.direction) {
            (Side::AtOrAfter, d) => d,
            (Side::AtOrBefore, Direction::Asc) => Direction::Desc,
            (Side::AtOrBefore, Direction::Desc) => Direction::Asc,
        };
        let found = action::Entity::find()
            .select_only()
            .column(action::Column::Id)
            .filter(tenant_condition(self.backend(), tenant, filter))
            .filter(beyond(sort_column(order.field), cursor, toward, true))
            .limit(1)
            .into_tuple::<Uuid>()
            .one(self.connection())
            .await?;
        Ok(found.is_some())
    }

    /// Runs `statement` (of the action columns of `fields` and the parts
    /// `wanted`, see [`with_parts`]; and the total, when `counted`, see
    /// [`beside_total`]) on `connection` and decodes what it read.
    async fn read_actions(
        &self,
        connection: &DatabaseConnection,
        statement: Statement,
        fields: FieldsWanted,
        wanted: PartsWanted,
        expected: usize,
        counted: bool,
    ) -> Result<Read, AppError> {
        let rows = connection.query_all_raw(statement).await?;
        let mut actions = Vec::with_capacity(rows.len().min(expected));
        let mut parts = Parts::wanted(wanted);
        let mut total = None;
        for row in rows {
            if counted {
                let n: i64 = row.try_get("", TOTAL)?;
                total = Some(u64::try_from(n).unwrap_or(0));
                // The one row of an empty page: the count and no action.
                let id: Option<Uuid> = row.try_get("", "id")?;
                if id.is_none() {
                    continue;
                }
            }
            let action = action_from_row(&row, fields)?;
            parts.read_from(&row, action.id)?;
            actions.push(action);
        }
        Ok(Read {
            actions,
            parts,
            total,
        })
    }

    /// The parameters of each of `ids` in `tenant`, in the caller's order.
    #[instrument(level = "debug", skip(self, ids), fields(db.system = self.db_system(), count = ids.len()))]
    pub(crate) async fn parameters_of(
        &self,
        tenant: &str,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<Parameter>>, AppError> {
        let mut by_action: HashMap<Uuid, Vec<Parameter>> = HashMap::new();
        if ids.is_empty() {
            return Ok(by_action);
        }
        let rows = if self.backend() == DbBackend::Postgres {
            self.joined_to_ids::<parameter::Model>(
                "action_parameters",
                "action_id",
                Some("t.\"action_id\", t.\"position\""),
                tenant,
                ids,
            )
            .await?
        } else {
            parameter::Entity::find()
                .filter(parameter::Column::TenantId.eq(tenant))
                .filter(parameter::Column::ActionId.is_in(ids.iter().copied()))
                .order_by_asc(parameter::Column::ActionId)
                .order_by_asc(parameter::Column::Position)
                .all(self.connection())
                .await?
        };
        for row in rows {
            by_action.entry(row.action_id).or_default().push(row.into());
        }
        Ok(by_action)
    }

    /// The state history of each of `ids` in `tenant`, oldest first.
    #[instrument(level = "debug", skip(self, ids), fields(db.system = self.db_system(), count = ids.len()))]
    pub(crate) async fn states_of(
        &self,
        tenant: &str,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<StateChange>>, AppError> {
        let mut by_action: HashMap<Uuid, Vec<StateChange>> = HashMap::new();
        if ids.is_empty() {
            return Ok(by_action);
        }
        let rows = if self.backend() == DbBackend::Postgres {
            self.joined_to_ids::<state::Model>(
                "action_states",
                "action_id",
                Some("t.\"id\""),
                tenant,
                ids,
            )
            .await?
        } else {
            state::Entity::find()
                .filter(state::Column::TenantId.eq(tenant))
                .filter(state::Column::ActionId.is_in(ids.iter().copied()))
                .order_by_asc(state::Column::Id)
                .all(self.connection())
                .await?
        };
        for row in rows {
            by_action
                .entry(row.action_id)
                .or_default()
                .push(row.try_into()?);
        }
        Ok(by_action)
    }
}

/// What one statement of [`Store::read_actions`] read.
struct Read {
    actions: Vec<Action>,
    parts: Parts,
    total: Option<u64>,
}

/// The lookup of the action `id` of `tenant` with the parts `wanted`.
fn lookup(backend: DbBackend, tenant: &str, id: Uuid, wanted: PartsWanted) -> SelectStatement {
    let query = fields::select(FieldsWanted::ALL)
        .filter(action::Column::Id.eq(id))
        .filter(action::Column::TenantId.eq(tenant));
    with_parts(backend, query, wanted)
}

/// [`lookup`] as a statement. Its text depends only on the backend and the
/// parts wanted, so each is built once and kept: the most frequent read does
/// not rebuild 19 columns and two subqueries of SQL every time.
fn lookup_statement(backend: DbBackend, tenant: &str, id: Uuid, wanted: PartsWanted) -> Statement {
    static TEXTS: [OnceLock<String>; 12] = [const { OnceLock::new() }; 12];
    let by_backend = match backend {
        DbBackend::Postgres => 0,
        DbBackend::Sqlite => 1,
        _ => 2,
    };
    let slot = by_backend * 4 + usize::from(wanted.parameters) * 2 + usize::from(wanted.states);
    let sql =
        TEXTS[slot].get_or_init(|| backend.build(&lookup(backend, "", Uuid::nil(), wanted)).sql);
    // In the order of the text's placeholders: the id, then the tenant.
    Statement::from_sql_and_values(backend, sql.as_str(), [id.into(), tenant.into()])
}

/// `page`, ordered by `key` and then id in `order`, beside the one row of
/// `total` (see `counts::total_from_counters`), in one statement:
/// `SELECT page.*, counted.total_count FROM (total) AS counted LEFT JOIN
/// (page) AS page ON TRUE ORDER BY …`. The count is the left side, so an
/// empty page still yields it: one row whose page columns are NULL.
fn beside_total(
    page: SelectStatement,
    total: SelectStatement,
    key: action::Column,
    order: Order,
) -> SelectStatement {
    let (paged, counted) = (Alias::new("page"), Alias::new("counted"));
    Query::select()
        .column((paged.clone(), Asterisk))
        .column((counted.clone(), Alias::new(TOTAL)))
        .from_subquery(total, counted)
        .join_subquery(JoinType::LeftJoin, page, paged.clone(), Expr::cust("TRUE"))
        .order_by((paged.clone(), key), order.clone())
        .order_by((paged, action::Column::Id), order)
        .to_owned()
}

/// Whether the best plan of a page of the actions passing `filter`, ordered
/// by `field`, is the same whatever the values of the filter, the cursor and
/// the page size: when an index of the tenant's actions holds exactly the
/// filter's one equality (one status, name, provider, app or user, or none)
/// followed by the sort key, reading that index in order up to the page's
/// end is the best plan for every value, and bounds on the sort key narrow
/// the same index. Any other filter (two values of a field, two fields,
/// bounds on the other timestamp, text, parameters, `and`/`or`/`not`) is
/// planned for its values.
fn plan_is_value_independent(filter: &ActionFilter, field: OrderField) -> bool {
    let ActionFilter {
        ids,
        statuses,
        names,
        providers,
        app_id,
        user,
        client_context,
        parameter,
        times,
        prefixes,
        and,
        or,
        not,
    } = filter;
    let one = |values: Option<usize>| values.is_none_or(|n| n == 1);
    let sort_key = match field {
        OrderField::CreatedAt => Timestamp::Created,
        OrderField::LastActionAt => Timestamp::LastAction,
    };
    let equalities = [
        statuses.as_ref().map(Vec::len),
        names.as_ref().map(Vec::len),
        providers.as_ref().map(Vec::len),
        app_id.as_ref().map(|_| 1),
        user.as_ref().map(|_| 1),
    ];
    // Only `(tenant_id, status, last_action_at, id)` leads to the other sort key.
    let indexed = match field {
        OrderField::CreatedAt => true,
        OrderField::LastActionAt => equalities[1..].iter().all(Option::is_none),
    };
    ids.is_none()
        && client_context.is_none()
        && parameter.is_none()
        && prefixes.is_empty()
        && and.is_empty()
        && or.is_none()
        && not.is_none()
        && times.iter().all(|bound| bound.timestamp == sort_key)
        && equalities.iter().filter(|values| values.is_some()).count() <= 1
        && equalities.iter().all(|values| one(*values))
        && indexed
}

fn sort_column(field: OrderField) -> action::Column {
    match field {
        OrderField::CreatedAt => action::Column::CreatedAt,
        OrderField::LastActionAt => action::Column::LastActionAt,
    }
}

/// `(key, id)` strictly past the cursor when reading in `direction` (or at it
/// too, when `inclusive`): a row-value comparison, which both backends serve
/// from the `(tenant_id, key, id)` index.
fn beyond(key: action::Column, cursor: &Cursor, direction: Direction, inclusive: bool) -> Expr {
    let row = Expr::tuple([Expr::col(key), Expr::col(action::Column::Id)]);
    let at = Expr::tuple([Expr::val(cursor.key), Expr::val(cursor.id)]);
    match (direction, inclusive) {
        (Direction::Asc, false) => row.gt(at),
        (Direction::Asc, true) => row.gte(at),
        (Direction::Desc, false) => row.lt(at),
        (Direction::Desc, true) => row.lte(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::filter::{Comparison, TimeBound};
    use crate::domain::status::ActionStatus;

    fn bound(timestamp: Timestamp) -> TimeBound {
        TimeBound {
            timestamp,
            comparison: Comparison::After,
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn only_pages_an_index_reads_in_order_whatever_the_values_keep_one_plan() {
        use OrderField::{CreatedAt, LastActionAt};
        let status = |s: Vec<ActionStatus>| ActionFilter {
            statuses: Some(s),
            ..ActionFilter::default()
        };
        let name = ActionFilter {
            names: Some(vec!["blockIp"]),
            ..ActionFilter::default()
        };
        let user = ActionFilter {
            user: Some("ana".into()),
            ..ActionFilter::default()
        };
        let completed = status(vec![ActionStatus::Completed]);
        let with_times = |mut f: ActionFilter, t: Timestamp| {
            f.times.push(bound(t));
            f
        };
        let planned_once = [
            (ActionFilter::default(), CreatedAt),
            (ActionFilter::default(), LastActionAt),
            (completed.clone(), CreatedAt),
            (completed.clone(), LastActionAt),
            (name.clone(), CreatedAt),
            (user.clone(), CreatedAt),
            (with_times(completed.clone(), Timestamp::Created), CreatedAt),
            (
                with_times(completed.clone(), Timestamp::LastAction),
                LastActionAt,
            ),
        ];
        for (filter, field) in planned_once {
            assert!(
                plan_is_value_independent(&filter, field),
                "{filter:?} {field:?}"
            );
        }
        let mut two_fields = completed.clone();
        two_fields.names = Some(vec!["blockIp"]);
        let planned_for_values = [
            (
                status(vec![ActionStatus::Completed, ActionStatus::Failed]),
                CreatedAt,
            ),
            (status(vec![]), CreatedAt),
            (two_fields, CreatedAt),
            (name, LastActionAt),
            (user, LastActionAt),
            (
                with_times(completed.clone(), Timestamp::LastAction),
                CreatedAt,
            ),
            (
                ActionFilter {
                    ids: Some(vec![Uuid::nil()]),
                    ..ActionFilter::default()
                },
                CreatedAt,
            ),
            (
                ActionFilter {
                    client_context: Some("case-1".into()),
                    ..ActionFilter::default()
                },
                CreatedAt,
            ),
            (
                ActionFilter {
                    or: Some(vec![completed.clone()]),
                    ..ActionFilter::default()
                },
                CreatedAt,
            ),
            (
                ActionFilter {
                    not: Some(Box::new(completed.clone())),
                    ..ActionFilter::default()
                },
                CreatedAt,
            ),
            (
                ActionFilter {
                    and: vec![completed],
                    ..ActionFilter::default()
                },
                CreatedAt,
            ),
        ];
        for (filter, field) in planned_for_values {
            assert!(
                !plan_is_value_independent(&filter, field),
                "{filter:?} {field:?}"
            );
        }
    }

    #[test]
    fn a_kept_lookup_statement_is_the_one_built_afresh() {
        let id = Uuid::now_v7();
        for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
            for (parameters, states) in [(false, false), (true, false), (false, true), (true, true)]
            {
                let wanted = PartsWanted { parameters, states };
                // Twice: the first builds and keeps the text, the second reuses it.
                for _ in 0..2 {
                    assert_eq!(
                        lookup_statement(backend, "tenant-a", id, wanted),
                        backend.build(&lookup(backend, "tenant-a", id, wanted)),
                        "{backend:?} {wanted:?}"
                    );
                }
            }
        }
    }
}
