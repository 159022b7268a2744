//! Storing new actions, one or a batch: each action, its parameters and its
//! first state in one write, with `clientContext` as an idempotency key per
//! tenant and app.

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QueryTrait, Statement,
};
use tracing::instrument;
use uuid::Uuid;

use super::Store;
use super::entities::{action, parameter, state};
use super::rows::returned_ids;
use super::sql::{join, only_for_inserted};
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
    pub(crate) fn action(&self) -> &Action {
        match self {
            Invoked::Created(action) | Invoked::Replayed(action) => action,
        }
    }

    pub(crate) fn into_action(self) -> Action {
        match self {
            Invoked::Created(action) | Invoked::Replayed(action) => action,
        }
    }
}

/// Most values bound in one statement: below SQLite's limit (32,766) and
/// PostgreSQL's (65,535), so a batch is written in as few statements as fit.
const MAX_VALUES_PER_STATEMENT: usize = 30_000;

impl Store {
    /// Stores a new action `NotStarted`, with its parameters and first state,
    /// queued for execution. A `clientContext` already used by the same tenant and
    /// app returns that action when the input is the same, and `CONFLICT` when
    /// it differs; concurrent identical requests store one action.
    pub(crate) async fn invoke(&self, actor: &Actor, new: &NewAction) -> Result<Invoked, AppError> {
        self.invoke_many(actor, std::slice::from_ref(new))
            .await?
            .pop()
            .ok_or_else(|| AppError::internal("an invoke without its outcome"))?
    }

    /// Stores a batch of new actions as `invoke` stores one, each with its
    /// own outcome in the order given: the rows of every new action in one
    /// round trip on PostgreSQL (one transaction elsewhere). A `clientContext`
    /// given twice in the batch is stored once; its second use replays the
    /// first, or is a `CONFLICT` when the input differs.
    #[instrument(level = "debug", skip_all, fields(db.system = self.db_system(), tenant = %actor.tenant_id, actions = batch.len()))]
    pub(crate) async fn invoke_many(
        &self,
        actor: &Actor,
        batch: &[NewAction],
    ) -> Result<Vec<Result<Invoked, AppError>>, AppError> {
        let mut outcomes: Vec<Option<Result<Invoked, AppError>>> =
            batch.iter().map(|_| None).collect();
        let contexts: Vec<&str> = batch
            .iter()
            .filter_map(|new| new.client_context.as_deref())
            .collect();
        let earlier = self.find_by_client_contexts(actor, &contexts).await?;

        // Which items are new, which replay an earlier action, and which
        // repeat a clientContext of an item before them in this batch.
        let mut fresh = Vec::new();
        let mut repeats = Vec::new();
        let mut first_of_context: HashMap<&str, usize> = HashMap::new();
        for (i, new) in batch.iter().enumerate() {
            if let Some(context) = new.client_context.as_deref() {
                if let Some(existing) = earlier.get(context) {
                    outcomes[i] = Some(replay_or_conflict(existing.clone(), new));
                    continue;
                }
                if let Some(&first) = first_of_context.get(context) {
                    repeats.push((i, first));
                    continue;
                }
                first_of_context.insert(context, i);
            }
            fresh.push(i);
        }

        let at = to_micros(time::now());
        let rows: Vec<(usize, action::Model)> = fresh
            .iter()
            .map(|&i| (i, action_row(actor, &batch[i], at)))
            .collect();
        let inserted = self.insert_rows(actor, batch, &rows, at).await?;

        // Items whose clientContext a concurrent request took meanwhile.
        let lost: Vec<&str> = rows
            .iter()
            .filter(|(_, row)| !inserted.contains(&row.id))
            .filter_map(|(i, _)| batch[*i].client_context.as_deref())
            .collect();
        let winners = self.find_by_client_contexts(actor, &lost).await?;
        for (i, row) in rows {
            outcomes[i] = Some(if inserted.contains(&row.id) {
                metrics::action_invoked(batch[i].definition.name, &batch[i].vendor.provider);
                metrics::action_transition(ActionStatus::NotStarted.as_str());
                Action::try_from(row).map(Invoked::Created)
            } else {
                let context = batch[i].client_context.as_deref().unwrap_or_default();
                match winners.get(context) {
                    Some(existing) => replay_or_conflict(existing.clone(), &batch[i]),
                    None => Err(AppError::internal("idempotency conflict without a row")),
                }
            });
        }
        for (i, first) in repeats {
            outcomes[i] = Some(match &outcomes[first] {
                Some(Ok(invoked)) => {
                    let action = invoked.action().clone();
                    if batch[first].fingerprint == batch[i].fingerprint {
                        Ok(Invoked::Replayed(action))
                    } else {
                        Err(conflict(action.id))
                    }
                }
                _ => Err(AppError::Conflict(
                    "clientContext was already used with different input".to_owned(),
                )),
            });
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| AppError::internal("an item without its outcome")))
            .collect()
    }

    /// Inserts the rows of new actions; returns the ids inserted (an action
    /// whose clientContext was taken meanwhile is not, nor its other rows).
    async fn insert_rows(
        &self,
        actor: &Actor,
        batch: &[NewAction],
        rows: &[(usize, action::Model)],
        at: i64,
    ) -> Result<HashSet<Uuid>, AppError> {
        if rows.is_empty() {
            return Ok(HashSet::new());
        }
        let actions: Vec<action::ActiveModel> = rows
            .iter()
            .map(|(_, row)| row.clone().into_active_model())
            .collect();
        let parameters: Vec<parameter::ActiveModel> = rows
            .iter()
            .flat_map(|(i, row)| parameter_rows(actor, &batch[*i], row.id))
            .collect();
        let first_states: Vec<state::ActiveModel> = rows
            .iter()
            .map(|(_, row)| state_row(row.id, actor, ActionStatus::NotStarted, None, at, None))
            .collect();
        if self.backend() == DbBackend::Postgres {
            let statement = one_statement(&actions, &parameters, &first_states);
            if statement.values.as_ref().map_or(0, |v| v.0.len()) <= MAX_VALUES_PER_STATEMENT * 2 {
                let ids = returned_ids(&self.connection().query_all_raw(statement).await?, "id")?;
                if !ids.is_empty() {
                    self.states_appended.notify_one();
                }
                return Ok(ids);
            }
        }
        self.insert_in_transaction(actions, parameters, first_states)
            .await
    }

    /// The rows in one transaction, each table in as few statements as fit.
    async fn insert_in_transaction(
        &self,
        actions: Vec<action::ActiveModel>,
        parameters: Vec<parameter::ActiveModel>,
        first_states: Vec<state::ActiveModel>,
    ) -> Result<HashSet<Uuid>, AppError> {
        let backend = self.backend();
        let txn = self.begin_write().await?;
        let mut inserted = HashSet::new();
        for chunk in chunks(actions, ACTION_COLUMNS) {
            let mut statement = action::Entity::insert_many(chunk)
                .on_conflict(idempotency_conflict())
                .build(backend);
            statement.sql.push_str(" RETURNING id");
            inserted.extend(returned_ids(&txn.query_all_raw(statement).await?, "id")?);
        }
        if inserted.is_empty() {
            txn.rollback().await?;
            return Ok(inserted);
        }
        let parameters = parameters.into_iter().filter(|p| {
            p.action_id
                .try_as_ref()
                .is_some_and(|id| inserted.contains(id))
        });
        for chunk in chunks(parameters, 5) {
            parameter::Entity::insert_many(chunk)
                .exec_without_returning(&txn)
                .await?;
        }
        let first_states = first_states.into_iter().filter(|s| {
            s.action_id
                .try_as_ref()
                .is_some_and(|id| inserted.contains(id))
        });
        for chunk in chunks(first_states, 10) {
            state::Entity::insert_many(chunk)
                .exec_without_returning(&txn)
                .await?;
        }
        self.commit_appended(txn).await?;
        Ok(inserted)
    }

    /// The actions of the tenant and app with any of the `contexts`, by
    /// clientContext.
    async fn find_by_client_contexts(
        &self,
        actor: &Actor,
        contexts: &[&str],
    ) -> Result<HashMap<String, action::Model>, AppError> {
        let mut found = HashMap::new();
        if contexts.is_empty() {
            return Ok(found);
        }
        for chunk in contexts.chunks(MAX_VALUES_PER_STATEMENT / 10) {
            let rows = action::Entity::find()
                .filter(action::Column::TenantId.eq(actor.tenant_id.as_str()))
                .filter(action::Column::AppId.eq(actor.app_id.as_str()))
                .filter(action::Column::ClientContext.is_in(chunk.iter().copied()))
                .all(self.connection())
                .await?;
            for row in rows {
                if let Some(context) = row.client_context.clone() {
                    found.insert(context, row);
                }
            }
        }
        Ok(found)
    }
}

/// Columns of the action table, to size statements.
const ACTION_COLUMNS: usize = 26;

/// `rows` in groups small enough for one statement each, at `columns`
/// values a row.
fn chunks<T>(rows: impl IntoIterator<Item = T>, columns: usize) -> Vec<Vec<T>> {
    let size = (MAX_VALUES_PER_STATEMENT / columns).max(1);
    let mut groups: Vec<Vec<T>> = Vec::new();
    for row in rows {
        match groups.last_mut() {
            Some(group) if group.len() < size => group.push(row),
            _ => groups.push(vec![row]),
        }
    }
    groups
}

/// The rows as one PostgreSQL statement (data-modifying CTEs, atomic like
/// a transaction): one round trip instead of one per table, which is most of
/// an invoke's cost in the database. It returns the ids inserted.
fn one_statement(
    actions: &[action::ActiveModel],
    parameters: &[parameter::ActiveModel],
    first_states: &[state::ActiveModel],
) -> Statement {
    let backend = DbBackend::Postgres;
    let ([actions, parameters, first_states], values) = join([
        action::Entity::insert_many(actions.to_vec())
            .on_conflict(idempotency_conflict())
            .build(backend),
        parameter::Entity::insert_many(parameters.to_vec()).build(backend),
        state::Entity::insert_many(first_states.to_vec()).build(backend),
    ]);
    // The dependent rows read nothing from the actions' insert, so each is
    // kept only when its action was inserted: when a clientContext
    // conflicts, that action is not inserted, and neither are its rows.
    let sql = format!(
        "WITH inserted AS ({actions} RETURNING id), \
              parameters AS ({}), \
              first_states AS ({}) \
         SELECT id FROM inserted",
        only_for_inserted(&parameters, "inserted", "action_id"),
        only_for_inserted(&first_states, "inserted", "action_id"),
    );
    Statement::from_sql_and_values(backend, sql, values)
}

/// The action row of a new action, `NotStarted` and due at once.
fn action_row(actor: &Actor, new: &NewAction, at: i64) -> action::Model {
    action::Model {
        id: Uuid::now_v7(),
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
        trace_context: new.trace_context.clone(),
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
        Err(conflict(existing.id))
    }
}

fn conflict(id: Uuid) -> AppError {
    AppError::Conflict(format!(
        "clientContext was already used for action {id} with different input"
    ))
}
