//! Live counts: the counts by status of one tenant's actions that pass one
//! filter, read again only when an event says they may have changed.
//!
//! Subscribers with the same tenant and filter share one watcher: a task that
//! follows the event broadcast (which carries every replica's changes) and,
//! when an event of its tenant touches its filter (the action passes it in its
//! new or its previous status), reads the counts again, at most once per
//! [`COALESCE`], and publishes them on a `watch` channel only if they differ.
//! While nothing changes it does no database work at all. Subscribers see the
//! latest value (a slow one skips values, never lags behind). The watcher ends
//! when its last subscriber leaves.
//!
//! The same broadcast paces the folding of the counters' striped rows
//! ([`fold_counters`]): after a change, never while nothing changes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{EventHub, StatusEvent};
use crate::domain::filter::ActionFilter;
use crate::domain::status::ActionStatus;
use crate::error::AppError;

/// The shortest time between two reads of one watcher's counts.
pub(crate) const COALESCE: Duration = Duration::from_millis(250);

/// How long after a change the counters' striped rows are folded; also the
/// shortest time between two folds.
pub(crate) const FOLD_AFTER: Duration = Duration::from_secs(10);

/// Counts by status, every status listed in lifecycle order.
pub(crate) type Counts = Arc<Vec<(ActionStatus, u64)>>;

/// Which counts a watcher follows: a tenant and a filter (in its `Debug`
/// form, which names every field and value).
type WatcherKey = (String, String);

/// The watchers running in this process.
pub(crate) type Watchers =
    std::sync::Mutex<std::collections::HashMap<WatcherKey, watch::Sender<Counts>>>;

impl EventHub {
    /// The counts of `tenant`'s actions that pass `filter`: the receiver holds
    /// them now and is told whenever they change.
    pub(crate) async fn watch_counts(
        &self,
        tenant: String,
        filter: ActionFilter,
    ) -> Result<watch::Receiver<Counts>, AppError> {
        let key = (tenant.clone(), format!("{filter:?}"));
        if let Some(sender) = self.watchers().get(&key) {
            return Ok(sender.subscribe());
        }
        // Listen before reading, so a change in between is not missed.
        let live = self.subscribe();
        let now = self.store().count_by_status(&tenant, &filter).await?;
        let mut watchers = self.watchers();
        if let Some(sender) = watchers.get(&key) {
            return Ok(sender.subscribe());
        }
        let (sender, receiver) = watch::channel(Arc::new(now));
        watchers.insert(key.clone(), sender.clone());
        drop(watchers);
        let watcher = Watcher {
            hub: self.clone(),
            key,
            tenant,
            filter,
            sender,
        };
        tokio::spawn(watcher.run(live));
        Ok(receiver)
    }

    fn watchers(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<WatcherKey, watch::Sender<Counts>>>
    {
        self.inner.count_watchers.lock().expect("count watchers")
    }

    /// How many times count watchers read counts again since start (not the
    /// first read of each), for `/metrics` and tests.
    pub fn live_count_reads(&self) -> u64 {
        self.inner
            .live_count_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many count watchers run in this process (each serves every
    /// subscriber of one tenant and filter).
    pub fn count_watchers(&self) -> usize {
        self.watchers().len()
    }
}

struct Watcher {
    hub: EventHub,
    key: WatcherKey,
    tenant: String,
    filter: ActionFilter,
    sender: watch::Sender<Counts>,
}

impl Watcher {
    async fn run(self, mut live: tokio::sync::broadcast::Receiver<Arc<super::EventBatch>>) {
        let mut last_read = Instant::now();
        // A read is owed: a change arrived, or the last read failed.
        let mut owed = false;
        loop {
            if !owed {
                tokio::select! {
                    _ = self.sender.closed() => {
                        if self.forget() {
                            return;
                        }
                        continue;
                    }
                    batch = live.recv() => match batch {
                        Ok(batch) => owed = batch.events.iter().any(|e| self.touched_by(e)),
                        Err(RecvError::Lagged(_)) => owed = true,
                        Err(RecvError::Closed) => {
                            self.forget_anyway();
                            return;
                        }
                    },
                }
                if !owed {
                    continue;
                }
            }
            tokio::time::sleep_until(last_read + COALESCE).await;
            // What arrived so far is covered by the read that follows.
            while let Ok(_) | Err(TryRecvError::Lagged(_)) = live.try_recv() {}
            last_read = Instant::now();
            self.hub
                .inner
                .live_count_reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::telemetry::metrics::live_count_read();
            match self
                .hub
                .store()
                .count_by_status(&self.tenant, &self.filter)
                .await
            {
                Ok(counts) => {
                    owed = false;
                    self.sender.send_if_modified(|current| {
                        let changed = **current != counts;
                        if changed {
                            *current = Arc::new(counts);
                        }
                        changed
                    });
                }
                Err(err) => {
                    warn!(error = %err.for_log(), tenant = %self.tenant, "reading live counts")
                }
            }
        }
    }

    /// Whether `event` may change these counts: it is of this tenant, and the
    /// action passes the filter in its new status or its previous one.
    fn touched_by(&self, event: &StatusEvent) -> bool {
        let passes = |status| {
            self.filter
                .matches(&event.action, &event.parameters, status)
        };
        event.tenant_id == self.tenant
            && (passes(event.change.status) || event.change.previous_status.is_some_and(passes))
    }

    /// Leaves the registry when no subscriber is left (checked under its lock,
    /// so a subscriber arriving meanwhile keeps the watcher).
    fn forget(&self) -> bool {
        let mut watchers = self.hub.watchers();
        if self.sender.receiver_count() > 0 {
            return false;
        }
        watchers.remove(&self.key);
        true
    }

    fn forget_anyway(&self) {
        self.hub.watchers().remove(&self.key);
    }
}

/// Folds the counters' striped rows into one row per key
/// (`Store::fold_counters`) once at start, then [`FOLD_AFTER`] after the
/// first change since the last fold (events carry every replica's changes),
/// until `stop`: totals read one row per key once changes quieten, and
/// nothing touches the database while nothing changes. Several replicas may
/// fold at once; each skips the rows another holds.
pub(super) async fn fold_counters(hub: &EventHub, stop: &CancellationToken) {
    let mut live = hub.subscribe();
    // A fold is owed without a change: at start, or after one that failed.
    let mut owed = true;
    loop {
        if owed {
            owed = false;
            match hub.store().fold_counters().await {
                Ok(0) => {}
                Ok(folded) => debug!(folded, "counter rows folded"),
                Err(AppError::Timeout(err)) => {
                    debug!(error = %err, "folding counter rows met a writer; trying again later");
                    owed = true;
                }
                Err(err) => {
                    warn!(error = %err.for_log(), "folding counter rows");
                    owed = true;
                }
            }
        }
        if !owed {
            tokio::select! {
                _ = stop.cancelled() => return,
                batch = live.recv() => if let Err(RecvError::Closed) = batch {
                    return;
                },
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(FOLD_AFTER) => {}
        }
        // What arrived meanwhile is covered by the fold that follows.
        while let Ok(_) | Err(TryRecvError::Lagged(_)) = live.try_recv() {}
        owed = true;
    }
}
