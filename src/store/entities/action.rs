//! A row of `actions`: the action and, in `work`/`due_at`/`lease_*`, its place
//! in the executor's queue.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "actions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: String,
    pub app_id: String,
    pub user_name: String,
    pub name: String,
    pub action_reason: Option<String>,
    pub provider: String,
    pub provider_version: Option<String>,
    pub sub_provider: Option<String>,
    pub vendor: Option<String>,
    pub client_context: Option<String>,
    pub request_fingerprint: String,
    pub status: String,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub error_subcode: Option<i32>,
    /// Microseconds since the epoch, as every `*_at` column.
    pub created_at: i64,
    pub last_action_at: i64,
    pub completed_at: Option<i64>,
    pub cancel_requested_at: Option<i64>,
    /// `execute` or `revert` while the executor has something to do.
    pub work: Option<String>,
    /// When the work is due; while leased, when the lease expires.
    pub due_at: Option<i64>,
    /// Attempts made at the current work.
    pub attempts: i32,
    /// Incremented by every claim; fences late results.
    pub lease_token: i64,
    pub lease_owner: Option<String>,
    /// What the provider returned on success, kept for revert.
    pub provider_reference: Option<String>,
    /// The W3C trace context of the invoking request (JSON of its
    /// `traceparent` and `tracestate`), continued by the executor.
    pub trace_context: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
