//! A row of `provider_calls`: one call taken from a provider's budget, kept
//! while it counts in a window (see `store::budget`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_calls")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub provider: String,
    /// When it was taken (microseconds since the epoch).
    pub at: i64,
    /// Whether it went to a batch endpoint (import, batch delete).
    pub batch: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
