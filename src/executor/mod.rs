//! The executor: claims due actions from the database, carries them out on
//! their providers, and records how each attempt ended.
//!
//! One loop per process claims due actions, each with a lease (see
//! `store::work`), groups those of one provider, tenant and kind of work into
//! batches of at most the provider's `batch_limit`, and runs each batch in
//! its own task as one provider call; at most `concurrency` calls run at
//! once. A provider that takes no batches gets batches of one: one call per
//! action, as before. A claim that comes back full tops up the batches it
//! made with more due work of their own group, so what is due together goes
//! together in as few calls as the providers' limits allow. Leases, fences,
//! retries and cancels stay per action. Transient
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
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::domain::time;
use crate::providers::Providers;
use crate::store::{Claim, Group, Lease, Store};
use crate::telemetry::metrics;

mod backoff;
mod worker;

/// Settings of the executor.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Whether this process executes actions at all (a replica may only serve).
    pub enabled: bool,
    /// Provider calls in flight at once (a batch of actions is one call).
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

    /// Gives back, due at once and without counting an attempt, what was
    /// claimed beyond the calls free (the claim guessed the batches' sizes).
    async fn put_back(&self, batches: Vec<Vec<Claim>>) {
        let leases: Vec<Lease> = batches.into_iter().flatten().map(|c| c.lease).collect();
        let count = leases.len();
        match self
            .context
            .store
            .put_back(&leases, None, time::now())
            .await
        {
            Ok(_) => debug!(count, "claimed beyond the free calls: given back"),
            // Their leases expire and the work is claimed again.
            Err(err) => warn!(error = %err.for_log(), count, "giving back claimed work"),
        }
    }

    /// Tops up the batches about to run (the first `free`) that have room
    /// left with more due work of their own provider, tenant and work. Called
    /// when the claim came back full, so more may be due: what is due for a
    /// group then goes in one call of up to its provider's `batch_limit`,
    /// however few calls are free and however the claim was sized, rather
    /// than a small call now and the rest in later ones, each of which a
    /// paced provider counts against its budget.
    async fn fill(&self, batches: &mut [Vec<Claim>], free: usize) {
        let context = &self.context;
        for batch in batches.iter_mut().take(free) {
            let Some(first) = batch.first() else { continue };
            let limit = context
                .providers
                .get(&first.action.vendor.provider)
                .map_or(1, |provider| provider.batch_limit().max(1));
            let room = limit.saturating_sub(batch.len());
            if room == 0 {
                continue;
            }
            let group = Group {
                provider: first.action.vendor.provider.clone(),
                tenant_id: first.lease.tenant_id.clone(),
                work: first.work,
            };
            match context
                .store
                .claim_due_of(&self.owner, &group, room as u64, context.options.lease)
                .await
            {
                Ok(more) => batch.extend(more),
                Err(err) => warn!(error = %err.for_log(), "claiming more of a batch's due work"),
            }
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
        let mut sizing = ClaimSizing::new(self.context.providers.largest_batch());
        while !stop.is_cancelled() {
            while workers.try_join_next().is_some() {}
            let free = options.concurrency.saturating_sub(workers.len());
            if free > 0 {
                let asked = sizing.claim_for(free);
                match self
                    .context
                    .store
                    .claim_due(&self.owner, asked, options.lease)
                    .await
                {
                    Ok(claims) => {
                        let full = claims.len() as u64 >= asked;
                        let mut batches = batches_of(claims, &self.context.providers);
                        if full {
                            self.fill(&mut batches, free).await;
                        }
                        let claimed = batches.iter().map(Vec::len).sum();
                        sizing.observe(asked, claimed, batches.len(), free);
                        if batches.len() > free {
                            self.put_back(batches.split_off(free)).await;
                        }
                        for batch in batches {
                            workers.spawn(worker::run(self.context.clone(), batch));
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

/// The most due actions one claim takes: bounded so a claim's statements stay
/// well within the databases' parameter limits and a claim stays short.
const MAX_CLAIM: usize = 2_000;

/// How many actions to claim for the calls free. The claim cannot know
/// beforehand how the due actions will group into batches, so it goes by how
/// the last claim grouped: with one action per call it claims one per free
/// call (and never more than it can run); with a feed queued for a batching
/// provider it claims enough to fill those calls' batches.
struct ClaimSizing {
    /// Actions per call in the last claim, between 1 and `largest_batch`.
    actions_per_call: f64,
    largest_batch: usize,
}

impl ClaimSizing {
    fn new(largest_batch: usize) -> ClaimSizing {
        ClaimSizing {
            actions_per_call: 1.0,
            largest_batch: largest_batch.max(1),
        }
    }

    fn claim_for(&self, free_calls: usize) -> u64 {
        let wanted = (free_calls as f64 * self.actions_per_call).ceil() as usize;
        wanted.clamp(free_calls.min(MAX_CLAIM), MAX_CLAIM) as u64
    }

    /// A claim of `asked` brought `claimed` actions, which made `calls`
    /// batches for `free` free calls. When they left calls free although the
    /// queue had more (the claim came back full), the next claim may be
    /// larger; otherwise it follows what this one found.
    fn observe(&mut self, asked: u64, claimed: usize, calls: usize, free: usize) {
        if claimed == 0 || calls == 0 {
            return;
        }
        let mut per_call = claimed as f64 / calls as f64;
        if calls < free && claimed as u64 >= asked {
            per_call *= 2.0;
        }
        self.actions_per_call = per_call.clamp(1.0, self.largest_batch as f64);
    }
}

/// Groups claims into batches: by provider, tenant and work, in the order
/// claimed (oldest due first), each at most its provider's `batch_limit`.
fn batches_of(claims: Vec<Claim>, providers: &Providers) -> Vec<Vec<Claim>> {
    let mut order: Vec<Group> = Vec::new();
    let mut groups: HashMap<Group, Vec<Claim>> = HashMap::new();
    for claim in claims {
        let key = Group {
            provider: claim.action.vendor.provider.clone(),
            tenant_id: claim.lease.tenant_id.clone(),
            work: claim.work,
        };
        let group = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Vec::new()
        });
        group.push(claim);
    }
    let mut batches = Vec::new();
    for key in order {
        let Some(mut group) = groups.remove(&key) else {
            continue;
        };
        let limit = providers
            .get(&key.provider)
            .map_or(1, |provider| provider.batch_limit().max(1));
        while group.len() > limit {
            let rest = group.split_off(limit);
            batches.push(std::mem::replace(&mut group, rest));
        }
        batches.push(group);
    }
    batches
}
