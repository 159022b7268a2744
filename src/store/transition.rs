//! The one way an action's status changes: a guarded update plus an appended
//! state row, in one transaction.
//!
//! The update names the status it expects (`WHERE status = <from>`), and a
//! worker's lease token when a worker makes it; unless exactly one row changes,
//! nothing is appended and the caller learns that someone else moved first.

use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::entities::{action, state};
use crate::domain::action::Actor;
use crate::domain::status::ActionStatus;
use crate::error::AppError;

/// `actions.work` when the action is to be executed.
pub(crate) const WORK_EXECUTE: &str = "execute";
/// `actions.work` when the action's effect is to be reverted (it was canceled).
pub(crate) const WORK_REVERT: &str = "revert";

/// A status change to apply.
pub(crate) struct Transition {
    pub id: Uuid,
    pub from: ActionStatus,
    pub to: ActionStatus,
    /// The lease token the worker making the change holds, if a worker makes it.
    pub fence: Option<i64>,
    /// The work the worker is doing; a cancel that changed it wins the race.
    pub work: Option<&'static str>,
    /// Said in the state row, when the change has more to say.
    pub detail: Option<String>,
    /// Other columns to set in the same update.
    pub also: Vec<(action::Column, SimpleExpr)>,
}

impl Transition {
    pub fn new(id: Uuid, from: ActionStatus, to: ActionStatus) -> Transition {
        Transition {
            id,
            from,
            to,
            fence: None,
            work: None,
            detail: None,
            also: Vec::new(),
        }
    }

    pub fn set(mut self, column: action::Column, value: impl Into<SimpleExpr>) -> Transition {
        self.also.push((column, value.into()));
        self
    }

    /// Applies the change within `txn` at time `at` (microseconds). Returns
    /// whether it applied: `false` when the action was no longer in `from` (or
    /// the fence no longer held), in which case nothing was written.
    pub async fn apply<C: ConnectionTrait>(
        self,
        txn: &C,
        actor: &Actor,
        at: i64,
    ) -> Result<bool, AppError> {
        if !self.from.can_become(self.to) {
            return Err(AppError::internal(format!(
                "refused transition {} -> {} of action {}",
                self.from, self.to, self.id
            )));
        }
        let mut update = action::Entity::update_many()
            .col_expr(action::Column::Status, Expr::val(self.to.as_str()))
            .col_expr(action::Column::LastActionAt, Expr::val(at));
        for (column, value) in self.also {
            update = update.col_expr(column, value);
        }
        let mut update = update
            .filter(action::Column::Id.eq(self.id))
            .filter(action::Column::TenantId.eq(actor.tenant_id.as_str()))
            .filter(action::Column::Status.eq(self.from.as_str()));
        if let Some(token) = self.fence {
            update = update.filter(action::Column::LeaseToken.eq(token));
        }
        if let Some(work) = self.work {
            update = update.filter(action::Column::Work.eq(work));
        }
        let result = update.exec(txn).await?;
        if result.rows_affected != 1 {
            return Ok(false);
        }
        append_state(
            txn,
            self.id,
            actor,
            self.to,
            Some(self.from),
            at,
            self.detail,
        )
        .await?;
        Ok(true)
    }
}

/// Appends one row to the state history. The row's `seq` stays empty until the
/// event relay numbers it after commit.
pub(crate) async fn append_state<C: ConnectionTrait>(
    txn: &C,
    action_id: Uuid,
    actor: &Actor,
    status: ActionStatus,
    previous: Option<ActionStatus>,
    at: i64,
    detail: Option<String>,
) -> Result<(), AppError> {
    let row = state::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        seq: Set(None),
        action_id: Set(action_id),
        tenant_id: Set(actor.tenant_id.clone()),
        app_id: Set(actor.app_id.clone()),
        user_name: Set(actor.user.clone()),
        status: Set(status.as_str().to_owned()),
        previous_status: Set(previous.map(|s| s.as_str().to_owned())),
        occurred_at: Set(at),
        detail: Set(detail),
    };
    state::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}
