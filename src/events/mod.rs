//! Event fan-out: status changes from the state history to subscribers.
//!
//! Two loops run in every process:
//! - the **relay** numbers committed state rows in commit order (see
//!   `store::events`) as soon as a local commit appended some, and at least
//!   every second for rows a crashed replica left unnumbered;
//! - the **tail** reads numbered events after the last one it published and
//!   publishes them, as batches, on an in-process broadcast channel. It wakes
//!   when the relay numbered events here, when another replica announced some
//!   (`store::notify`, PostgreSQL `LISTEN`; after a dropped connection it
//!   catches up from its cursor), and at least every second.
//!
//! Subscribers ([`feed::watch`]) take their tenant's events from the broadcast,
//! and from the database when they resume from a cursor or fall behind. Live
//! counts (`counts`) follow the same broadcast to know when to count again,
//! and when to fold the counters' striped rows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OnceCell, broadcast};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::domain::action::{Action, Parameter, StateChange};
use crate::error::AppError;
use crate::store::{Store, StoredEvent};
use cursor::CursorKey;

mod counts;
pub mod cursor;
pub mod feed;

/// Event batches kept in memory for subscribers that are behind, unless set.
pub(crate) const DEFAULT_EVENT_BUFFER: usize = 1024;
/// How many events a subscriber may fall behind before its subscription
/// ends, unless set.
pub(crate) const DEFAULT_SUBSCRIBER_MAX_LAG: u64 = 100_000;

/// Events one read of the history takes at most.
const PAGE: u64 = 1000;
/// How often the relay and the tail look even when nothing woke them.
const FALLBACK_INTERVAL: Duration = Duration::from_secs(1);

/// One status change, with the action it belongs to.
#[derive(Debug, Clone)]
pub struct StatusEvent {
    pub seq: i64,
    pub(crate) tenant_id: String,
    pub change: StateChange,
    /// The action as it stood when the event was read (shared by every
    /// subscriber the event goes to, and by the action's other events in
    /// the batch).
    pub action: Arc<Action>,
    pub(crate) parameters: Arc<[Parameter]>,
}

/// State histories by action id.
type StatesByAction = HashMap<Uuid, Vec<StateChange>>;

/// Events read together, and what subscribers may want of their actions,
/// loaded once for all of them.
pub(crate) struct EventBatch {
    pub events: Vec<StatusEvent>,
    /// The state histories of the batch's actions, per tenant, loaded on the
    /// first subscriber's request.
    states: Mutex<HashMap<String, Arc<OnceCell<StatesByAction>>>>,
}

impl EventBatch {
    fn new(events: Vec<StatusEvent>) -> EventBatch {
        EventBatch {
            events,
            states: Mutex::new(HashMap::new()),
        }
    }

    /// The highest cursor in the batch.
    pub(crate) fn last_seq(&self) -> Option<i64> {
        self.events.last().map(|e| e.seq)
    }

    /// The state history of `action_id`, one query per tenant and batch
    /// however many subscribers ask.
    pub(crate) async fn states_of(
        &self,
        store: &Store,
        tenant: &str,
        action_id: Uuid,
    ) -> Result<Vec<StateChange>, AppError> {
        let cell = self
            .states
            .lock()
            .expect("batch states")
            .entry(tenant.to_owned())
            .or_default()
            .clone();
        let states = cell
            .get_or_try_init(|| async {
                let ids: Vec<Uuid> = self
                    .events
                    .iter()
                    .filter(|e| e.tenant_id == tenant)
                    .map(|e| e.action.id)
                    .collect();
                store.states_of(tenant, &ids).await
            })
            .await?;
        Ok(states.get(&action_id).cloned().unwrap_or_default())
    }
}

/// The fan-out of one process.
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    store: Store,
    /// Seals event numbers into the cursors clients see.
    cursors: CursorKey,
    batches: broadcast::Sender<Arc<EventBatch>>,
    /// The cursor of the last event published.
    head: AtomicI64,
    /// New events may be there to read.
    wake: Notify,
    /// The live counts followed in this process (`counts`).
    count_watchers: counts::Watchers,
    /// Reads of counts by the watchers, for `/metrics` and tests.
    live_count_reads: std::sync::atomic::AtomicU64,
}

impl EventHub {
    /// A hub that publishes events numbered from now on, keeping `capacity`
    /// batches for subscribers that are behind.
    pub(crate) async fn new(store: Store, capacity: usize) -> Result<EventHub, AppError> {
        let head = store.event_head().await?;
        let secret = store.secret(cursor::KEY_NAME, cursor::KEY_BYTES).await?;
        let cursors = CursorKey::new(&secret)?;
        let (batches, _) = broadcast::channel(capacity.max(1));
        Ok(EventHub {
            inner: Arc::new(HubInner {
                store,
                cursors,
                batches,
                head: AtomicI64::new(head),
                wake: Notify::new(),
                count_watchers: Default::default(),
                live_count_reads: Default::default(),
            }),
        })
    }

    /// The cursor of the last event published.
    pub fn head(&self) -> i64 {
        self.inner.head.load(Ordering::Acquire)
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Makes and reads the cursors of events, as `tenant` sees them.
    pub fn cursors(&self) -> &CursorKey {
        &self.inner.cursors
    }

    /// How many feeds are attached now: each live subscription holds one.
    /// Tests wait on it to know a subscription will miss nothing.
    pub fn subscribers(&self) -> usize {
        self.inner.batches.receiver_count()
    }

    /// Batches published from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<EventBatch>> {
        self.inner.batches.subscribe()
    }

    /// New events may be there to read.
    pub(crate) fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Runs the relay, the tail and the folding of the counters until `stop`.
    pub(crate) async fn run(self, stop: CancellationToken) {
        tokio::join!(
            relay(&self, &stop),
            tail(&self, &stop),
            counts::fold_counters(&self, &stop)
        );
    }
}

/// Numbers state rows whenever some were appended here, and every second for
/// those appended by a replica that died before numbering them.
async fn relay(hub: &EventHub, stop: &CancellationToken) {
    let store = &hub.inner.store;
    loop {
        loop {
            match store.number_events().await {
                Ok(Some(head)) => {
                    debug!(head, "events numbered");
                    hub.wake();
                }
                Ok(None) => break,
                Err(err) => {
                    warn!(error = %err.for_log(), "numbering events");
                    break;
                }
            }
        }
        if stop.is_cancelled() {
            return; // after one last pass
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = store.states_appended() => {}
            _ = tokio::time::sleep(FALLBACK_INTERVAL) => {}
        }
    }
}

/// Publishes numbered events in cursor order.
async fn tail(hub: &EventHub, stop: &CancellationToken) {
    let store = &hub.inner.store;
    loop {
        loop {
            // Once stopping, nobody is left to publish to (sockets close with
            // the stop; a subscriber resumes from the database by cursor): a
            // backlog left by a burst must not hold the process up.
            if stop.is_cancelled() {
                return;
            }
            let head = hub.head();
            let events = match store.all_tenants_events_after(head, PAGE).await {
                Ok(events) => events,
                Err(err) => {
                    warn!(error = %err.for_log(), "reading events");
                    break;
                }
            };
            let read = events.len() as u64;
            if read == 0 {
                break;
            }
            let last = events.last().map(|e| e.seq).unwrap_or(head);
            match build_batch(store, events).await {
                Ok(batch) => {
                    hub.inner.head.store(last, Ordering::Release);
                    // No receiver is not an error: nobody subscribes yet.
                    let _ = hub.inner.batches.send(Arc::new(batch));
                }
                Err(err) => {
                    warn!(error = %err.for_log(), "loading the actions of events");
                    break;
                }
            }
            if read < PAGE {
                break;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = hub.inner.wake.notified() => {}
            _ = store.events_announced() => {}
            _ = tokio::time::sleep(FALLBACK_INTERVAL) => {}
        }
    }
}

/// Loads the actions and parameters of `events`, tenant by tenant.
pub(crate) async fn build_batch(
    store: &Store,
    events: Vec<StoredEvent>,
) -> Result<EventBatch, AppError> {
    let mut ids_by_tenant: HashMap<&str, Vec<Uuid>> = HashMap::new();
    for event in &events {
        ids_by_tenant
            .entry(event.tenant_id.as_str())
            .or_default()
            .push(event.change.action_id);
    }
    let mut actions: HashMap<Uuid, Arc<Action>> = HashMap::new();
    let mut parameters: HashMap<Uuid, Arc<[Parameter]>> = HashMap::new();
    for (tenant, mut ids) in ids_by_tenant {
        ids.sort();
        ids.dedup();
        for action in store.actions_by_ids(tenant, &ids).await? {
            actions.insert(action.id, Arc::new(action));
        }
        parameters.extend(
            store
                .parameters_of(tenant, &ids)
                .await?
                .into_iter()
                .map(|(id, list)| (id, Arc::from(list))),
        );
    }
    let events = events
        .into_iter()
        .filter_map(|event| {
            let action = actions.get(&event.change.action_id)?.clone();
            Some(StatusEvent {
                seq: event.seq,
                parameters: parameters.get(&action.id).cloned().unwrap_or_default(),
                tenant_id: event.tenant_id,
                change: event.change,
                action,
            })
        })
        .collect();
    Ok(EventBatch::new(events))
}
