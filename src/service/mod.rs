//! The gateway's services, and the changes both faces make through them.
//!
//! GraphQL's mutations and the Graph REST face invoke and cancel actions with
//! these functions, so both check the same role, validate through the same
//! domain types, make the same store calls, charge the same rate limits and
//! wake the executor alike.

pub(crate) mod rate_limit;

use uuid::Uuid;

use crate::auth::Principal;
use crate::domain::action::{ActionRequest, MAX_BULK_INVOKE, NewAction};
use crate::domain::providers::ProviderDirectory;
use crate::domain::time;
use crate::error::AppError;
use crate::events::EventHub;
use crate::executor::ExecutorHandle;
use crate::store::{CancelOutcome, Invoked, Store};
use crate::telemetry::trace;
use rate_limit::{Kind, RateLimiter};

/// The gateway's shared services, made once at start.
pub(crate) struct Services {
    pub store: Store,
    pub providers: ProviderDirectory,
    pub executor: ExecutorHandle,
    pub events: EventHub,
    /// How far (in events) a subscriber may fall behind before its
    /// subscription is ended.
    pub subscriber_max_lag: u64,
    /// The rate limits per tenant and app, of every face.
    pub rate: RateLimiter,
}

impl Services {
    /// Validates `request` and stores the action `NotStarted` for `caller`,
    /// with the trace context of the request, then wakes the executor. A
    /// `clientContext` used before replays that action when the input is the
    /// same, and is a `CONFLICT` otherwise.
    pub(crate) async fn invoke(
        &self,
        caller: &Principal,
        request: ActionRequest,
    ) -> Result<Invoked, AppError> {
        caller.require_write()?;
        let mut new =
            NewAction::validate(request, &caller.tenant_id, &self.providers, time::now())?;
        new.trace_context = trace::context_to_store();
        let invoked = self.store.invoke(&caller.actor(), &new).await?;
        self.executor.wake();
        Ok(invoked)
    }

    /// Invokes a batch of actions as `invoke` invokes one, each with its own
    /// outcome in the order given: one invalid item (or one a face could not
    /// read, given as its error) fails alone. At most [`MAX_BULK_INVOKE`]
    /// items; each is charged to the caller's mutation rate, the call's own
    /// token included. The valid items are stored together.
    pub(crate) async fn invoke_many(
        &self,
        caller: &Principal,
        requests: Vec<Result<ActionRequest, AppError>>,
    ) -> Result<Vec<Result<Invoked, AppError>>, AppError> {
        caller.require_write()?;
        if requests.len() > MAX_BULK_INVOKE {
            return Err(AppError::bad_input(
                "inputs",
                format!(
                    "at most {MAX_BULK_INVOKE} actions are invoked in one call, not {}",
                    requests.len()
                ),
            ));
        }
        self.rate.charge(
            Kind::Mutation,
            &caller.tenant_id,
            &caller.app_id,
            requests.len().saturating_sub(1),
        );
        let now = time::now();
        let trace_context = trace::context_to_store();
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut valid = Vec::with_capacity(requests.len());
        for request in requests {
            let validated = request
                .and_then(|r| NewAction::validate(r, &caller.tenant_id, &self.providers, now));
            match validated {
                Ok(mut new) => {
                    outcomes.push(None);
                    new.trace_context = trace_context.clone();
                    valid.push(new);
                }
                Err(error) => outcomes.push(Some(Err(error))),
            }
        }
        let mut stored = self
            .store
            .invoke_many(&caller.actor(), &valid)
            .await?
            .into_iter();
        if stored.len() > 0 {
            self.executor.wake();
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    stored
                        .next()
                        .unwrap_or_else(|| Err(AppError::internal("an item without its outcome")))
                })
            })
            .collect())
    }

    /// Cancels action `id` of the caller's tenant: at once when it has not
    /// started; otherwise the executor is told to stop and revert it.
    pub(crate) async fn cancel(
        &self,
        caller: &Principal,
        id: Uuid,
    ) -> Result<CancelOutcome, AppError> {
        caller.require_write()?;
        let outcome = self
            .store
            .request_cancel(&caller.actor(), id, trace::context_to_store())
            .await?;
        if let CancelOutcome::Requested(_) = outcome {
            self.executor.cancel_requested(id);
        }
        Ok(outcome)
    }
}
