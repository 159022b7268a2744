//! The executor: claims due actions from the database, carries them out on
//! their providers, and records how each attempt ended.
//!
//! One loop per process claims up to `concurrency` actions at a time, each
//! with a lease (see `store::work`), and runs each in its own task. Transient
//! failures are retried with exponential backoff and jitter; a lease that
//! expires because its process died is claimed again by any executor. A
//! cancel stops an attempt running here at once: a local one through
//! [`ExecutorHandle`], another replica's through the store's notices
//! (`store::notify`). On shutdown the loop stops claiming, gives attempts in
//! flight a grace period, and gives back the leases it still holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::providers::Providers;
use crate::store::Store;
use crate::telemetry::metrics;

mod backoff;
mod worker;

/// Settings of the executor.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Whether this process executes actions at all (a replica may only serve).
    pub enabled: bool,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// How long a claim is held before another executor may take it over.
    pub lease: Duration,
    /// Attempts at one piece of work before it fails for good.
    pub max_attempts: u32,
    /// How long one provider call may take, unless the provider sets its own.
    pub provider_timeout: Duration,
    /// The first retry's delay; each further retry doubles it.
    pub retry_base_delay: Duration,
    /// The longest delay between retries.
    pub retry_max_delay: Duration,
    /// How often the queue is looked at when nothing wakes the executor.
    pub poll_interval: Duration,
    /// How long attempts in flight may take to finish on shutdown.
    pub shutdown_grace: Duration,
}

impl ExecutorOptions {
    /// The defaults, also those of the command line.
    pub(crate) const DEFAULT: ExecutorOptions = ExecutorOptions {
        enabled: true,
        concurrency: 64,
        lease: Duration::from_secs(60),
        max_attempts: 5,
        provider_timeout: Duration::from_secs(15),
        retry_base_delay: Duration::from_secs(1),
        retry_max_delay: Duration::from_secs(300),
        poll_interval: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(10),
    };
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions::DEFAULT
    }
}

/// How the rest of the gateway talks to the executor: wake it when there is
/// new work, and tell it of cancels so a running attempt stops at once.
#[derive(Clone, Default)]
pub(crate) struct ExecutorHandle {
    inner: Arc<HandleInner>,
}

#[derive(Default)]
struct HandleInner {
    wake: Notify,
    /// Attempts running here, with the lease token of each.
    running: Mutex<HashMap<Uuid, (i64, CancellationToken)>>,
}

impl ExecutorHandle {
    /// There may be work due now.
    pub(crate) fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// A cancel of `id` was recorded: stop its attempt if it runs here.
    pub(crate) fn cancel_requested(&self, id: Uuid) {
        self.stop_attempt(id);
        self.wake();
    }

    /// Stops the attempt at `id`, if one runs here.
    fn stop_attempt(&self, id: Uuid) {
        let running = self.inner.running.lock().expect("running attempts");
        if let Some((_, token)) = running.get(&id) {
            token.cancel();
        }
    }

    fn register(&self, id: Uuid, lease: i64) -> CancellationToken {
        let token = CancellationToken::new();
        let mut running = self.inner.running.lock().expect("running attempts");
        running.insert(id, (lease, token.clone()));
        token
    }

    /// Forgets attempt `lease` of `id`, not a newer one that took it over.
    fn unregister(&self, id: Uuid, lease: i64) {
        let mut running = self.inner.running.lock().expect("running attempts");
        if running.get(&id).is_some_and(|(held, _)| *held == lease) {
            running.remove(&id);
        }
    }
}

/// What every worker needs.
struct Context {
    store: Store,
    providers: Providers,
    options: ExecutorOptions,
    handle: ExecutorHandle,
}

/// The claim–run–finish loop of one process.
pub(crate) struct Executor {
    context: Arc<Context>,
    owner: String,
    /// Cancels recorded by other replicas (`store::notify`).
    cancels: broadcast::Receiver<Uuid>,
}

impl Executor {
    pub(crate) fn new(
        store: Store,
        providers: Providers,
        options: ExecutorOptions,
        handle: ExecutorHandle,
    ) -> Executor {
        let owner = format!("{}-{}", std::process::id(), Uuid::new_v4().simple());
        let cancels = store.cancels_announced();
        Executor {
            context: Arc::new(Context {
                store,
                providers,
                options,
                handle,
            }),
            owner,
            cancels,
        }
    }

    /// Runs until `stop` is canceled, then shuts down gracefully. Dropping the
    /// future instead (the process dies) leaves the leases to expire.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        let options = &self.context.options;
        if !options.enabled {
            stop.cancelled().await;
            return;
        }
        info!(owner = %self.owner, concurrency = options.concurrency, "executor started");
        let mut workers = JoinSet::new();
        let mut housekeeping = tokio::time::interval(Duration::from_secs(30));
        let mut cancels_open = true;
        while !stop.is_cancelled() {
            while workers.try_join_next().is_some() {}
            let free = options.concurrency.saturating_sub(workers.len());
            if free > 0 {
                match self
                    .context
                    .store
                    .claim_due(&self.owner, free as u64, options.lease)
                    .await
                {
                    Ok(claims) => {
                        for claim in claims {
                            workers.spawn(worker::run(self.context.clone(), claim));
                        }
                    }
                    Err(err) => warn!(error = %err.for_log(), "claiming due actions"),
                }
            }
            metrics::in_flight(workers.len());
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = self.context.handle.inner.wake.notified() => {}
                Some(_) = workers.join_next(), if !workers.is_empty() => {}
                _ = tokio::time::sleep(options.poll_interval) => {}
                _ = housekeeping.tick() => self.context.providers.maintain().await,
                cancel = self.cancels.recv(), if cancels_open => match cancel {
                    // The claim at the top of the loop takes up the revert
                    // once the stopped attempt hands it over.
                    Ok(id) => self.context.handle.stop_attempt(id),
                    Err(RecvError::Lagged(missed)) => {
                        warn!(missed, "cancel notices were missed; their attempts see the cancel when they end");
                    }
                    Err(RecvError::Closed) => cancels_open = false,
                },
            }
        }
        let in_flight = workers.len();
        if in_flight > 0 {
            info!(in_flight, grace = ?options.shutdown_grace, "executor stopping: letting attempts finish");
            let _ = tokio::time::timeout(options.shutdown_grace, async {
                while workers.join_next().await.is_some() {}
            })
            .await;
            workers.abort_all();
            while workers.join_next().await.is_some() {}
        }
        match self.context.store.release_leases(&self.owner).await {
            Ok(released) => info!(released, "executor stopped"),
            Err(err) => warn!(error = %err.for_log(), "releasing leases on shutdown"),
        }
    }
}
