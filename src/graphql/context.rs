//! What resolvers reach through the GraphQL context: the shared services of
//! the gateway and, per request, the caller.

use std::sync::Arc;

use async_graphql::Context;

use crate::auth::Principal;
use crate::service::Services;

/// The shared services.
pub(crate) fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Arc<Services>>()
}

/// The verified caller; the HTTP and WebSocket handlers attach it to every
/// request before execution.
pub(crate) fn principal<'a>(ctx: &Context<'a>) -> &'a Principal {
    ctx.data_unchecked::<Principal>()
}
