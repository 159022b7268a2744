//! The executor's queue in the store: claiming due actions with a lease, and
//! recording what became of each attempt.
//!
//! A claim takes rows whose `work` is due (`due_at <= now`), in one transaction:
//! on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so executors on several replicas
//! never take the same row; on SQLite under the write lock (`BEGIN IMMEDIATE`).
//! It sets the lease (owner, `due_at` = expiry) and increments `lease_token`, the
//! fence every later write of the attempt must match. An action claimed from
//! `NotStarted` moves to `Running` in the same transaction: the one status
//! change made for a whole batch at once rather than through `Transition`
//! (`store::transition` says how it keeps the same rules). How an attempt
//! ends is recorded through `Transition`, fenced by the lease, a batch of
//! them at once (`store::closing`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tracing::instrument;
use uuid::Uuid;

use super::Store;
use super::entities::{action, parameter, state};
use super::transition::{WORK_EXECUTE, WORK_REVERT, state_row};
use crate::domain::action::{Action, Actor, ErrorInfo, Parameter};
use crate::domain::status::ActionStatus;
use crate::domain::time::{self, to_micros};
use crate::error::AppError;
use crate::telemetry::metrics;

/// Most indicators (and then holders) one query of
/// [`Store::indicators_held_elsewhere`] looks up: well within the databases'
/// parameter limits.
const HELD_CHUNK: usize = 500;

/// What a claimed action is to have done to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Work {
    /// Carry it out on the provider.
    Execute,
    /// Lift its effect (it was canceled).
    Revert,
}

impl Work {
    pub(super) fn stored(self) -> &'static str {
        match self {
            Work::Execute => WORK_EXECUTE,
            Work::Revert => WORK_REVERT,
        }
    }

    fn from_stored(value: Option<&str>) -> Option<Work> {
        match value {
            Some(WORK_EXECUTE) => Some(Work::Execute),
            Some(WORK_REVERT) => Some(Work::Revert),
            _ => None,
        }
    }
}

/// Work that goes to a provider in one call: one provider's, one tenant's,
/// one kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Group {
    pub provider: String,
    pub tenant_id: String,
    pub work: Work,
}

/// The identity of one claim: the fence its writes must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    pub action_id: Uuid,
    pub tenant_id: String,
    pub token: i64,
}

/// An action claimed by a worker.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub lease: Lease,
    pub work: Work,
    /// The action as it stands after the claim.
    pub action: Action,
    pub parameters: Vec<Parameter>,
    /// Attempts at the current work, this one included.
    pub attempts: i32,
    /// What the provider returned when it applied the action, if it did.
    pub provider_reference: Option<String>,
}

/// What became of a write that closes an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterWork {
    /// Recorded.
    Recorded,
    /// A cancel arrived during the attempt: the action now waits for its
    /// revert (due at once); the worker may claim it again.
    CancelPending,
    /// The lease was taken over (it expired); the result was discarded.
    LostLease,
}

impl Store {
    /// Claims up to `limit` due actions for `owner`, leased for `lease`,
    /// oldest due first.
    pub(crate) async fn claim_due(
        &self,
        owner: &str,
        limit: u64,
        lease: Duration,
    ) -> Result<Vec<Claim>, AppError> {
        self.claim(owner, limit, lease, None).await
    }

    /// Claims, as [`Store::claim_due`], only the due work of `group`: more
    /// for a call that has room left.
    pub(crate) async fn claim_due_of(
        &self,
        owner: &str,
        group: &Group,
        limit: u64,
        lease: Duration,
    ) -> Result<Vec<Claim>, AppError> {
        self.claim(owner, limit, lease, Some(group)).await
    }

    #[instrument(level = "debug", skip(self), fields(db.system = self.db_system()))]
    async fn claim(
        &self,
        owner: &str,
        limit: u64,
        lease: Duration,
        only: Option<&Group>,
    ) -> Result<Vec<Claim>, AppError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let txn = self.begin_write().await?;
        // Read the clock once the write lock is held, so waiting for it does
        // not shorten the lease.
        let now = to_micros(time::now());
        let until = now + lease.as_micros() as i64;
        let mut due = action::Entity::find()
            .select_only()
            .column(action::Column::Id)
            .column(action::Column::Status)
            .column(action::Column::TenantId)
            .column(action::Column::LeaseOwner)
            .filter(action::Column::Work.is_not_null())
            .filter(action::Column::DueAt.lte(now))
            .order_by_asc(action::Column::DueAt)
            .limit(limit);
        if let Some(group) = only {
            due = due
                .filter(action::Column::Provider.eq(group.provider.as_str()))
                .filter(action::Column::TenantId.eq(group.tenant_id.as_str()))
                .filter(action::Column::Work.eq(group.work.stored()));
        }
        if self.backend() == DbBackend::Postgres {
            QuerySelect::query(&mut due)
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let due: Vec<(Uuid, String, String, Option<String>)> = due.into_tuple().all(&txn).await?;
        if due.is_empty() {
            txn.rollback().await?;
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = due.iter().map(|(id, ..)| *id).collect();
        // A lease still set on due work expired: its holder died or stalled.
        let taken_over = due.iter().filter(|(.., owner)| owner.is_some()).count();
        let starts = Expr::col(action::Column::Status)
            .eq(ActionStatus::NotStarted.as_str())
            .and(Expr::col(action::Column::Work).eq(WORK_EXECUTE));
        action::Entity::update_many()
            .col_expr(action::Column::LeaseOwner, Expr::val(owner))
            .col_expr(
                action::Column::LeaseToken,
                Expr::col(action::Column::LeaseToken).add(1),
            )
            .col_expr(action::Column::DueAt, Expr::val(until))
            .col_expr(
                action::Column::Attempts,
                Expr::col(action::Column::Attempts).add(1),
            )
            .col_expr(
                action::Column::Status,
                Expr::case(starts.clone(), Expr::val(ActionStatus::Running.as_str()))
                    .finally(Expr::col(action::Column::Status))
                    .into(),
            )
            .col_expr(
                action::Column::LastActionAt,
                Expr::case(starts, Expr::val(now))
                    .finally(Expr::col(action::Column::LastActionAt))
                    .into(),
            )
            .filter(action::Column::Id.is_in(ids.clone()))
            .exec(&txn)
            .await?;
        let started: Vec<state::ActiveModel> = due
            .iter()
            .filter(|(_, status, ..)| status == ActionStatus::NotStarted.as_str())
            .map(|(id, _, tenant, _)| {
                state_row(
                    *id,
                    &Actor::executor(tenant),
                    ActionStatus::Running,
                    Some(ActionStatus::NotStarted),
                    now,
                    None,
                )
            })
            .collect();
        let started_count = started.len();
        if !started.is_empty() {
            state::Entity::insert_many(started)
                .exec_without_returning(&txn)
                .await?;
        }
        let rows = action::Entity::find()
            .filter(action::Column::Id.is_in(ids.clone()))
            .all(&txn)
            .await?;
        let mut parameters: HashMap<Uuid, Vec<Parameter>> = HashMap::new();
        for row in parameter::Entity::find()
            .filter(parameter::Column::ActionId.is_in(ids))
            .order_by_asc(parameter::Column::ActionId)
            .order_by_asc(parameter::Column::Position)
            .all(&txn)
            .await?
        {
            parameters
                .entry(row.action_id)
                .or_default()
                .push(row.into());
        }
        let starting = started_count;
        self.commit_appended(txn).await?;
        metrics::claimed(rows.len(), taken_over);
        metrics::action_transitions(ActionStatus::Running.as_str(), starting);
        rows.into_iter()
            .filter_map(|row| {
                let work = Work::from_stored(row.work.as_deref())?;
                Some((row, work))
            })
            .map(|(row, work)| {
                Ok(Claim {
                    lease: Lease {
                        action_id: row.id,
                        tenant_id: row.tenant_id.clone(),
                        token: row.lease_token,
                    },
                    work,
                    attempts: row.attempts,
                    provider_reference: row.provider_reference.clone(),
                    parameters: parameters.remove(&row.id).unwrap_or_default(),
                    action: row.try_into()?,
                })
            })
            .collect()
    }

    /// The attempts failed for reasons that may pass: try `work` again after
    /// each one's delay. The actions keep their status; `errorInfo` shows the
    /// last error. One transaction for them all; one result per item, in order.
    #[instrument(level = "debug", skip_all, fields(count = retries.len(), db.system = self.db_system()))]
    pub(crate) async fn record_retries(
        &self,
        retries: &[(Lease, Duration, ErrorInfo)],
        work: Work,
    ) -> Result<Vec<AfterWork>, AppError> {
        if retries.is_empty() {
            return Ok(Vec::new());
        }
        let now = to_micros(time::now());
        let txn = self.begin_write().await?;
        let mut recorded = Vec::with_capacity(retries.len());
        for (lease, delay, error) in retries {
            let result = action::Entity::update_many()
                .col_expr(
                    action::Column::LeaseOwner,
                    Expr::val(Option::<String>::None),
                )
                .col_expr(
                    action::Column::DueAt,
                    Expr::val(now + delay.as_micros() as i64),
                )
                .col_expr(action::Column::ErrorCode, Expr::val(error.code))
                .col_expr(
                    action::Column::ErrorMessage,
                    Expr::val(error.message.as_str()),
                )
                .col_expr(action::Column::ErrorSubcode, Expr::val(error.subcode))
                .filter(action::Column::Id.eq(lease.action_id))
                .filter(action::Column::LeaseToken.eq(lease.token))
                .filter(action::Column::Work.eq(work.stored()))
                .exec(&txn)
                .await?;
            recorded.push(result.rows_affected == 1);
        }
        txn.commit().await?;
        let mut outcomes = Vec::with_capacity(retries.len());
        for ((lease, ..), recorded) in retries.iter().zip(recorded) {
            outcomes.push(if recorded {
                AfterWork::Recorded
            } else {
                self.hand_over_to_revert(lease, None).await?
            });
        }
        Ok(outcomes)
    }

    /// Of `indicators` (actions on `provider`, each with its indicator
    /// parameter), those whose indicator an action other than itself, on
    /// `provider`, still holds (it is running or completed, and not being
    /// canceled). For providers that keep one indicator per value for all
    /// their users; the executor asks before lifting a batch of them. A few
    /// queries for the whole batch, not one per action: a revert of hundreds
    /// must reach its provider well within its lease. Only which of the
    /// given actions are held leaves here, never another tenant's data.
    #[instrument(level = "debug", skip_all, fields(count = indicators.len(), db.system = self.db_system()))]
    pub(crate) async fn indicators_held_elsewhere(
        &self,
        provider: &str,
        indicators: &[(Uuid, &Parameter)],
    ) -> Result<HashSet<Uuid>, AppError> {
        let mut held = HashSet::new();
        for chunk in indicators.chunks(HELD_CHUNK) {
            // Every action with one of these indicators, by name and value.
            let mut values_by_name: HashMap<&str, Vec<&str>> = HashMap::new();
            for (_, parameter) in chunk {
                values_by_name
                    .entry(parameter.name.as_str())
                    .or_default()
                    .push(parameter.value.as_str());
            }
            let mut carriers: Vec<(Uuid, String, String)> = Vec::new();
            for (name, values) in values_by_name {
                let rows: Vec<(Uuid, String)> = parameter::Entity::find()
                    .select_only()
                    .column(parameter::Column::ActionId)
                    .column(parameter::Column::Value)
                    .filter(parameter::Column::Name.eq(name))
                    .filter(parameter::Column::Value.is_in(values))
                    .into_tuple()
                    .all(self.connection())
                    .await?;
                carriers.extend(
                    rows.into_iter()
                        .map(|(id, value)| (id, name.to_owned(), value)),
                );
            }
            // Of those, the ones that hold their indicator.
            let mut ids: Vec<Uuid> = carriers.iter().map(|(id, ..)| *id).collect();
            ids.sort();
            ids.dedup();
            let mut holding: HashSet<Uuid> = HashSet::new();
            for ids in ids.chunks(HELD_CHUNK) {
                let found: Vec<Uuid> = action::Entity::find()
                    .select_only()
                    .column(action::Column::Id)
                    .filter(action::Column::Id.is_in(ids.to_vec()))
                    .filter(action::Column::Provider.eq(provider))
                    .filter(action::Column::Status.is_in([
                        ActionStatus::Running.as_str(),
                        ActionStatus::Completed.as_str(),
                    ]))
                    .filter(action::Column::CancelRequestedAt.is_null())
                    .into_tuple()
                    .all(self.connection())
                    .await?;
                holding.extend(found);
            }
            let mut holders: HashMap<(&str, &str), Vec<Uuid>> = HashMap::new();
            for (id, name, value) in &carriers {
                if holding.contains(id) {
                    holders
                        .entry((name.as_str(), value.as_str()))
                        .or_default()
                        .push(*id);
                }
            }
            for (id, parameter) in chunk {
                let key = (parameter.name.as_str(), parameter.value.as_str());
                if holders
                    .get(&key)
                    .is_some_and(|ids| ids.iter().any(|holder| holder != id))
                {
                    held.insert(*id);
                }
            }
        }
        Ok(held)
    }

    /// Gives back every lease `owner` holds, due at once, so another executor
    /// takes the work without waiting for the leases to expire.
    #[instrument(level = "debug", skip(self), fields(db.system = self.db_system()))]
    pub(crate) async fn release_leases(&self, owner: &str) -> Result<u64, AppError> {
        let now = to_micros(time::now());
        let result = action::Entity::update_many()
            .col_expr(
                action::Column::LeaseOwner,
                Expr::val(Option::<String>::None),
            )
            .col_expr(action::Column::DueAt, Expr::val(now))
            .filter(action::Column::LeaseOwner.eq(owner))
            .filter(action::Column::Work.is_not_null())
            .exec(self.connection())
            .await?;
        Ok(result.rows_affected)
    }

    /// Called when a cancel arrived during an attempt (or when a closing write
    /// matched no row, to find out whether that is why): if the work is now
    /// `revert` and the lease still ours, the revert is made due at once
    /// (keeping `reference`, when the attempt applied the action, so the revert
    /// knows what to lift). Otherwise the lease was taken over.
    pub(crate) async fn hand_over_to_revert(
        &self,
        lease: &Lease,
        reference: Option<&str>,
    ) -> Result<AfterWork, AppError> {
        let now = to_micros(time::now());
        let mut update = action::Entity::update_many()
            .col_expr(
                action::Column::LeaseOwner,
                Expr::val(Option::<String>::None),
            )
            .col_expr(action::Column::DueAt, Expr::val(now))
            .col_expr(action::Column::Attempts, Expr::val(0));
        if let Some(reference) = reference {
            update = update.col_expr(action::Column::ProviderReference, Expr::val(reference));
        }
        let result = update
            .filter(action::Column::Id.eq(lease.action_id))
            .filter(action::Column::LeaseToken.eq(lease.token))
            .filter(action::Column::Work.eq(WORK_REVERT))
            .filter(action::Column::LeaseOwner.is_not_null())
            .exec(self.connection())
            .await?;
        Ok(if result.rows_affected == 1 {
            AfterWork::CancelPending
        } else {
            AfterWork::LostLease
        })
    }
}
