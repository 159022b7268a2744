//! The gateway's services, and the changes both faces make through them.
//!
//! GraphQL's mutations and the Graph REST face invoke and cancel actions with
//! these functions, so both check the same role, validate through the same
//! domain types, make the same store calls and wake the executor alike.

use uuid::Uuid;

use crate::auth::Principal;
use crate::domain::action::{ActionRequest, NewAction};
use crate::domain::providers::ProviderDirectory;
use crate::domain::time;
use crate::error::AppError;
use crate::events::EventHub;
use crate::executor::ExecutorHandle;
use crate::store::{CancelOutcome, Invoked, Store};

/// The gateway's shared services, made once at start.
pub(crate) struct Services {
    pub store: Store,
    pub providers: ProviderDirectory,
    pub executor: ExecutorHandle,
    pub events: EventHub,
    /// How far (in events) a subscriber may fall behind before its
    /// subscription is ended.
    pub subscriber_max_lag: u64,
}

impl Services {
    /// Validates `request` and stores the action `NotStarted` for `caller`,
    /// then wakes the executor. A `clientContext` used before replays that
    /// action when the input is the same, and is a `CONFLICT` otherwise.
    pub(crate) async fn invoke(
        &self,
        caller: &Principal,
        request: ActionRequest,
    ) -> Result<Invoked, AppError> {
        caller.require_write()?;
        let new = NewAction::validate(request, &caller.tenant_id, &self.providers, time::now())?;
        let invoked = self.store.invoke(&caller.actor(), &new).await?;
        self.executor.wake();
        Ok(invoked)
    }

    /// Cancels action `id` of the caller's tenant: at once when it has not
    /// started; otherwise the executor is told to stop and revert it.
    pub(crate) async fn cancel(
        &self,
        caller: &Principal,
        id: Uuid,
    ) -> Result<CancelOutcome, AppError> {
        caller.require_write()?;
        let outcome = self.store.request_cancel(&caller.actor(), id).await?;
        if let CancelOutcome::Requested(_) = outcome {
            self.executor.cancel_requested(id);
        }
        Ok(outcome)
    }
}
