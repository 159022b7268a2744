//! Secrets the gateway makes for itself and its replicas share: one row per
//! purpose, created by the first replica that needs it.
//!
//! The first is the key that seals event cursors, so that one replica can
//! read a cursor another handed out.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261210_000001_create_gateway_secrets"
    }
}

#[derive(DeriveIden)]
enum GatewaySecrets {
    Table,
    Name,
    Value,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GatewaySecrets::Table)
                    .col(
                        ColumnDef::new(GatewaySecrets::Name)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(GatewaySecrets::Value).binary().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(GatewaySecrets::Table).to_owned())
            .await
    }
}
