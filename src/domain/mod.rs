//! Validated types of the gateway: actions, the catalog, indicators, the status
//! state machine, filters, pages, the providers as validation sees them, text
//! checks, and time (timestamps and durations). Nothing here knows of GraphQL,
//! HTTP or SQL.

pub(crate) mod action;
pub(crate) mod catalog;
pub(crate) mod filter;
pub(crate) mod indicator;
pub(crate) mod page;
pub(crate) mod providers;
pub(crate) mod status;
pub(crate) mod text;
pub(crate) mod time;
