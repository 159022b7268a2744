//! The call budget of rate-limited providers (Defender for Endpoint), shared
//! by every replica on the database.
//!
//! `provider_budgets` holds one row per provider: taking from the budget
//! first upserts that row, which holds its lock until the transaction ends,
//! so replicas take one after the other. `provider_calls` is the sliding log
//! of the calls made, one row per call with when it was made and whether it
//! went to a batch endpoint; rows older than the longest window are dropped as
//! calls are taken.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261216_000001_create_provider_budget"
    }
}

#[derive(DeriveIden)]
enum ProviderBudgets {
    Table,
    Provider,
    TakenAt,
}

#[derive(DeriveIden)]
enum ProviderCalls {
    Table,
    Id,
    Provider,
    At,
    Batch,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProviderBudgets::Table)
                    .col(
                        ColumnDef::new(ProviderBudgets::Provider)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ProviderBudgets::TakenAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ProviderCalls::Table)
                    .col(
                        ColumnDef::new(ProviderCalls::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ProviderCalls::Provider).string().not_null())
                    .col(ColumnDef::new(ProviderCalls::At).big_integer().not_null())
                    .col(ColumnDef::new(ProviderCalls::Batch).boolean().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("provider_calls_by_time")
                    .table(ProviderCalls::Table)
                    .col(ProviderCalls::Provider)
                    .col(ProviderCalls::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ProviderCalls::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ProviderBudgets::Table).to_owned())
            .await
    }
}
