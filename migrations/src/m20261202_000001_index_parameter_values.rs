//! An index on parameter values across tenants.
//!
//! A provider such as Defender keeps one indicator per value for everyone who
//! uses it; before lifting one, the executor asks whether another action still
//! holds the same value on that provider, which reads parameters by name and
//! value without a tenant.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000001_index_parameter_values"
    }
}

#[derive(DeriveIden)]
enum ActionParameters {
    Table,
    Name,
    Value,
    ActionId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_action_parameters_value")
                    .table(ActionParameters::Table)
                    .col(ActionParameters::Name)
                    .col(ActionParameters::Value)
                    .col(ActionParameters::ActionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_action_parameters_value")
                    .table(ActionParameters::Table)
                    .to_owned(),
            )
            .await
    }
}
