//! Subscriptions: live status changes and live counts of the caller's tenant.

use async_graphql::{Context, ErrorExtensions, Object, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

use super::context::{principal, services};
use super::inputs::FilterArgument;
use super::types::{OperationStatus, SecurityAction, StatusCount};
use crate::error::AppError;
use crate::events::feed::{self, Delivered, FeedError};

pub(crate) struct Subscription;

#[Subscription]
impl Subscription {
    /// Every status change of the caller's tenant that passes `filter`, oldest
    /// first, each once. With `after` (an event cursor) it first replays what
    /// happened since, then goes live, with no gap and no duplicate between.
    /// A client watching one action passes `filter: {ids: [...]}`.
    async fn action_status_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<FilterArgument>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = async_graphql::Result<ActionStatusEvent>> + use<>, AppError>
    {
        let caller = principal(ctx);
        caller.require_read()?;
        let filter = FilterArgument::into_domain(filter)?;
        let services = services(ctx);
        let after = match after {
            Some(text) => {
                let seq = services
                    .events
                    .cursors()
                    .decode(&caller.tenant_id, "after", &text)?;
                if !services.store.has_event(&caller.tenant_id, seq).await? {
                    return Err(AppError::bad_input(
                        "after",
                        "after is not a cursor of an event of this tenant",
                    ));
                }
                Some(seq)
            }
            None => None,
        };
        let feed = feed::watch(
            services.events.clone(),
            caller.tenant_id.clone(),
            filter,
            after,
            services.subscriber_max_lag,
        );
        let events = services.events.clone();
        let tenant = caller.tenant_id.clone();
        Ok(feed.map(move |item| match item {
            Ok(delivered) => Ok(ActionStatusEvent(delivered)),
            Err(FeedError::Store(err)) => Err(err.extend()),
            Err(FeedError::TooSlow { cursor: at }) => Err(AppError::TooSlow(match at {
                Some(at) => format!(
                    "this subscription fell too far behind and was ended; subscribe again with after: \"{}\"",
                    events.cursors().encode(&tenant, at)
                ),
                None => "this subscription fell too far behind and was ended; subscribe again".to_owned(),
            })
            .extend()),
        }))
    }

    /// How many of the caller's tenant's actions that pass `filter` are in
    /// each status (as `actionCounts`): the counts now, then again whenever
    /// they change, at most about four times a second. Nothing is counted
    /// while nothing changes; a slow client gets the latest counts, not every
    /// value in between.
    async fn action_counts_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<FilterArgument>,
    ) -> Result<impl Stream<Item = Vec<StatusCount>> + use<>, AppError> {
        let caller = principal(ctx);
        caller.require_read()?;
        let filter = FilterArgument::into_domain(filter)?;
        let mut counts = services(ctx)
            .events
            .watch_counts(caller.tenant_id.clone(), filter)
            .await?;
        Ok(async_stream::stream! {
            loop {
                let now = counts.borrow_and_update().clone();
                yield StatusCount::list(&now);
                if counts.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

/// One status change of an action.
pub(crate) struct ActionStatusEvent(Delivered);

#[Object]
impl ActionStatusEvent {
    /// Pass as `after` to resume from this event.
    async fn cursor(&self, ctx: &Context<'_>) -> String {
        let event = &self.0.event;
        services(ctx)
            .events
            .cursors()
            .encode(&event.tenant_id, event.seq)
    }

    /// The action, as it stood when the event was read.
    async fn action(&self) -> SecurityAction {
        SecurityAction::from_event(&self.0)
    }

    /// The status the action moved to.
    async fn status(&self) -> OperationStatus {
        self.0.event.change.status.into()
    }

    /// The status it moved from; null for the first.
    async fn previous_status(&self) -> Option<OperationStatus> {
        self.0.event.change.previous_status.map(Into::into)
    }

    async fn occurred_date_time(&self) -> DateTime<Utc> {
        self.0.event.change.occurred_at
    }
}
