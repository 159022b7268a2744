//! Mutations: invoke an action or a batch of them, cancel one.

use async_graphql::{Context, ID, Object};

use super::context::{principal, services};
use super::inputs::{InvokeActionInput, parse_id};
use super::types::{InvokeActionResult, ItemError, SecurityAction};
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

    /// Invokes up to 500 actions at once, each as `invokeAction` would: one
    /// result per input, in input order, with the action or the input's own
    /// error (an invalid input does not reject the others). Each input counts
    /// against the mutation rate limit.
    async fn invoke_actions(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<InvokeActionInput>,
    ) -> Result<Vec<InvokeActionResult>, AppError> {
        let requests = inputs.into_iter().map(|input| Ok(input.into())).collect();
        let outcomes = services(ctx).invoke_many(principal(ctx), requests).await?;
        Ok(outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| match outcome {
                Ok(invoked) => InvokeActionResult {
                    action: Some(SecurityAction::new(invoked.into_action())),
                    error: None,
                },
                Err(error) => InvokeActionResult {
                    action: None,
                    error: Some(ItemError::of_item(index, &error)),
                },
            })
            .collect())
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
