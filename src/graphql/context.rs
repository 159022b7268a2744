//! What resolvers reach through the GraphQL context: the shared services of
//! the gateway and, per request, the caller.

use std::sync::Arc;

use async_graphql::Context;

use crate::auth::Principal;
use crate::domain::providers::ProviderDirectory;
use crate::events::EventHub;
use crate::executor::ExecutorHandle;
use crate::store::Store;

/// The gateway's shared services, attached to the schema once.
pub(crate) struct Services {
    pub store: Store,
    pub providers: ProviderDirectory,
    pub executor: ExecutorHandle,
    pub events: EventHub,
    /// How far (in events) a subscriber may fall behind before its
    /// subscription is ended.
    pub subscriber_max_lag: u64,
}

/// The shared services.
pub(crate) fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Arc<Services>>()
}

/// The verified caller; the HTTP and WebSocket handlers attach it to every
/// request before execution.
pub(crate) fn principal<'a>(ctx: &Context<'a>) -> &'a Principal {
    ctx.data_unchecked::<Principal>()
}
