//! Status events in the store: numbering committed state rows in commit order,
//! and reading them back by cursor.
//!
//! A state row gets its `seq` (the event cursor) only after it is committed. On
//! PostgreSQL an id from a sequence is taken at insert, not at commit, so with
//! concurrent writers row 101 can be visible before row 100; a reader that moved
//! its cursor past 101 would never see 100. So the rows are numbered afterwards,
//! by the relay (a transactional outbox): one transaction at a time (an advisory
//! lock across replicas; the write lock on SQLite) numbers every committed,
//! unnumbered row after the highest number given so far. A number is visible
//! only when every smaller number is, so reading `seq > cursor` never skips.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tracing::instrument;

use super::Store;
use super::entities::state;
use super::notify::{EVENTS_CHANNEL, announce};
use crate::domain::action::StateChange;
use crate::error::AppError;

/// Rows one relay transaction numbers at most.
const NUMBER_BATCH: u64 = 5000;
/// The advisory lock that makes relays on several replicas take turns.
const RELAY_LOCK: i64 = 7_367_021_866;

/// A numbered state row and the tenant it belongs to.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub(crate) tenant_id: String,
    pub change: StateChange,
}

impl Store {
    /// Numbers committed state rows that have no cursor yet, in the order of
    /// their ids. Returns the highest cursor when it numbered any. On
    /// PostgreSQL the same transaction `NOTIFY`s the new cursor to every replica.
    #[instrument(level = "debug", skip(self), fields(db.system = self.db_system()))]
    pub async fn number_events(&self) -> Result<Option<i64>, AppError> {
        // A read first, so an idle relay never takes the write lock.
        let pending = state::Entity::find()
            .select_only()
            .column(state::Column::Id)
            .filter(state::Column::Seq.is_null())
            .limit(1)
            .into_tuple::<i64>()
            .one(self.connection())
            .await?;
        if pending.is_none() {
            return Ok(None);
        }
        let backend = self.backend();
        let txn = self.begin_write().await?;
        if backend == DbBackend::Postgres {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({RELAY_LOCK})"))
                .await?;
        }
        let numbered = txn
            .execute_unprepared(&format!(
                "UPDATE action_states SET seq = numbered.base + numbered.rn \
                 FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS rn, \
                              (SELECT COALESCE(MAX(seq), 0) FROM action_states) AS base \
                       FROM action_states WHERE seq IS NULL ORDER BY id LIMIT {NUMBER_BATCH}) AS numbered \
                 WHERE action_states.id = numbered.id"
            ))
            .await?
            .rows_affected();
        if numbered == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let head = max_seq(&txn).await?;
        announce(&txn, EVENTS_CHANNEL, head.to_string()).await?;
        txn.commit().await?;
        Ok(Some(head))
    }

    /// The highest cursor given so far (0 when none).
    pub async fn event_head(&self) -> Result<i64, AppError> {
        max_seq(self.connection()).await
    }

    /// Numbered events after `cursor` of every tenant, oldest first: the feed
    /// of the in-process fan-out, which hands each subscriber only its own
    /// tenant's events. Nothing reaches a caller from here unscoped.
    #[instrument(level = "debug", skip(self), fields(db.system = self.db_system()))]
    pub async fn all_tenants_events_after(
        &self,
        cursor: i64,
        limit: u64,
    ) -> Result<Vec<StoredEvent>, AppError> {
        self.read_events(Condition::all(), cursor, limit).await
    }

    /// Numbered events of `tenant` after `cursor`, oldest first.
    #[instrument(level = "debug", skip(self), fields(db.system = self.db_system()))]
    pub async fn events_after(
        &self,
        tenant: &str,
        cursor: i64,
        limit: u64,
    ) -> Result<Vec<StoredEvent>, AppError> {
        let of_tenant = Condition::all().add(state::Column::TenantId.eq(tenant));
        self.read_events(of_tenant, cursor, limit).await
    }

    /// Numbered events that meet `condition` after `cursor`, oldest first.
    async fn read_events(
        &self,
        condition: Condition,
        cursor: i64,
        limit: u64,
    ) -> Result<Vec<StoredEvent>, AppError> {
        let rows = state::Entity::find()
            .filter(condition)
            .filter(state::Column::Seq.gt(cursor))
            .order_by_asc(state::Column::Seq)
            .limit(limit)
            .all(self.connection())
            .await?;
        rows.into_iter().map(stored).collect()
    }

    /// Whether `tenant` has an event with cursor `seq`.
    pub(crate) async fn has_event(&self, tenant: &str, seq: i64) -> Result<bool, AppError> {
        let found = state::Entity::find()
            .select_only()
            .column(state::Column::Id)
            .filter(state::Column::TenantId.eq(tenant))
            .filter(state::Column::Seq.eq(seq))
            .into_tuple::<i64>()
            .one(self.connection())
            .await?;
        Ok(found.is_some())
    }
}

fn stored(row: state::Model) -> Result<StoredEvent, AppError> {
    let tenant_id = row.tenant_id.clone();
    let change: StateChange = row.try_into()?;
    let seq = change
        .seq
        .ok_or_else(|| AppError::internal("an unnumbered state row was read as an event"))?;
    Ok(StoredEvent {
        seq,
        tenant_id,
        change,
    })
}

async fn max_seq<C: ConnectionTrait>(db: &C) -> Result<i64, AppError> {
    let head: Option<Option<i64>> = state::Entity::find()
        .select_only()
        .column_as(Expr::col(state::Column::Seq).max(), "head")
        .into_tuple()
        .one(db)
        .await?;
    Ok(head.flatten().unwrap_or(0))
}
