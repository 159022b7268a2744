//! Actions, their parameters and their state history.
//!
//! Every list query of the API is scoped by tenant, so every index on `actions`
//! starts with `tenant_id`, then the filtered column, then the sort key and `id`
//! (the keyset tie-break). State rows carry `seq`, the event cursor, which is
//! assigned after commit by the event relay (see `actiongate::store::events`).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000001_create_actions"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Actions {
    Table,
    Id,
    TenantId,
    AppId,
    UserName,
    Name,
    ActionReason,
    Provider,
    ProviderVersion,
    SubProvider,
    Vendor,
    ClientContext,
    RequestFingerprint,
    Status,
    ErrorCode,
    ErrorMessage,
    ErrorSubcode,
    CreatedAt,
    LastActionAt,
    CompletedAt,
    CancelRequestedAt,
    Work,
    DueAt,
    Attempts,
    LeaseToken,
    LeaseOwner,
    ProviderReference,
}

#[derive(DeriveIden)]
enum ActionParameters {
    Table,
    ActionId,
    Position,
    TenantId,
    Name,
    Value,
}

#[derive(DeriveIden)]
enum ActionStates {
    Table,
    Id,
    Seq,
    ActionId,
    TenantId,
    AppId,
    UserName,
    Status,
    PreviousStatus,
    OccurredAt,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(actions_table()).await?;
        for index in actions_indexes() {
            manager.create_index(index).await?;
        }
        manager.create_table(parameters_table()).await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_action_parameters_lookup")
                    .table(ActionParameters::Table)
                    .col(ActionParameters::TenantId)
                    .col(ActionParameters::Name)
                    .col(ActionParameters::Value)
                    .col(ActionParameters::ActionId)
                    .to_owned(),
            )
            .await?;
        manager.create_table(states_table()).await?;
        for index in states_indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ActionStates::Table.into_iden(),
            ActionParameters::Table.into_iden(),
            Actions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

fn actions_table() -> TableCreateStatement {
    Table::create()
        .table(Actions::Table)
        .col(ColumnDef::new(Actions::Id).uuid().not_null().primary_key())
        .col(ColumnDef::new(Actions::TenantId).string().not_null())
        .col(ColumnDef::new(Actions::AppId).string().not_null())
        .col(ColumnDef::new(Actions::UserName).string().not_null())
        .col(ColumnDef::new(Actions::Name).string().not_null())
        .col(ColumnDef::new(Actions::ActionReason).text().null())
        .col(ColumnDef::new(Actions::Provider).string().not_null())
        .col(ColumnDef::new(Actions::ProviderVersion).string().null())
        .col(ColumnDef::new(Actions::SubProvider).string().null())
        .col(ColumnDef::new(Actions::Vendor).string().null())
        .col(ColumnDef::new(Actions::ClientContext).string().null())
        .col(
            ColumnDef::new(Actions::RequestFingerprint)
                .string()
                .not_null(),
        )
        .col(ColumnDef::new(Actions::Status).string().not_null())
        .col(ColumnDef::new(Actions::ErrorCode).integer().null())
        .col(ColumnDef::new(Actions::ErrorMessage).text().null())
        .col(ColumnDef::new(Actions::ErrorSubcode).integer().null())
        .col(ColumnDef::new(Actions::CreatedAt).big_integer().not_null())
        .col(
            ColumnDef::new(Actions::LastActionAt)
                .big_integer()
                .not_null(),
        )
        .col(ColumnDef::new(Actions::CompletedAt).big_integer().null())
        .col(
            ColumnDef::new(Actions::CancelRequestedAt)
                .big_integer()
                .null(),
        )
        // The executor's queue: `work` says what is to be done ('execute' or
        // 'revert'), `due_at` when; while leased, `due_at` is the lease expiry,
        // so an expired lease is simply due again.
        .col(ColumnDef::new(Actions::Work).string().null())
        .col(ColumnDef::new(Actions::DueAt).big_integer().null())
        .col(
            ColumnDef::new(Actions::Attempts)
                .integer()
                .not_null()
                .default(0),
        )
        // Incremented by every claim: the fence that discards a late result of
        // a worker whose lease was taken over.
        .col(
            ColumnDef::new(Actions::LeaseToken)
                .big_integer()
                .not_null()
                .default(0),
        )
        .col(ColumnDef::new(Actions::LeaseOwner).string().null())
        .col(ColumnDef::new(Actions::ProviderReference).text().null())
        .to_owned()
}

fn actions_indexes() -> Vec<IndexCreateStatement> {
    let by_tenant = |name: &str, cols: &[Actions]| {
        let mut index = Index::create();
        index
            .name(name)
            .table(Actions::Table)
            .col(Actions::TenantId);
        for col in cols {
            index.col(*col);
        }
        index.col(Actions::Id);
        index.to_owned()
    };
    vec![
        by_tenant("ix_actions_created", &[Actions::CreatedAt]),
        by_tenant("ix_actions_last_action", &[Actions::LastActionAt]),
        by_tenant(
            "ix_actions_status_created",
            &[Actions::Status, Actions::CreatedAt],
        ),
        by_tenant(
            "ix_actions_status_last_action",
            &[Actions::Status, Actions::LastActionAt],
        ),
        by_tenant(
            "ix_actions_name_created",
            &[Actions::Name, Actions::CreatedAt],
        ),
        by_tenant(
            "ix_actions_provider_created",
            &[Actions::Provider, Actions::CreatedAt],
        ),
        by_tenant(
            "ix_actions_app_created",
            &[Actions::AppId, Actions::CreatedAt],
        ),
        by_tenant(
            "ix_actions_user_created",
            &[Actions::UserName, Actions::CreatedAt],
        ),
        // The idempotency key: one action per tenant, app and clientContext.
        Index::create()
            .name("ux_actions_client_context")
            .table(Actions::Table)
            .col(Actions::TenantId)
            .col(Actions::AppId)
            .col(Actions::ClientContext)
            .unique()
            .and_where(Expr::col(Actions::ClientContext).is_not_null())
            .to_owned(),
        Index::create()
            .name("ix_actions_client_context")
            .table(Actions::Table)
            .col(Actions::TenantId)
            .col(Actions::ClientContext)
            .and_where(Expr::col(Actions::ClientContext).is_not_null())
            .to_owned(),
        Index::create()
            .name("ix_actions_due")
            .table(Actions::Table)
            .col(Actions::DueAt)
            .and_where(Expr::col(Actions::Work).is_not_null())
            .to_owned(),
        Index::create()
            .name("ix_actions_lease_owner")
            .table(Actions::Table)
            .col(Actions::LeaseOwner)
            .and_where(Expr::col(Actions::LeaseOwner).is_not_null())
            .to_owned(),
    ]
}

fn parameters_table() -> TableCreateStatement {
    Table::create()
        .table(ActionParameters::Table)
        .col(ColumnDef::new(ActionParameters::ActionId).uuid().not_null())
        .col(
            ColumnDef::new(ActionParameters::Position)
                .integer()
                .not_null(),
        )
        .col(
            ColumnDef::new(ActionParameters::TenantId)
                .string()
                .not_null(),
        )
        .col(ColumnDef::new(ActionParameters::Name).string().not_null())
        .col(ColumnDef::new(ActionParameters::Value).text().not_null())
        .primary_key(
            Index::create()
                .col(ActionParameters::ActionId)
                .col(ActionParameters::Position),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_action_parameters_action")
                .from(ActionParameters::Table, ActionParameters::ActionId)
                .to(Actions::Table, Actions::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn states_table() -> TableCreateStatement {
    Table::create()
        .table(ActionStates::Table)
        .col(
            ColumnDef::new(ActionStates::Id)
                .big_integer()
                .not_null()
                .auto_increment()
                .primary_key(),
        )
        .col(ColumnDef::new(ActionStates::Seq).big_integer().null())
        .col(ColumnDef::new(ActionStates::ActionId).uuid().not_null())
        .col(ColumnDef::new(ActionStates::TenantId).string().not_null())
        .col(ColumnDef::new(ActionStates::AppId).string().not_null())
        .col(ColumnDef::new(ActionStates::UserName).string().not_null())
        .col(ColumnDef::new(ActionStates::Status).string().not_null())
        .col(ColumnDef::new(ActionStates::PreviousStatus).string().null())
        .col(
            ColumnDef::new(ActionStates::OccurredAt)
                .big_integer()
                .not_null(),
        )
        .col(ColumnDef::new(ActionStates::Detail).text().null())
        .foreign_key(
            ForeignKey::create()
                .name("fk_action_states_action")
                .from(ActionStates::Table, ActionStates::ActionId)
                .to(Actions::Table, Actions::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn states_indexes() -> Vec<IndexCreateStatement> {
    vec![
        Index::create()
            .name("ix_action_states_action")
            .table(ActionStates::Table)
            .col(ActionStates::ActionId)
            .col(ActionStates::Id)
            .to_owned(),
        Index::create()
            .name("ux_action_states_seq")
            .table(ActionStates::Table)
            .col(ActionStates::Seq)
            .unique()
            .to_owned(),
        Index::create()
            .name("ix_action_states_tenant_seq")
            .table(ActionStates::Table)
            .col(ActionStates::TenantId)
            .col(ActionStates::Seq)
            .to_owned(),
        // The relay's work list: committed state rows not yet numbered.
        Index::create()
            .name("ix_action_states_unnumbered")
            .table(ActionStates::Table)
            .col(ActionStates::Id)
            .and_where(Expr::col(ActionStates::Seq).is_null())
            .to_owned(),
    ]
}
