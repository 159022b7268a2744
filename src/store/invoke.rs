//! Storing new actions: the action, its parameters and its first state in
//! one write, with `clientContext` as an idempotency key per tenant and app.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryTrait, Statement,
};
use tracing::instrument;
use uuid::Uuid;

use super::Store;
use super::entities::{action, parameter, state};
use super::sql::{join, only_if_any};
use super::transition::{WORK_EXECUTE, state_row};
use crate::domain::action::{Action, Actor, NewAction};
use crate::domain::status::ActionStatus;
use crate::domain::time::{self, to_micros};
use crate::error::AppError;
use crate::telemetry::metrics;

/// What `invoke` did.
#[derive(Debug)]
pub(crate) enum Invoked {
    /// A new action was stored.
    Created(Action),
    /// The `clientContext` was used before with the same input: this is that action.
    Replayed(Action),
}

impl Invoked {
    pub(crate) fn into_action(self) -> Action {
        match self {
            Invoked::Created(action) | Invoked::Replayed(action) => action,
        }
    }
}

impl Store {
    /// Stores a new action `NotStarted`, with its parameters and first state,
    /// queued for execution. A `clientContext` already used by the same tenant and
    /// app returns that action when the input is the same, and `CONFLICT` when
    /// it differs; concurrent identical requests store one action.
    #[instrument(level = "debug", skip_all, fields(tenant = %actor.tenant_id, action = new.definition.name))]
    pub(crate) async fn invoke(&self, actor: &Actor, new: &NewAction) -> Result<Invoked, AppError> {
        if let Some(context) = &new.client_context
            && let Some(existing) = self.find_by_client_context(actor, context).await?
        {
            return replay_or_conflict(existing, new);
        }
        let at = to_micros(time::now());
        let id = Uuid::now_v7();
        let row = action::Model {
            id,
            tenant_id: actor.tenant_id.clone(),
            app_id: actor.app_id.clone(),
            user_name: actor.user.clone(),
            name: new.definition.name.to_owned(),
            action_reason: new.action_reason.clone(),
            provider: new.vendor.provider.clone(),
            provider_version: new.vendor.provider_version.clone(),
            sub_provider: new.vendor.sub_provider.clone(),
            vendor: new.vendor.vendor.clone(),
            client_context: new.client_context.clone(),
            request_fingerprint: new.fingerprint.clone(),
            status: ActionStatus::NotStarted.as_str().to_owned(),
            error_code: None,
            error_message: None,
            error_subcode: None,
            created_at: at,
            last_action_at: at,
            completed_at: None,
            cancel_requested_at: None,
            work: Some(WORK_EXECUTE.to_owned()),
            due_at: Some(at),
            attempts: 0,
            lease_token: 0,
            lease_owner: None,
            provider_reference: None,
        };
        let action = Action::try_from(row.clone())?;
        let rows = NewRows {
            action: row.into_active_model(),
            parameters: parameter_rows(actor, new, id),
            first_state: state_row(id, actor, ActionStatus::NotStarted, None, at, None),
        };
        let inserted = match self.backend() {
            DbBackend::Postgres => self.insert_in_one_statement(rows).await?,
            _ => self.insert_in_transaction(rows).await?,
        };
        if !inserted {
            // A concurrent request with the same clientContext won the race.
            let context = new.client_context.as_deref().unwrap_or_default();
            let existing = self
                .find_by_client_context(actor, context)
                .await?
                .ok_or_else(|| AppError::internal("idempotency conflict without a row"))?;
            return replay_or_conflict(existing, new);
        }
        metrics::action_invoked(new.definition.name, &new.vendor.provider);
        metrics::action_transition(ActionStatus::NotStarted.as_str());
        Ok(Invoked::Created(action))
    }

    /// The rows in one transaction; `false` when the clientContext was taken
    /// meanwhile.
    async fn insert_in_transaction(&self, rows: NewRows) -> Result<bool, AppError> {
        let txn = self.begin_write().await?;
        let insert = action::Entity::insert(rows.action).on_conflict(idempotency_conflict());
        let inserted = match insert.exec_without_returning(&txn).await {
            Ok(rows) => rows,
            Err(DbErr::RecordNotInserted) => 0,
            Err(err) => return Err(err.into()),
        };
        if inserted == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        parameter::Entity::insert_many(rows.parameters)
            .exec_without_returning(&txn)
            .await?;
        state::Entity::insert(rows.first_state)
            .exec_without_returning(&txn)
            .await?;
        self.commit_appended(txn).await?;
        Ok(true)
    }

    /// The same as one PostgreSQL statement (data-modifying CTEs, atomic like
    /// a transaction): one round trip instead of five, which is most of an
    /// invoke's cost in the database.
    async fn insert_in_one_statement(&self, rows: NewRows) -> Result<bool, AppError> {
        let backend = DbBackend::Postgres;
        let ([action, parameters, first_state], values) = join([
            action::Entity::insert(rows.action)
                .on_conflict(idempotency_conflict())
                .build(backend),
            parameter::Entity::insert_many(rows.parameters).build(backend),
            state::Entity::insert(rows.first_state).build(backend),
        ]);
        // The dependent inserts read nothing from the first, so they are
        // joined to its RETURNING row: when the clientContext conflicts the
        // action is not inserted, and neither are they.
        let sql = format!(
            "WITH inserted AS ({action} RETURNING id), \
                  parameters AS ({}), \
                  first_state AS ({}) \
             SELECT COUNT(*) AS inserted FROM inserted",
            only_if_any(&parameters, "inserted"),
            only_if_any(&first_state, "inserted"),
        );
        let row = self
            .connection()
            .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
            .ok_or_else(|| AppError::internal("the insert returned no row"))?;
        let inserted: i64 = row.try_get("", "inserted")?;
        if inserted == 1 {
            self.states_appended.notify_one();
        }
        Ok(inserted == 1)
    }

    async fn find_by_client_context(
        &self,
        actor: &Actor,
        context: &str,
    ) -> Result<Option<action::Model>, AppError> {
        Ok(action::Entity::find()
            .filter(action::Column::TenantId.eq(actor.tenant_id.as_str()))
            .filter(action::Column::AppId.eq(actor.app_id.as_str()))
            .filter(action::Column::ClientContext.eq(context))
            .one(self.connection())
            .await?)
    }
}

/// The rows of a new action: the action, its parameters and its first state.
struct NewRows {
    action: action::ActiveModel,
    parameters: Vec<parameter::ActiveModel>,
    first_state: state::ActiveModel,
}

/// The idempotency key: one action per tenant, app and clientContext.
fn idempotency_conflict() -> OnConflict {
    OnConflict::columns([
        action::Column::TenantId,
        action::Column::AppId,
        action::Column::ClientContext,
    ])
    .target_and_where(Expr::col(action::Column::ClientContext).is_not_null())
    .do_nothing()
    .to_owned()
}

fn parameter_rows(actor: &Actor, new: &NewAction, id: Uuid) -> Vec<parameter::ActiveModel> {
    new.parameters
        .iter()
        .enumerate()
        .map(|(position, p)| parameter::ActiveModel {
            action_id: Set(id),
            position: Set(position as i32),
            tenant_id: Set(actor.tenant_id.clone()),
            name: Set(p.name.clone()),
            value: Set(p.value.clone()),
        })
        .collect()
}

fn replay_or_conflict(existing: action::Model, new: &NewAction) -> Result<Invoked, AppError> {
    if existing.request_fingerprint == new.fingerprint {
        Ok(Invoked::Replayed(existing.try_into()?))
    } else {
        Err(AppError::Conflict(format!(
            "clientContext was already used for action {} with different input",
            existing.id
        )))
    }
}
