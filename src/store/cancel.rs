//! `cancelAction` in the store: cancel what has not started, ask the executor to
//! stop and revert what has.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tracing::instrument;
use uuid::Uuid;

use super::Store;
use super::entities::action;
use super::notify::{CANCELS_CHANNEL, announce};
use super::transition::{Transition, WORK_REVERT};
use crate::domain::action::{Action, Actor};
use crate::domain::status::ActionStatus;
use crate::domain::time::{self, to_micros};
use crate::error::AppError;

/// What a cancel did.
#[derive(Debug)]
pub(crate) enum CancelOutcome {
    /// The action had not started: it is now `Canceled`.
    Canceled(Action),
    /// The action is running or completed: the executor will stop it, revert
    /// its effect and then cancel it.
    Requested(Action),
    /// The action was already canceled, or its cancel is already under way.
    Unchanged(Action),
}

impl CancelOutcome {
    pub(crate) fn action(&self) -> &Action {
        match self {
            CancelOutcome::Canceled(a)
            | CancelOutcome::Requested(a)
            | CancelOutcome::Unchanged(a) => a,
        }
    }
}

impl Store {
    /// Cancels action `id` of the actor's tenant. A `Failed` action is
    /// `NOT_CANCELABLE`; an id of another tenant is `NOT_FOUND`. A revert
    /// queued by the cancel continues `trace_context` (the cancel request's),
    /// when given, instead of the invoke's.
    #[instrument(level = "debug", skip(self, actor, trace_context), fields(db.system = self.db_system(), tenant = %actor.tenant_id))]
    pub(crate) async fn request_cancel(
        &self,
        actor: &Actor,
        id: Uuid,
        trace_context: Option<String>,
    ) -> Result<CancelOutcome, AppError> {
        // Each round reads the status and makes a change guarded by it; a round
        // loses only when the executor moved the action meanwhile, and then the
        // next round sees the new status. Statuses only move forward, so this
        // ends within a few rounds.
        for _ in 0..8 {
            let current = self
                .action(&actor.tenant_id, id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("no action with id {id}")))?;
            let now = to_micros(time::now());
            match current.status {
                ActionStatus::Canceled => return Ok(CancelOutcome::Unchanged(current)),
                ActionStatus::Failed => {
                    return Err(AppError::NotCancelable(format!(
                        "action {id} failed, so there is nothing to cancel"
                    )));
                }
                ActionStatus::NotStarted => {
                    let txn = self.begin_write().await?;
                    let applied =
                        Transition::new(id, ActionStatus::NotStarted, ActionStatus::Canceled)
                            .set(action::Column::CancelRequestedAt, Expr::val(now))
                            .set(action::Column::CompletedAt, Expr::val(now))
                            .set(action::Column::Work, Expr::val(Option::<String>::None))
                            .set(action::Column::DueAt, Expr::val(Option::<i64>::None))
                            .apply(&txn, actor, now)
                            .await?;
                    if applied {
                        self.commit_appended(txn).await?;
                        return Ok(CancelOutcome::Canceled(self.reload(actor, id).await?));
                    }
                    txn.rollback().await?;
                }
                ActionStatus::Running | ActionStatus::Completed => {
                    if self.revert_pending(&actor.tenant_id, id).await? {
                        return Ok(CancelOutcome::Unchanged(current));
                    }
                    // Queue the revert. A running attempt keeps its lease (due_at
                    // is its expiry); the worker sees the request when it ends.
                    let mut update = action::Entity::update_many();
                    if let Some(context) = &trace_context {
                        update = update
                            .col_expr(action::Column::TraceContext, Expr::val(context.as_str()));
                    }
                    let result = update
                        .col_expr(action::Column::CancelRequestedAt, Expr::val(now))
                        .col_expr(action::Column::Work, Expr::val(WORK_REVERT))
                        .col_expr(action::Column::Attempts, Expr::val(0))
                        .col_expr(
                            action::Column::DueAt,
                            Expr::case(
                                Expr::col(action::Column::LeaseOwner).is_null(),
                                Expr::val(now),
                            )
                            .finally(Expr::col(action::Column::DueAt))
                            .into(),
                        )
                        .filter(action::Column::Id.eq(id))
                        .filter(action::Column::TenantId.eq(actor.tenant_id.as_str()))
                        .filter(action::Column::Status.eq(current.status.as_str()))
                        .exec(self.connection())
                        .await?;
                    if result.rows_affected == 1 {
                        // Read before announcing: once announced, the attempt
                        // may stop and revert before a later read.
                        let requested = self.reload(actor, id).await?;
                        // The replica running the attempt stops it at once.
                        announce(self.connection(), CANCELS_CHANNEL, id.to_string()).await?;
                        return Ok(CancelOutcome::Requested(requested));
                    }
                }
            }
        }
        Err(AppError::internal(format!(
            "cancel of {id} kept racing the executor"
        )))
    }

    async fn reload(&self, actor: &Actor, id: Uuid) -> Result<Action, AppError> {
        self.action(&actor.tenant_id, id)
            .await?
            .ok_or_else(|| AppError::internal("a canceled action is missing"))
    }

    async fn revert_pending(&self, tenant: &str, id: Uuid) -> Result<bool, AppError> {
        let row = action::Entity::find_by_id(id)
            .filter(action::Column::TenantId.eq(tenant))
            .one(self.connection())
            .await?;
        Ok(row.is_some_and(|r| r.work.as_deref() == Some(WORK_REVERT)))
    }
}
