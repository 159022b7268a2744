//! An index of the striped counter rows, so folding them costs what there is
//! to fold.
//!
//! PostgreSQL's counter triggers add each change to one of
//! [`SLOTS`](super::counters::SLOTS) rows per key, chosen by the connection,
//! so concurrent writers rarely wait on one row. A reader sums every slot of
//! the keys it reads: up to eight rows where one would do. The gateway folds
//! the rows of slots 1 and up into slot 0 once changes have quietened (see
//! `Store::fold_counters`); this partial index finds them without scanning
//! the counters, and stays as small as the rows not yet folded. SQLite's
//! triggers write slot 0 only and need none.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::counters::COUNTERS_TABLE;
use crate::m20261203_000001_action_counters::KEY;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261217_000001_fold_counter_slots"
    }
}

/// The partial index of the rows of slots 1 and up.
const STRIPED_INDEX: &str = "ix_action_counters_striped";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {STRIPED_INDEX} ON {COUNTERS_TABLE} ({KEY}) WHERE slot <> 0"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(&format!("DROP INDEX IF EXISTS {STRIPED_INDEX}"))
            .await?;
        Ok(())
    }
}
