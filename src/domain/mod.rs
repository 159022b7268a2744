//! Validated types of the gateway: actions, the catalog, indicators, the status
//! state machine, filters and pages. Nothing here knows of GraphQL, HTTP or SQL.

pub mod action;
pub mod catalog;
pub mod filter;
pub mod indicator;
pub mod page;
pub mod providers;
pub mod status;
pub mod text;
pub mod time;
