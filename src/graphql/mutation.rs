//! Mutations: invoke an action, cancel one.

use async_graphql::{Context, ID, Object};

use super::context::{principal, services};
use super::inputs::{InvokeActionInput, parse_id};
use super::types::SecurityAction;
use crate::error::AppError;

pub(crate) struct Mutation;

#[Object]
impl Mutation {
    /// Validates and stores an action `NOT_STARTED`, and returns at once; the
    /// executor carries it out. With a `clientContext` used before: the same
    /// input returns that action, other input is a `CONFLICT`.
    async fn invoke_action(
        &self,
        ctx: &Context<'_>,
        input: InvokeActionInput,
    ) -> Result<SecurityAction, AppError> {
        let invoked = services(ctx).invoke(principal(ctx), input.into()).await?;
        Ok(SecurityAction::new(invoked.into_action()))
    }

    /// Cancels an action: one not started is `CANCELED` at once; a running one
    /// is stopped and reverted, a completed one lifted, and then `CANCELED`.
    /// Returns the action as it stands, with `cancelRequestedDateTime` set. A
    /// canceled action comes back unchanged; a failed one is `NOT_CANCELABLE`.
    async fn cancel_action(&self, ctx: &Context<'_>, id: ID) -> Result<SecurityAction, AppError> {
        let caller = principal(ctx);
        caller.require_write()?;
        let id = parse_id("id", &id)?;
        let outcome = services(ctx).cancel(caller, id).await?;
        Ok(SecurityAction::new(outcome.action().clone()))
    }
}
