//! Event fan-out: status changes from the state history to subscribers.
//!
//! Three loops run in every process:
//! - the **relay** numbers committed state rows in commit order (see
//!   `store::events`) as soon as a local commit appended some, and at least
//!   every second for rows a crashed replica left unnumbered;
//! - the **tail** reads numbered events after the last one it published and
//!   publishes them, as batches, on an in-process broadcast channel;
//! - on PostgreSQL, the **listener** `LISTEN`s for the cursors other replicas'
//!   relays `NOTIFY`, and wakes the tail; when its connection drops it
//!   reconnects and the tail catches up from its cursor.
//!
//! Subscribers ([`feed::watch`]) take their tenant's events from the broadcast,
//! and from the database when they resume from a cursor or fall behind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OnceCell, broadcast};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::domain::action::{Action, Parameter, StateChange};
use crate::error::{AppError, DisplayChain};
use crate::executor::ExecutorHandle;
use crate::store::{CANCELS_CHANNEL, EVENTS_CHANNEL, Store, StoredEvent};

pub mod cursor;
pub mod feed;

/// Event batches kept in memory for subscribers that are behind, unless set.
pub const DEFAULT_EVENT_BUFFER: usize = 1024;
/// How many events a subscriber may fall behind before its subscription
/// ends, unless set.
pub const DEFAULT_SUBSCRIBER_MAX_LAG: u64 = 100_000;

/// Events one read of the history takes at most.
const PAGE: u64 = 1000;
/// How often the relay and the tail look even when nothing woke them.
const FALLBACK_INTERVAL: Duration = Duration::from_secs(1);

/// One status change, with the action it belongs to.
#[derive(Debug, Clone)]
pub struct StatusEvent {
    pub seq: i64,
    pub tenant_id: String,
    pub change: StateChange,
    /// The action as it stood when the event was read (shared by every
    /// subscriber the event goes to, and by the action's other events in
    /// the batch).
    pub action: Arc<Action>,
    pub parameters: Arc<[Parameter]>,
}

/// State histories by action id.
type StatesByAction = HashMap<Uuid, Vec<StateChange>>;

/// Events read together, and what subscribers may want of their actions,
/// loaded once for all of them.
pub struct EventBatch {
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
    pub fn last_seq(&self) -> Option<i64> {
        self.events.last().map(|e| e.seq)
    }

    /// The state history of `action_id`, one query per tenant and batch
    /// however many subscribers ask.
    pub async fn states_of(
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
    batches: broadcast::Sender<Arc<EventBatch>>,
    /// The cursor of the last event published.
    head: AtomicI64,
    /// New events may be there to read.
    wake: Notify,
}

impl EventHub {
    /// A hub that publishes events numbered from now on, keeping `capacity`
    /// batches for subscribers that are behind.
    pub async fn new(store: Store, capacity: usize) -> Result<EventHub, AppError> {
        let head = store.event_head().await?;
        let (batches, _) = broadcast::channel(capacity.max(1));
        Ok(EventHub {
            inner: Arc::new(HubInner {
                store,
                batches,
                head: AtomicI64::new(head),
                wake: Notify::new(),
            }),
        })
    }

    /// The cursor of the last event published.
    pub fn head(&self) -> i64 {
        self.inner.head.load(Ordering::Acquire)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Batches published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventBatch>> {
        self.inner.batches.subscribe()
    }

    /// New events may be there to read.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Runs the relay, the tail and (on PostgreSQL) the listener until `stop`.
    /// The listener also hears of cancels made on other replicas and tells
    /// `executor`, so an attempt running here stops at once.
    pub async fn run(self, stop: CancellationToken, executor: ExecutorHandle) {
        let listener = async {
            if let Some(pool) = self.inner.store.postgres_pool().cloned() {
                listen(&self, pool, &stop, &executor).await;
            }
        };
        tokio::join!(relay(&self, &stop), tail(&self, &stop), listener);
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
                    log_error("numbering events", &err);
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
            let head = hub.head();
            let events = match store.all_tenants_events_after(head, PAGE).await {
                Ok(events) => events,
                Err(err) => {
                    log_error("reading events", &err);
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
                    log_error("loading the actions of events", &err);
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
            _ = tokio::time::sleep(FALLBACK_INTERVAL) => {}
        }
    }
}

/// Wakes the tail on every cursor another replica announces; reconnects when
/// the listening connection drops, and then has the tail catch up.
async fn listen(
    hub: &EventHub,
    pool: sqlx::PgPool,
    stop: &CancellationToken,
    executor: &ExecutorHandle,
) {
    let mut delay = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let connected = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener
                .listen_all([EVENTS_CHANNEL, CANCELS_CHANNEL])
                .await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(err) => {
                warn!(error = %err, ?delay, "LISTEN failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        info!(
            channel = EVENTS_CHANNEL,
            "listening for events of other replicas"
        );
        delay = Duration::from_millis(100);
        // Whatever was announced while not listening is read by cursor.
        hub.wake();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                notification = listener.try_recv() => match notification {
                    Ok(Some(notification)) if notification.channel() == CANCELS_CHANNEL => {
                        if let Ok(id) = notification.payload().parse::<Uuid>() {
                            executor.cancel_requested(id);
                        }
                    }
                    Ok(Some(_)) => hub.wake(),
                    Ok(None) => {
                        warn!("the LISTEN connection dropped; reconnecting");
                        hub.wake();
                        break;
                    }
                    Err(err) => {
                        warn!(error = %err, "the LISTEN connection failed; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

/// Loads the actions and parameters of `events`, tenant by tenant.
pub async fn build_batch(store: &Store, events: Vec<StoredEvent>) -> Result<EventBatch, AppError> {
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

fn log_error(what: &str, err: &AppError) {
    match err {
        AppError::Internal(source) => warn!(error = %DisplayChain(source.as_ref()), "{what}"),
        other => warn!(error = %other, "{what}"),
    }
}
