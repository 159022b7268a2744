//! The database schema of actiongate, as sea-orm migrations.
//!
//! The gateway applies these at start-up and with `actiongate migrate`. The same
//! migrations serve SQLite (the embedded default) and PostgreSQL (production).
//!
//! Timestamps are stored as `BIGINT` microseconds since the Unix epoch on both
//! backends. That keeps keyset cursors exact (a cursor compares the very integer it
//! was made from), gives both backends the same ordering, and avoids SQLite's
//! text timestamps, whose order depends on how they were formatted.

pub use sea_orm_migration::prelude::*;

mod m20261201_000001_create_actions;
mod m20261202_000001_index_parameter_values;
mod m20261203_000001_action_counters;
mod m20261210_000001_create_gateway_secrets;
mod m20261215_000001_action_trace_context;
mod m20261216_000001_create_provider_budget;
mod m20261217_000001_fold_counter_slots;

/// The counters table and what reads and repairs it.
pub mod counters {
    pub use super::m20261203_000001_action_counters::{
        COUNTER_DRIFT, COUNTERS_TABLE, DAY_MICROS, FILL_COUNTERS, FOLD_SLOTS, HOUR_MICROS, SLOTS,
        SPAN_ALL, SPAN_DAY, SPAN_HOUR,
    };
}

/// Applies every migration of the project, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261201_000001_create_actions::Migration),
            Box::new(m20261202_000001_index_parameter_values::Migration),
            Box::new(m20261203_000001_action_counters::Migration),
            Box::new(m20261210_000001_create_gateway_secrets::Migration),
            Box::new(m20261215_000001_action_trace_context::Migration),
            Box::new(m20261216_000001_create_provider_budget::Migration),
            Box::new(m20261217_000001_fold_counter_slots::Migration),
        ]
    }
}
