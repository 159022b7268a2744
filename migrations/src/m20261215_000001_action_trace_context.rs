//! The W3C trace context of the request that invoked an action, so that the
//! executor, which calls the provider later and elsewhere, continues that
//! request's trace and sends it on to the provider (`traceparent`).
//!
//! Nullable: actions stored before, and those invoked without a trace (no
//! `traceparent` sent and no trace export), have none.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261215_000001_action_trace_context"
    }
}

#[derive(DeriveIden)]
enum Actions {
    Table,
    TraceContext,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Actions::Table)
                    .add_column(ColumnDef::new(Actions::TraceContext).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Actions::Table)
                    .drop_column(Actions::TraceContext)
                    .to_owned(),
            )
            .await
    }
}
