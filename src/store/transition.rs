//! The one way an action's status changes: a guarded update plus an appended
//! state row, in one transaction.
//!
//! The update names the status it expects (`WHERE status = <from>`), and a
//! worker's lease token when a worker makes it; unless exactly one row changes,
//! nothing is appended and the caller learns that someone else moved first.
//! The domain's status machine (`ActionStatus::can_become`) is checked first.
//!
//! Every status change goes through [`Transition`] but one: the claim
//! (`store::work`) moves a whole batch of due actions `NotStarted → Running`
//! in one update, for throughput. It keeps the same rules by other means: it
//! runs under the claim's lock (`FOR UPDATE SKIP LOCKED`, or SQLite's write
//! lock), its update changes the status only where it still is `NotStarted`
//! with work `execute`, and in the same transaction it appends, through
//! [`state_row`], a state row for exactly the rows it read as `NotStarted`.
//! Storing a new action (`store::invoke`) writes its first state,
//! `NotStarted`, which is a birth rather than a change. Other writes to an
//! action (a retry's delay, a lease given back, a revert queued by a cancel)
//! leave its status as it is.
//!
//! The executor records how a batch of attempts ended through `Transition`s
//! too, many at once (`store::closing`): on PostgreSQL it writes the
//! transitions of one shape as one statement that carries, for each row, the
//! guards and values its own `Transition` would write.
//!
//! The action counters (`store::counts`) follow every status change by the
//! database's own triggers, in the same transaction, whichever of these paths
//! made it.

use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryTrait, Statement,
};
use uuid::Uuid;

use super::Store;
use super::entities::{action, state};
use super::sql::{join, only_if_any};
use crate::domain::action::{Actor, ErrorInfo};
use crate::domain::status::ActionStatus;
use crate::error::AppError;
use crate::telemetry::metrics;

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
    pub(super) fn new(id: Uuid, from: ActionStatus, to: ActionStatus) -> Transition {
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

    pub(super) fn set(
        mut self,
        column: action::Column,
        value: impl Into<SimpleExpr>,
    ) -> Transition {
        self.also.push((column, value.into()));
        self
    }

    /// Only a worker holding `token`, doing `work`, may make this change.
    pub(crate) fn fenced(mut self, token: i64, work: &'static str) -> Transition {
        self.fence = Some(token);
        self.work = Some(work);
        self
    }

    /// Sets (or clears) `errorInfo`.
    pub(crate) fn set_error(self, error: Option<&ErrorInfo>) -> Transition {
        self.set(action::Column::ErrorCode, Expr::val(error.map(|e| e.code)))
            .set(
                action::Column::ErrorMessage,
                Expr::val(error.map(|e| e.message.clone())),
            )
            .set(
                action::Column::ErrorSubcode,
                Expr::val(error.and_then(|e| e.subcode)),
            )
    }

    /// The work is finished: nothing is queued and no lease is held.
    pub(crate) fn done(self) -> Transition {
        self.set(action::Column::Work, Expr::val(Option::<String>::None))
            .set(action::Column::DueAt, Expr::val(Option::<i64>::None))
            .set(
                action::Column::LeaseOwner,
                Expr::val(Option::<String>::None),
            )
            .set(action::Column::Attempts, Expr::val(0))
    }

    /// Applies the change, with its state row, in one transaction of its own:
    /// on PostgreSQL one statement (the update as a CTE, the state row
    /// inserted from what it returned), elsewhere a write transaction.
    pub(super) async fn apply_alone(
        self,
        store: &Store,
        actor: &Actor,
        at: i64,
    ) -> Result<bool, AppError> {
        if store.backend() != DbBackend::Postgres {
            let txn = store.begin_write().await?;
            let applied = self.apply(&txn, actor, at).await?;
            if applied {
                store.commit_appended(txn).await?;
            } else {
                txn.rollback().await?;
            }
            return Ok(applied);
        }
        self.check()?;
        let backend = DbBackend::Postgres;
        let state = self.state_row(actor, at);
        let ([update, state], values) = join([
            self.update(actor, at).build(backend),
            state::Entity::insert(state).build(backend),
        ]);
        let sql = format!(
            "WITH moved AS ({update} RETURNING \"id\") {}",
            only_if_any(&state, "moved"),
        );
        let result = store
            .connection()
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        let applied = result.rows_affected() == 1;
        if applied {
            metrics::action_transition(self.to.as_str());
            store.states_appended.notify_one();
        }
        Ok(applied)
    }

    /// The state row that records this change.
    fn state_row(&self, actor: &Actor, at: i64) -> state::ActiveModel {
        state_row(
            self.id,
            actor,
            self.to,
            Some(self.from),
            at,
            self.detail.clone(),
        )
    }

    pub(super) fn check(&self) -> Result<(), AppError> {
        if !self.from.can_become(self.to) {
            return Err(AppError::internal(format!(
                "refused transition {} -> {} of action {}",
                self.from, self.to, self.id
            )));
        }
        Ok(())
    }

    /// The guarded update.
    fn update(&self, actor: &Actor, at: i64) -> sea_orm::UpdateMany<action::Entity> {
        let mut update = action::Entity::update_many()
            .col_expr(action::Column::Status, Expr::val(self.to.as_str()))
            .col_expr(action::Column::LastActionAt, Expr::val(at));
        for (column, value) in &self.also {
            update = update.col_expr(*column, value.clone());
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
        update
    }

    /// Applies the change within `txn` at time `at` (microseconds). Returns
    /// whether it applied: `false` when the action was no longer in `from` (or
    /// the fence no longer held), in which case nothing was written.
    pub(super) async fn apply<C: ConnectionTrait>(
        self,
        txn: &C,
        actor: &Actor,
        at: i64,
    ) -> Result<bool, AppError> {
        self.check()?;
        let result = self.update(actor, at).exec(txn).await?;
        if result.rows_affected != 1 {
            return Ok(false);
        }
        let state = self.state_row(actor, at);
        state::Entity::insert(state)
            .exec_without_returning(txn)
            .await?;
        metrics::action_transition(self.to.as_str());
        Ok(true)
    }
}

/// A new row of the state history, not numbered yet: its `seq` stays empty
/// until the event relay numbers it after commit. Every state row is made here.
pub(crate) fn state_row(
    action_id: Uuid,
    actor: &Actor,
    status: ActionStatus,
    previous: Option<ActionStatus>,
    at: i64,
    detail: Option<String>,
) -> state::ActiveModel {
    state::ActiveModel {
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
    }
}
