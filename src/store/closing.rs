//! How attempts end, recorded for a whole batch of the executor's at once.
//!
//! The executor hands a provider many actions in one call and then records how
//! each ended: each action's own status change, fenced by its own lease, with
//! its own state row, yet in as few round trips as the database allows. On
//! SQLite that is one write transaction for the batch (one commit, one sync);
//! on PostgreSQL, one statement per kind of change: a guarded `UPDATE … FROM
//! (VALUES …)` whose rows carry each action's id, tenant, fence and values, as
//! a CTE, with the state rows inserted from what it returned. Either way each
//! row is the [`Transition`] a single change would make (the same guards, the
//! same columns, the same state row); a change whose guard no longer holds is
//! not written, and [`Store::hand_over_to_revert`] says why.
//!
//! Putting work back without counting an attempt (a provider said "not now",
//! or the claim took more than there are free calls for) is here too, batched
//! the same way.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, IdenStatic, QueryFilter, QuerySelect, Value};
use tracing::instrument;
use uuid::Uuid;

use super::Store;
use super::entities::action;
use super::rows::returned_ids;
use super::transition::{Transition, WORK_EXECUTE, WORK_REVERT};
use super::work::{AfterWork, Lease, Work};
use crate::domain::action::{Actor, ErrorInfo};
use crate::domain::status::ActionStatus;
use crate::domain::time::{self, to_micros};
use crate::error::AppError;
use crate::telemetry::metrics;

/// How one attempt ended for good (its work is done either way).
#[derive(Debug, Clone)]
pub(crate) enum Closing {
    /// The provider applied the action: `Running → Completed`, keeping its
    /// reference for a later revert.
    Applied { reference: Option<String> },
    /// Execution failed for good: `Running → Failed` with `errorInfo`.
    Failed { error: ErrorInfo },
    /// The effect was lifted: `from → Canceled`, with `detail` in the state row.
    Reverted {
        from: ActionStatus,
        detail: Option<String>,
    },
    /// The revert failed for good: the action is (still) `Completed`, its
    /// `errorInfo` says why, and a state row records it. A new cancel tries again.
    RevertFailed {
        from: ActionStatus,
        error: ErrorInfo,
    },
}

impl Closing {
    /// The status change that records this ending of `lease`'s attempt at `now`.
    fn transition(&self, lease: &Lease, now: i64) -> Transition {
        let id = lease.action_id;
        match self {
            Closing::Applied { reference } => {
                Transition::new(id, ActionStatus::Running, ActionStatus::Completed)
                    .fenced(lease.token, WORK_EXECUTE)
                    .set(action::Column::CompletedAt, Expr::val(now))
                    .set(
                        action::Column::ProviderReference,
                        Expr::val(reference.clone()),
                    )
                    .set_error(None)
                    .done()
            }
            Closing::Failed { error } => {
                Transition::new(id, ActionStatus::Running, ActionStatus::Failed)
                    .fenced(lease.token, WORK_EXECUTE)
                    .set(action::Column::CompletedAt, Expr::val(now))
                    .set_error(Some(error))
                    .done()
            }
            Closing::Reverted { from, detail } => {
                let mut transition = Transition::new(id, *from, ActionStatus::Canceled)
                    .fenced(lease.token, WORK_REVERT)
                    .set(action::Column::CompletedAt, Expr::val(now))
                    .set_error(None)
                    .done();
                transition.detail = detail.clone();
                transition
            }
            Closing::RevertFailed { from, error } => {
                let mut transition = Transition::new(id, *from, ActionStatus::Completed)
                    .fenced(lease.token, WORK_REVERT)
                    .set_error(Some(error))
                    .done();
                transition.detail = Some(error.message.clone());
                if *from == ActionStatus::Running {
                    transition = transition.set(action::Column::CompletedAt, Expr::val(now));
                }
                transition
            }
        }
    }

    /// What the provider returned, to keep when the action is handed over to
    /// a revert instead.
    fn reference(&self) -> Option<&str> {
        match self {
            Closing::Applied { reference } => reference.as_deref(),
            _ => None,
        }
    }
}

impl Store {
    /// Records how each attempt of a batch ended: one result per item, in
    /// order. An item whose fence no longer holds is not written; it comes
    /// back as [`AfterWork::CancelPending`] (a cancel arrived meanwhile) or
    /// [`AfterWork::LostLease`]. Safe to call again after an error: an item
    /// an earlier call already closed comes back as [`AfterWork::Recorded`].
    #[instrument(level = "debug", skip_all, fields(count = items.len(), db.system = self.db_system()))]
    pub(crate) async fn close_attempts(
        &self,
        items: &[(Lease, Closing)],
    ) -> Result<Vec<AfterWork>, AppError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let now = to_micros(time::now());
        let transitions: Vec<(Transition, Actor)> = items
            .iter()
            .map(|(lease, closing)| {
                (
                    closing.transition(lease, now),
                    Actor::executor(&lease.tenant_id),
                )
            })
            .collect();
        let targets: Vec<ActionStatus> = transitions.iter().map(|(t, _)| t.to).collect();
        let applied = if self.backend() == DbBackend::Postgres {
            self.apply_many_postgres(transitions, now).await?
        } else {
            let txn = self.begin_write().await?;
            let mut applied = Vec::with_capacity(transitions.len());
            for (transition, actor) in transitions {
                applied.push(transition.apply(&txn, &actor, now).await?);
            }
            self.commit_appended(txn).await?;
            applied
        };
        let mut outcomes = Vec::with_capacity(items.len());
        for (((lease, closing), applied), to) in items.iter().zip(applied).zip(targets) {
            outcomes.push(if applied {
                AfterWork::Recorded
            } else {
                match self.hand_over_to_revert(lease, closing.reference()).await? {
                    AfterWork::LostLease if self.closed_by(lease, to).await? => AfterWork::Recorded,
                    other => other,
                }
            });
        }
        Ok(outcomes)
    }

    /// Whether `lease`'s own attempt already closed its action with the
    /// status `to` (the work is done and the lease token still the one it
    /// held): an earlier try of the same recording wrote it, before a later
    /// part of that try failed.
    async fn closed_by(&self, lease: &Lease, to: ActionStatus) -> Result<bool, AppError> {
        let found = action::Entity::find()
            .select_only()
            .column(action::Column::Id)
            .filter(action::Column::Id.eq(lease.action_id))
            .filter(action::Column::TenantId.eq(lease.tenant_id.as_str()))
            .filter(action::Column::LeaseToken.eq(lease.token))
            .filter(action::Column::Status.eq(to.as_str()))
            .filter(action::Column::Work.is_null())
            .filter(action::Column::LeaseOwner.is_null())
            .into_tuple::<Uuid>()
            .one(self.connection())
            .await?;
        Ok(found.is_some())
    }

    /// Applies `transitions` on PostgreSQL, one statement per group of the
    /// same shape (see the module's doc); a transition that fits no group
    /// (a value the statement cannot carry) goes alone. Returns, per
    /// transition in order, whether it applied.
    async fn apply_many_postgres(
        &self,
        transitions: Vec<(Transition, Actor)>,
        at: i64,
    ) -> Result<Vec<bool>, AppError> {
        let mut applied = vec![false; transitions.len()];
        let mut groups: HashMap<Shape, Vec<usize>> = HashMap::new();
        let mut alone = Vec::new();
        for (index, (transition, _)) in transitions.iter().enumerate() {
            match Shape::of(transition) {
                Some(shape) => groups.entry(shape).or_default().push(index),
                None => alone.push(index),
            }
        }
        let mut transitions: Vec<Option<(Transition, Actor)>> =
            transitions.into_iter().map(Some).collect();
        for (shape, indexes) in groups {
            let group: Vec<&(Transition, Actor)> = indexes
                .iter()
                .filter_map(|i| transitions[*i].as_ref())
                .collect();
            let moved = self.apply_group_postgres(&shape, &group, at).await?;
            for index in indexes {
                let id = transitions[index].as_ref().map(|(t, _)| t.id);
                applied[index] = id.is_some_and(|id| moved.contains(&id));
            }
        }
        for index in alone {
            if let Some((transition, actor)) = transitions[index].take() {
                applied[index] = transition.apply_alone(self, &actor, at).await?;
            }
        }
        Ok(applied)
    }

    /// One statement for transitions of one shape; returns the ids it moved.
    async fn apply_group_postgres(
        &self,
        shape: &Shape,
        group: &[&(Transition, Actor)],
        at: i64,
    ) -> Result<std::collections::HashSet<Uuid>, AppError> {
        let Some((first, _)) = group.first() else {
            return Ok(Default::default());
        };
        first.check()?;
        let mut values: Vec<Value> = Vec::new();
        let param = |value: Value, values: &mut Vec<Value>| {
            let cast = pg_type(&value).unwrap_or("text");
            values.push(value);
            format!("${}::{cast}", values.len())
        };
        // A column set to the same value in every row is set once; the others
        // come from each row.
        let uniform: Vec<bool> = (0..shape.columns.len())
            .map(|c| {
                let value = |t: &Transition| match &t.also[c].1 {
                    Expr::Value(v) => Some(v.clone()),
                    _ => None,
                };
                let head = value(first);
                group.iter().all(|(t, _)| value(t) == head)
            })
            .collect();
        // The guards on the status and the work are in every row too, not
        // constants of the statement: from a constant, a planner whose
        // statistics predate the burst of work (a feed just invoked) expects
        // no row in that status, scans the whole table and joins it to every
        // row of `v` (seconds for a batch of 500); as a join with `v` they
        // leave it the primary key lookups or one hash join.
        let mut rows = Vec::with_capacity(group.len());
        for (transition, actor) in group {
            let mut row = vec![
                param(Value::Uuid(Some(transition.id)), &mut values),
                param(actor.tenant_id.clone().into(), &mut values),
                param(Value::BigInt(transition.fence), &mut values),
                param(Value::String(transition.detail.clone()), &mut values),
                param(shape.from.as_str().into(), &mut values),
                param(Value::String(shape.work.map(str::to_owned)), &mut values),
            ];
            for (c, (_, value)) in transition.also.iter().enumerate() {
                if !uniform[c] {
                    let Expr::Value(value) = value else {
                        unreachable!("Shape::of admits values only")
                    };
                    row.push(param(value.clone(), &mut values));
                }
            }
            rows.push(format!("({})", row.join(", ")));
        }
        let mut names = vec!["id", "tenant_id", "token", "detail", "from", "work"]
            .into_iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>();
        let mut sets = vec![
            format!(
                "\"status\" = {}",
                param(shape.to.as_str().into(), &mut values)
            ),
            format!("\"last_action_at\" = {}", param(at.into(), &mut values)),
        ];
        for (c, column) in shape.columns.iter().enumerate() {
            if uniform[c] {
                let Expr::Value(value) = &first.also[c].1 else {
                    unreachable!("Shape::of admits values only")
                };
                sets.push(format!(
                    "\"{column}\" = {}",
                    param(value.clone(), &mut values)
                ));
            } else {
                names.push(format!("\"c{c}\""));
                sets.push(format!("\"{column}\" = v.\"c{c}\""));
            }
        }
        let mut guards = vec![
            "a.\"id\" = v.\"id\"".to_owned(),
            "a.\"tenant_id\" = v.\"tenant_id\"".to_owned(),
            "a.\"status\" = v.\"from\"".to_owned(),
        ];
        if shape.fenced {
            guards.push("a.\"lease_token\" = v.\"token\"".to_owned());
        }
        if shape.work.is_some() {
            guards.push("a.\"work\" = v.\"work\"".to_owned());
        }
        let executor = &group[0].1;
        let sql = format!(
            "WITH v ({names}) AS (VALUES {rows}), \
             moved AS (UPDATE \"actions\" AS a SET {sets} FROM v WHERE {guards} \
               RETURNING a.\"id\", a.\"tenant_id\", v.\"detail\") \
             INSERT INTO \"action_states\" (\"action_id\", \"tenant_id\", \"app_id\", \
               \"user_name\", \"status\", \"previous_status\", \"occurred_at\", \"detail\") \
             SELECT moved.\"id\", moved.\"tenant_id\", {app}, {user}, {to}, {from}, {at}, \
               moved.\"detail\" FROM moved \
             RETURNING \"action_id\"",
            names = names.join(", "),
            rows = rows.join(", "),
            sets = sets.join(", "),
            guards = guards.join(" AND "),
            app = param(executor.app_id.clone().into(), &mut values),
            user = param(executor.user.clone().into(), &mut values),
            to = param(shape.to.as_str().into(), &mut values),
            from = param(shape.from.as_str().into(), &mut values),
            at = param(at.into(), &mut values),
        );
        let rows = self.query_postgres(sql, values).await?;
        let moved = returned_ids(&rows, "action_id")?;
        if !moved.is_empty() {
            metrics::action_transitions(shape.to.as_str(), moved.len());
            self.states_appended.notify_one();
        }
        Ok(moved)
    }

    /// Puts the work of `leases` back in the queue, due at `due`, without
    /// counting the attempt each claim counted: the provider (or its budget)
    /// said "not now", or the executor claimed more than it had calls for.
    /// With `work`, only where the work is still that (a cancel that turned an
    /// execute into a revert wins; see [`Store::hand_over_to_revert`]).
    /// Returns, per lease in order, what became of it.
    #[instrument(level = "debug", skip(self, leases), fields(count = leases.len(), db.system = self.db_system()))]
    pub(crate) async fn put_back(
        &self,
        leases: &[Lease],
        work: Option<Work>,
        due: DateTime<Utc>,
    ) -> Result<Vec<AfterWork>, AppError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let due = to_micros(due);
        let put_back: std::collections::HashSet<Uuid> = if self.backend() == DbBackend::Postgres {
            // The work guard is in every row, not a constant: see
            // `apply_group_postgres` for why.
            let mut values: Vec<Value> = Vec::new();
            let rows: Vec<String> = leases
                .iter()
                .map(|lease| {
                    values.push(Value::Uuid(Some(lease.action_id)));
                    values.push(Value::BigInt(Some(lease.token)));
                    values.push(Value::String(work.map(|w| w.stored().to_owned())));
                    let n = values.len();
                    format!("(${}::uuid, ${}::int8, ${n}::text)", n - 2, n - 1)
                })
                .collect();
            values.push(due.into());
            let mut sql = format!(
                "UPDATE \"actions\" AS a SET \"lease_owner\" = NULL, \"due_at\" = ${due}, \
                 \"attempts\" = GREATEST(a.\"attempts\" - 1, 0) \
                 FROM (VALUES {rows}) AS v (\"id\", \"token\", \"work\") \
                 WHERE a.\"id\" = v.\"id\" AND a.\"lease_token\" = v.\"token\"",
                due = values.len(),
                rows = rows.join(", "),
            );
            if work.is_some() {
                sql.push_str(" AND a.\"work\" = v.\"work\"");
            }
            sql.push_str(" RETURNING a.\"id\"");
            let rows = self.query_postgres(sql, values).await?;
            returned_ids(&rows, "id")?
        } else {
            let txn = self.begin_write().await?;
            let mut put_back = std::collections::HashSet::new();
            for lease in leases {
                let mut update = action::Entity::update_many()
                    .col_expr(
                        action::Column::LeaseOwner,
                        Expr::val(Option::<String>::None),
                    )
                    .col_expr(action::Column::DueAt, Expr::val(due))
                    .col_expr(
                        action::Column::Attempts,
                        Expr::case(
                            Expr::col(action::Column::Attempts).gt(0),
                            Expr::col(action::Column::Attempts).sub(1),
                        )
                        .finally(Expr::val(0))
                        .into(),
                    )
                    .filter(action::Column::Id.eq(lease.action_id))
                    .filter(action::Column::LeaseToken.eq(lease.token));
                if let Some(work) = work {
                    update = update.filter(action::Column::Work.eq(work.stored()));
                }
                if update.exec(&txn).await?.rows_affected == 1 {
                    put_back.insert(lease.action_id);
                }
            }
            txn.commit().await?;
            put_back
        };
        let mut outcomes = Vec::with_capacity(leases.len());
        for lease in leases {
            outcomes.push(if put_back.contains(&lease.action_id) {
                AfterWork::Recorded
            } else {
                self.hand_over_to_revert(lease, None).await?
            });
        }
        Ok(outcomes)
    }
}

/// What transitions share to be applied by one statement: the same change,
/// guarded the same way, setting the same columns (each to a plain value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    from: ActionStatus,
    to: ActionStatus,
    fenced: bool,
    work: Option<&'static str>,
    columns: Vec<&'static str>,
}

impl Shape {
    fn of(transition: &Transition) -> Option<Shape> {
        let mut columns = Vec::with_capacity(transition.also.len());
        for (column, value) in &transition.also {
            match value {
                Expr::Value(value) if pg_type(value).is_some() => columns.push(column.as_str()),
                _ => return None,
            }
        }
        Some(Shape {
            from: transition.from,
            to: transition.to,
            fenced: transition.fence.is_some(),
            work: transition.work,
            columns,
        })
    }
}

/// The PostgreSQL type a value is cast to in a statement's `VALUES`.
fn pg_type(value: &Value) -> Option<&'static str> {
    Some(match value {
        Value::Int(_) => "int4",
        Value::BigInt(_) => "int8",
        Value::String(_) => "text",
        Value::Uuid(_) => "uuid",
        Value::Bool(_) => "bool",
        _ => return None,
    })
}
