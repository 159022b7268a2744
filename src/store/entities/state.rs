//! A row of `action_states`: one transition of an action, append-only.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "action_states")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The event cursor, assigned after commit by the event relay.
    pub seq: Option<i64>,
    pub action_id: Uuid,
    pub tenant_id: String,
    pub app_id: String,
    pub user_name: String,
    pub status: String,
    pub previous_status: Option<String>,
    pub occurred_at: i64,
    pub detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
