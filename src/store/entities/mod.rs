//! sea-orm entities of the tables. Only the store uses them: the rest of
//! the gateway sees domain types. (The bench's seeder names its tables and
//! columns by them too.)

pub mod action;
pub mod counter;
pub mod parameter;
pub mod provider_budget;
pub mod provider_call;
pub mod secret;
pub mod state;
