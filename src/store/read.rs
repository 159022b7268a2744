//! Reading actions back: by id, as keyset pages, and their parameters and
//! states in batches (counts are `counts`). Every read is scoped by the tenant.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect};
use tracing::instrument;
use uuid::Uuid;

use super::Store;
use super::entities::{action, parameter, state};
use super::filter_sql::tenant_condition;
use crate::domain::action::{Action, Parameter, StateChange};
use crate::domain::filter::ActionFilter;
use crate::domain::page::{ActionOrder, Cursor, Direction, OrderField, PageDirection, PageRequest};
use crate::error::AppError;

/// One page of an action list.
#[derive(Debug)]
pub(crate) struct ActionPage {
    /// In list order.
    pub actions: Vec<Action>,
    /// Whether rows follow the page in the direction it was read.
    pub has_more: bool,
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
        action::Entity::find()
            .filter(action::Column::TenantId.eq(tenant))
            .filter(action::Column::Id.is_in(ids.iter().copied()))
            .all(self.connection())
            .await?
            .into_iter()
            .map(Action::try_from)
            .collect()
    }

    /// One page of the actions of `tenant` that pass `filter`, in `order`.
    #[instrument(level = "debug", skip(self, filter), fields(db.system = self.db_system()))]
    pub(crate) async fn list_actions(
        &self,
        tenant: &str,
        filter: &ActionFilter,
        order: ActionOrder,
        page: &PageRequest,
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
            action::Entity::find().filter(tenant_condition(self.backend(), tenant, filter));
        if let Some(cursor) = &page.cursor {
            query = query.filter(beyond(key, cursor, read_direction, false));
        }
        if page.skip > 0 {
            query = query.offset(page.skip);
        }
        let rows = query
            .order_by(key, sql_order.clone())
            .order_by(action::Column::Id, sql_order)
            .limit(page.size + 1)
            .all(self.connection())
            .await?;
        let has_more = rows.len() as u64 > page.size;
        let mut actions = rows
            .into_iter()
            .take(page.size as usize)
            .map(Action::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        if page.direction == PageDirection::Backward {
            actions.reverse();
        }
        Ok(ActionPage { actions, has_more })
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
        let rows = parameter::Entity::find()
            .filter(parameter::Column::TenantId.eq(tenant))
            .filter(parameter::Column::ActionId.is_in(ids.iter().copied()))
            .order_by_asc(parameter::Column::ActionId)
            .order_by_asc(parameter::Column::Position)
            .all(self.connection())
            .await?;
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
        let rows = state::Entity::find()
            .filter(state::Column::TenantId.eq(tenant))
            .filter(state::Column::ActionId.is_in(ids.iter().copied()))
            .order_by_asc(state::Column::Id)
            .all(self.connection())
            .await?;
        for row in rows {
            by_action
                .entry(row.action_id)
                .or_default()
                .push(row.try_into()?);
        }
        Ok(by_action)
    }
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
