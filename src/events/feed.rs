//! One subscriber's feed: its tenant's events that pass its filter, in cursor
//! order, each once.
//!
//! With a cursor to resume from, the feed first reads what happened since from
//! the database, then follows the broadcast; events it already delivered are
//! skipped, so the seam has neither gap nor duplicate. A feed that falls behind
//! the broadcast (its consumer is slow) reads the missed events from the
//! database instead of losing them, unless it is more than `max_lag` events
//! behind: then it ends with `SUBSCRIBER_TOO_SLOW`, naming the cursor to resume
//! from.

use std::sync::Arc;

use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::{EventBatch, EventHub, StatusEvent, build_batch};
use crate::domain::filter::ActionFilter;
use crate::error::AppError;
use crate::telemetry::metrics;

/// Events one catch-up read takes.
const CATCH_UP_PAGE: u64 = 500;

/// An event delivered to a subscriber, with the batch it came in (for the
/// parts of its action that are loaded once per batch).
#[derive(Clone)]
pub struct Delivered {
    pub event: StatusEvent,
    pub(crate) batch: Arc<EventBatch>,
}

/// Why a feed ended early.
#[derive(Debug)]
pub enum FeedError {
    /// Reading the database failed.
    Store(AppError),
    /// The subscriber fell more than the limit behind; resume from `cursor`
    /// (the last event of its tenant it was past), or from now when none.
    TooSlow { cursor: Option<i64> },
}

/// The feed of `tenant`'s events passing `filter`, after `after` (or from now).
pub fn watch(
    hub: EventHub,
    tenant: String,
    filter: ActionFilter,
    after: Option<i64>,
    max_lag: u64,
) -> impl Stream<Item = Result<Delivered, FeedError>> + Send {
    async_stream::stream! {
        let mut live = hub.subscribe();
        // Everything up to `cursor` is dealt with: delivered, filtered out, or
        // another tenant's.
        let mut cursor = after.unwrap_or_else(|| hub.head());
        // The last event of this tenant the feed is past: a cursor the
        // subscriber can resume from.
        let mut own = after;
        let mut catch_up = after.is_some();
        loop {
            if catch_up {
                loop {
                    let events = match hub.store().events_after(&tenant, cursor, CATCH_UP_PAGE).await {
                        Ok(events) => events,
                        Err(err) => {
                            yield Err(FeedError::Store(err));
                            return;
                        }
                    };
                    let read = events.len() as u64;
                    let page_last = events.last().map(|e| e.seq);
                    let batch = match build_batch(hub.store(), events).await {
                        Ok(batch) => Arc::new(batch),
                        Err(err) => {
                            yield Err(FeedError::Store(err));
                            return;
                        }
                    };
                    for event in &batch.events {
                        cursor = cursor.max(event.seq);
                        own = Some(event.seq);
                        if passes(&filter, event) {
                            metrics::events_delivered(1);
                            yield Ok(Delivered { event: event.clone(), batch: batch.clone() });
                        }
                    }
                    cursor = cursor.max(page_last.unwrap_or(cursor));
                    if read < CATCH_UP_PAGE {
                        break;
                    }
                }
                catch_up = false;
            }
            match live.recv().await {
                Ok(batch) => {
                    for event in &batch.events {
                        if event.seq <= cursor || event.tenant_id != tenant {
                            continue;
                        }
                        cursor = event.seq;
                        own = Some(event.seq);
                        if passes(&filter, event) {
                            metrics::events_delivered(1);
                            yield Ok(Delivered { event: event.clone(), batch: batch.clone() });
                        }
                    }
                    if let Some(last) = batch.last_seq() {
                        cursor = cursor.max(last);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    if hub.head().saturating_sub(cursor) as u64 > max_lag {
                        metrics::subscriber_too_slow();
                        yield Err(FeedError::TooSlow { cursor: own });
                        return;
                    }
                    metrics::caught_up_from_database();
                    catch_up = true;
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}

fn passes(filter: &ActionFilter, event: &StatusEvent) -> bool {
    filter.matches(&event.action, &event.parameters, event.change.status)
}
