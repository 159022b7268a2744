//! Storing new actions: the action, its parameters and its first state in
//! one write, with `clientContext` as an idempotency key per tenant and app.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryTrait, Statement,
};
use tracing::instrument;
use uuid::Uuid;

use super::Store;
use super::entities::{action, parameter, state};
use super::sql::{only_if_any, renumber};
use super::transition::{WORK_EXECUTE, append_state};
use crate::domain::action::{Action, Actor, NewAction};
use crate::domain::status::ActionStatus;
use crate::domain::time::{self, to_micros};
use crate::error::AppError;

/// What `invoke` did.
#[derive(Debug)]
pub enum Invoked {
    /// A new action was stored.
    Created(Action),
    /// The `clientContext` was used before with the same input: this is that action.
    Replayed(Action),
}

impl Invoked {
    pub fn into_action(self) -> Action {
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
    pub async fn invoke(&self, actor: &Actor, new: &NewAction) -> Result<Invoked, AppError> {
        if let Some(context) = &new.client_context
            && let Some(existing) = self.find_by_client_context(actor, context).await?
        {
            return replay_or_conflict(existing, new);
        }
        let now = time::now();
        let at = to_micros(now);
        let id = Uuid::now_v7();
        let row = action::ActiveModel {
            id: Set(id),
            tenant_id: Set(actor.tenant_id.clone()),
            app_id: Set(actor.app_id.clone()),
            user_name: Set(actor.user.clone()),
            name: Set(new.definition.name.to_owned()),
            action_reason: Set(new.action_reason.clone()),
            provider: Set(new.vendor.provider.clone()),
            provider_version: Set(new.vendor.provider_version.clone()),
            sub_provider: Set(new.vendor.sub_provider.clone()),
            vendor: Set(new.vendor.vendor.clone()),
            client_context: Set(new.client_context.clone()),
            request_fingerprint: Set(new.fingerprint.clone()),
            status: Set(ActionStatus::NotStarted.as_str().to_owned()),
            error_code: Set(None),
            error_message: Set(None),
            error_subcode: Set(None),
            created_at: Set(at),
            last_action_at: Set(at),
            completed_at: Set(None),
            cancel_requested_at: Set(None),
            work: Set(Some(WORK_EXECUTE.to_owned())),
            due_at: Set(Some(at)),
            attempts: Set(0),
            lease_token: Set(0),
            lease_owner: Set(None),
            provider_reference: Set(None),
        };
        let inserted = match self.backend() {
            DbBackend::Postgres => {
                self.insert_in_one_statement(row, actor, new, id, at)
                    .await?
            }
            _ => self.insert_in_transaction(row, actor, new, id, at).await?,
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
        Ok(Invoked::Created(Action {
            id,
            tenant_id: actor.tenant_id.clone(),
            app_id: actor.app_id.clone(),
            user: actor.user.clone(),
            name: new.definition.name.to_owned(),
            action_reason: new.action_reason.clone(),
            vendor: new.vendor.clone(),
            client_context: new.client_context.clone(),
            status: ActionStatus::NotStarted,
            error: None,
            created_at: now,
            last_action_at: now,
            completed_at: None,
            cancel_requested_at: None,
        }))
    }

    /// The action, its parameters and its first state in one transaction;
    /// `false` when the clientContext was taken meanwhile.
    async fn insert_in_transaction(
        &self,
        row: action::ActiveModel,
        actor: &Actor,
        new: &NewAction,
        id: Uuid,
        at: i64,
    ) -> Result<bool, AppError> {
        let txn = self.begin_write().await?;
        let insert = action::Entity::insert(row).on_conflict(idempotency_conflict());
        let inserted = match insert.exec_without_returning(&txn).await {
            Ok(rows) => rows,
            Err(DbErr::RecordNotInserted) => 0,
            Err(err) => return Err(err.into()),
        };
        if inserted == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        parameter::Entity::insert_many(parameter_rows(actor, new, id))
            .exec_without_returning(&txn)
            .await?;
        append_state(&txn, id, actor, ActionStatus::NotStarted, None, at, None).await?;
        self.commit_appended(txn).await?;
        Ok(true)
    }

    /// The same as one PostgreSQL statement (data-modifying CTEs, atomic like
    /// a transaction): one round trip instead of five, which is most of an
    /// invoke's cost in the database.
    async fn insert_in_one_statement(
        &self,
        row: action::ActiveModel,
        actor: &Actor,
        new: &NewAction,
        id: Uuid,
        at: i64,
    ) -> Result<bool, AppError> {
        use sea_orm::sea_query::{PostgresQueryBuilder, Query};
        let backend = DbBackend::Postgres;
        let action_insert = action::Entity::insert(row)
            .on_conflict(idempotency_conflict())
            .build(backend);
        let mut parameters = Query::insert()
            .into_table(parameter::Entity)
            .columns([
                parameter::Column::ActionId,
                parameter::Column::Position,
                parameter::Column::TenantId,
                parameter::Column::Name,
                parameter::Column::Value,
            ])
            .to_owned();
        for p in parameter_rows(actor, new, id) {
            parameters.values_panic([
                p.action_id.unwrap().into(),
                p.position.unwrap().into(),
                p.tenant_id.unwrap().into(),
                p.name.unwrap().into(),
                p.value.unwrap().into(),
            ]);
        }
        let state = Query::insert()
            .into_table(state::Entity)
            .columns([
                state::Column::ActionId,
                state::Column::TenantId,
                state::Column::AppId,
                state::Column::UserName,
                state::Column::Status,
                state::Column::OccurredAt,
            ])
            .values_panic([
                id.into(),
                actor.tenant_id.clone().into(),
                actor.app_id.clone().into(),
                actor.user.clone().into(),
                ActionStatus::NotStarted.as_str().into(),
                at.into(),
            ])
            .to_owned();
        // The dependent inserts read nothing from the first, so they are
        // joined to its RETURNING row: when the clientContext conflicts the
        // action is not inserted, and neither are they.
        let (parameters_sql, parameter_values) = parameters.build(PostgresQueryBuilder);
        let (state_sql, state_values) = state.build(PostgresQueryBuilder);
        let offset = action_insert.values.as_ref().map_or(0, |v| v.0.len());
        let parameters_sql = renumber(&parameters_sql, offset);
        let state_sql = renumber(&state_sql, offset + parameter_values.0.len());
        let sql = format!(
            "WITH inserted AS ({} RETURNING id), \
                  parameters AS ({}), \
                  first_state AS ({}) \
             SELECT COUNT(*) AS inserted FROM inserted",
            action_insert.sql,
            only_if_any(&parameters_sql, "inserted"),
            only_if_any(&state_sql, "inserted"),
        );
        let mut values = action_insert.values.map(|v| v.0).unwrap_or_default();
        values.extend(parameter_values.0);
        values.extend(state_values.0);
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
