//! One attempt at a batch of claimed actions (one provider, one tenant, one
//! kind of work): one provider call for them all, then each action's outcome
//! recorded with its own claim's fence, the batch's in as few writes as the
//! store allows (`store::closing`).
//!
//! A batch of one is what every provider that takes no batches gets, and
//! behaves as a single attempt always has. Each action of a batch keeps its
//! own lease, attempts, retries and cancel: a cancel stops the call when
//! every action in it was canceled; otherwise the call runs to its end and the
//! canceled actions are handed over to their revert with what the provider
//! returned for them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{Instrument, debug, info, info_span, warn};
use uuid::Uuid;

use super::Context;
use super::backoff::retry_delay;
use crate::domain::action::{ErrorInfo, Parameter};
use crate::domain::catalog::{ParameterKind, find_action};
use crate::domain::indicator::Indicator;
use crate::domain::status::ActionStatus;
use crate::error::AppError;
use crate::providers::{
    CODE_PROVIDER_ERROR, CODE_TIMEOUT, Job, Provider, ProviderError, Reference,
};
use crate::store::{AfterWork, Claim, Closing, Lease, Work};
use crate::telemetry::metrics::{self, CallOutcome};
use crate::telemetry::trace;

/// What became of one action of the batch, to be recorded.
enum Ending {
    /// Its work is done, for good or ill.
    Close(Closing),
    /// A failure that may pass: try again after `delay`.
    Retry { delay: Duration, error: ErrorInfo },
    /// The provider said "not now": due again at `until`, no attempt counted.
    Throttled { until: DateTime<Utc> },
    /// Canceled while the call ran: the revert takes over, with what the
    /// provider returned for it, if it applied it.
    HandOver { reference: Reference },
    /// Nothing can be recorded (the claim makes no sense); its lease expires.
    Abandon(AppError),
}

/// Runs the claimed batch and records how each of its actions ended.
pub(super) async fn run(context: Arc<Context>, batch: Vec<Claim>) {
    let Some(first) = batch.first() else { return };
    // The batch was claimed just before: its leases last until about here
    // plus the lease.
    let started = Instant::now();
    let span = info_span!(
        "attempt",
        provider = %first.action.vendor.provider,
        tenant = %first.lease.tenant_id,
        work = ?first.work,
        actions = batch.len(),
        action_id = tracing::field::Empty,
        attempt = tracing::field::Empty,
    );
    if let [only] = batch.as_slice() {
        span.record("action_id", tracing::field::display(only.lease.action_id));
        span.record("attempt", only.attempts);
    }
    // A batch of one continues its action's trace (the invoke's or the
    // cancel's); a larger batch, which serves many, starts its own.
    let parent = if batch.len() == 1 {
        trace::invoking_context(&first.action)
    } else {
        Default::default()
    };
    trace::traced(span, parent, async move {
        let work = batch[0].work;
        let endings = match work {
            Work::Execute => execute(&context, &batch).await,
            Work::Revert => revert(&context, &batch).await,
        };
        if let Err(err) = record(&context, &batch, work, endings, started).await {
            // The leases will expire and the work be claimed again.
            warn!(error = %err.for_log(), "recording the attempt failed");
        }
    })
    .await
}

async fn execute(context: &Context, batch: &[Claim]) -> Vec<Ending> {
    let mut endings: Vec<Option<Ending>> = (0..batch.len()).map(|_| None).collect();
    let (provider, jobs, indexes) = prepare_all(context, batch, &mut endings, |claim, error| {
        ending_of_error(context, claim, Work::Execute, error)
    });
    let Some(provider) = provider else {
        return endings.into_iter().flatten().collect();
    };
    let handle = &context.handle;
    let stops: Vec<_> = indexes
        .iter()
        .map(|&i| handle.register(batch[i].lease.action_id, batch[i].lease.token))
        .collect();
    let all_stopped = async {
        for stop in &stops {
            stop.cancelled().await;
        }
    };
    let timeout = timeout_of(context, &batch[0]);
    let started = Instant::now();
    let result = tokio::select! {
        result = tokio::time::timeout(timeout, provider.execute_batch(&jobs).instrument(trace::provider_span(&jobs[0], "execute"))) => Some(result),
        _ = all_stopped => None,
    };
    for &i in &indexes {
        handle.unregister(batch[i].lease.action_id, batch[i].lease.token);
    }
    let mut results: Vec<Result<Reference, ProviderError>> = match result {
        None => Vec::new(),
        Some(Err(_elapsed)) => vec![Err(timed_out(timeout)); jobs.len()],
        Some(Ok(results)) => results,
    };
    results.resize_with(jobs.len(), || Err(no_result()));
    if call_ran(&stops) {
        record_call(context, &batch[0], Work::Execute, &results, started);
    }
    let mut applied = 0usize;
    for ((&i, stop), result) in indexes.iter().zip(&stops).zip(results) {
        let claim = &batch[i];
        let ending = if stop.is_cancelled() {
            info!(action_id = %claim.lease.action_id, "canceled while running: the attempt was stopped");
            Ending::HandOver {
                reference: result.ok().flatten(),
            }
        } else {
            match result {
                Ok(reference) => {
                    applied += 1;
                    debug!(action_id = %claim.lease.action_id, "applied");
                    Ending::Close(Closing::Applied { reference })
                }
                Err(error) => ending_of_error(context, claim, Work::Execute, error),
            }
        };
        endings[i] = Some(ending);
    }
    if applied > 0 {
        info!(applied, "applied");
    }
    endings.into_iter().flatten().collect()
}

async fn revert(context: &Context, batch: &[Claim]) -> Vec<Ending> {
    let mut endings: Vec<Option<Ending>> = batch
        .iter()
        .map(|claim| {
            let from = claim.action.status;
            (!matches!(from, ActionStatus::Running | ActionStatus::Completed)).then(|| {
                Ending::Abandon(AppError::internal(format!(
                    "a revert was queued for an action that is {from}"
                )))
            })
        })
        .collect();
    let (provider, jobs, indexes) = prepare_all(context, batch, &mut endings, |claim, error| {
        ending_of_error(context, claim, Work::Revert, error)
    });
    let Some(provider) = provider else {
        return endings.into_iter().flatten().collect();
    };
    let held = match held_elsewhere(context, provider, &jobs).await {
        Ok(held) => held,
        Err(err) => {
            // Nothing is lifted unasked: the leases expire and the revert is
            // claimed again.
            warn!(error = %err.for_log(), "asking whether other actions hold the indicators");
            for i in indexes {
                endings[i] = Some(Ending::Abandon(AppError::internal(
                    "could not tell whether other actions hold the indicator",
                )));
            }
            return endings.into_iter().flatten().collect();
        }
    };
    let mut pairs = Vec::with_capacity(jobs.len());
    let mut asked = Vec::with_capacity(jobs.len());
    for (job, i) in jobs.into_iter().zip(indexes) {
        let claim = &batch[i];
        if held.contains(&job.action.id) {
            info!(action_id = %claim.lease.action_id, "another action holds the same indicator: it stays");
            let detail = "the indicator stays in effect: other actions still hold it";
            endings[i] = Some(Ending::Close(Closing::Reverted {
                from: claim.action.status,
                detail: Some(detail.to_owned()),
            }));
        } else {
            pairs.push((job, claim.provider_reference.clone()));
            asked.push(i);
        }
    }
    if !pairs.is_empty() {
        let timeout = timeout_of(context, &batch[0]);
        let started = Instant::now();
        let mut results = match tokio::time::timeout(
            timeout,
            provider
                .revert_batch(&pairs)
                .instrument(trace::provider_span(&pairs[0].0, "revert")),
        )
        .await
        {
            Ok(results) => results,
            Err(_elapsed) => vec![Err(timed_out(timeout)); pairs.len()],
        };
        results.resize_with(pairs.len(), || Err(no_result()));
        record_call(context, &batch[0], Work::Revert, &results, started);
        let mut reverted = 0usize;
        for (i, result) in asked.into_iter().zip(results) {
            let claim = &batch[i];
            endings[i] = Some(match result {
                Ok(()) => {
                    reverted += 1;
                    debug!(action_id = %claim.lease.action_id, "reverted");
                    Ending::Close(Closing::Reverted {
                        from: claim.action.status,
                        detail: None,
                    })
                }
                Err(error) => ending_of_error(context, claim, Work::Revert, error),
            });
        }
        if reverted > 0 {
            info!(reverted, "reverted");
        }
    }
    endings.into_iter().flatten().collect()
}

/// The actions of `jobs` whose indicator, for a provider that keeps one
/// effect per indicator, another action still holds (their revert leaves it).
async fn held_elsewhere(
    context: &Context,
    provider: &Arc<dyn Provider>,
    jobs: &[Job],
) -> Result<HashSet<Uuid>, AppError> {
    let Some(first) = jobs.first() else {
        return Ok(HashSet::new());
    };
    if !provider.shares_indicators() {
        return Ok(HashSet::new());
    }
    let indicators: Vec<(Uuid, &Parameter)> = jobs
        .iter()
        .filter_map(|job| {
            let indicator = job.definition.indicator_parameter().name;
            let parameter = job.parameters.iter().find(|p| p.name == indicator)?;
            Some((job.action.id, parameter))
        })
        .collect();
    context
        .store
        .indicators_held_elsewhere(&first.action.vendor.provider, &indicators)
        .await
}

/// Whether the call ran (rather than being stopped by cancels of all its actions).
fn call_ran(stops: &[tokio_util::sync::CancellationToken]) -> bool {
    !stops.iter().all(|stop| stop.is_cancelled())
}

/// The ending of an action whose attempt failed with `error`: put back when
/// throttled, retried while attempts remain for a transient failure,
/// otherwise failed for good.
fn ending_of_error(context: &Context, claim: &Claim, work: Work, error: ProviderError) -> Ending {
    let options = &context.options;
    let attempts = claim.attempts.max(1) as u32;
    let action_id = claim.lease.action_id;
    match &error {
        ProviderError::Throttled { message, until } => {
            debug!(%action_id, message = %message, %until, "the provider asks to wait; due again then");
            return Ending::Throttled { until: *until };
        }
        ProviderError::Transient { retry_after, .. } if attempts < options.max_attempts => {
            let delay = retry_delay(
                attempts,
                options.retry_base_delay,
                options.retry_max_delay,
                *retry_after,
            );
            info!(%action_id, error = %error.info().message, ?delay, "attempt failed; retrying");
            return Ending::Retry {
                delay,
                error: error.info(),
            };
        }
        _ => {}
    }
    let mut info: ErrorInfo = error.info();
    if matches!(error, ProviderError::Transient { .. }) {
        metrics::attempts_exhausted(work_label(work));
        info.message = format!("gave up after {attempts} attempts: {}", info.message);
    }
    match work {
        Work::Execute => {
            warn!(%action_id, error = %info.message, "failed");
            Ending::Close(Closing::Failed { error: info })
        }
        Work::Revert => {
            info.message = format!("revert failed: {}", info.message);
            warn!(%action_id, error = %info.message, "revert failed; the action stays in effect");
            Ending::Close(Closing::RevertFailed {
                from: claim.action.status,
                error: info,
            })
        }
    }
}

/// Records every ending of the batch: the closings together, the put-backs
/// together, then the rarer retries and hand-overs. A write that fails for a
/// passing reason (it ran out of time behind other writers, no connection
/// was free) is tried again while the leases last, so an outcome the provider
/// gave is not thrown away and the work done a second time when they expire.
async fn record(
    context: &Context,
    batch: &[Claim],
    work: Work,
    endings: Vec<Ending>,
    started: Instant,
) -> Result<(), AppError> {
    let store = &context.store;
    let again = Again {
        until: started + context.options.lease.mul_f64(LEASE_SHARE_FOR_RECORDING),
    };
    let mut closings: Vec<(Lease, Closing)> = Vec::new();
    let mut retries: Vec<(Lease, Duration, ErrorInfo)> = Vec::new();
    // By the instant each is due again: one put-back for those due together.
    let mut throttled: HashMap<DateTime<Utc>, Vec<Lease>> = HashMap::new();
    let mut after: Vec<AfterWork> = Vec::new();
    for (claim, ending) in batch.iter().zip(endings) {
        let lease = claim.lease.clone();
        match ending {
            Ending::Close(closing) => closings.push((lease, closing)),
            Ending::Retry { delay, error } => retries.push((lease, delay, error)),
            Ending::Throttled { until } => throttled.entry(until).or_default().push(lease),
            Ending::HandOver { reference } => {
                after.push(
                    again
                        .run("a hand-over to a revert", || {
                            store.hand_over_to_revert(&lease, reference.as_deref())
                        })
                        .await?,
                );
            }
            Ending::Abandon(err) => {
                warn!(action_id = %lease.action_id, error = %err.for_log(), "the attempt cannot be recorded");
            }
        }
    }
    if !closings.is_empty() {
        after.extend(
            again
                .run("the closings", || store.close_attempts(&closings))
                .await?,
        );
    }
    for (until, leases) in throttled {
        metrics::provider_throttled(&batch[0].action.vendor.provider, leases.len());
        after.extend(
            again
                .run("the put-backs", || {
                    store.put_back(&leases, Some(work), until)
                })
                .await?,
        );
    }
    if !retries.is_empty() {
        after.extend(
            again
                .run("the retries", || store.record_retries(&retries, work))
                .await?,
        );
    }
    for outcome in after {
        match outcome {
            AfterWork::Recorded => {}
            AfterWork::CancelPending => {
                debug!("canceled during the attempt; the revert is due");
                context.handle.wake();
            }
            AfterWork::LostLease => {
                metrics::lease_lost();
                warn!("the lease was taken over; this attempt's result is discarded")
            }
        }
    }
    Ok(())
}

/// The part of a lease, from the start of its attempt, within which a failed
/// recording is tried again: the rest leaves the last try room to finish
/// before another executor may take the work over.
const LEASE_SHARE_FOR_RECORDING: f64 = 0.75;
/// The pause before the first new try of a recording; each further one doubles it.
const RECORDING_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between tries of a recording.
const RECORDING_PAUSE_MAX: Duration = Duration::from_secs(2);

/// Tries a recording again after a passing failure ([`AppError::Timeout`])
/// until `until`. Every recording is safe to repeat: each write is fenced by
/// its lease and guarded by the state it expects, a statement that failed
/// wrote nothing, and a closing already written by an earlier try is
/// recognised as such (see `Store::close_attempts`).
struct Again {
    until: Instant,
}

impl Again {
    async fn run<T, F, Fut>(&self, what: &'static str, mut write: F) -> Result<T, AppError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AppError>>,
    {
        let mut pause = RECORDING_PAUSE;
        loop {
            match write().await {
                Err(err @ AppError::Timeout(_)) if Instant::now() + pause < self.until => {
                    metrics::recording_retried();
                    warn!(error = %err.for_log(), pause = ?pause, "recording {what} failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RECORDING_PAUSE_MAX);
                }
                done => return done,
            }
        }
    }
}

/// The provider and the jobs of a batch, with the index of each job's claim,
/// for the claims without an ending yet; a claim that cannot become a job
/// gets its ending from `unusable`.
fn prepare_all<'a>(
    context: &'a Context,
    batch: &[Claim],
    endings: &mut [Option<Ending>],
    unusable: impl Fn(&Claim, ProviderError) -> Ending,
) -> (Option<&'a Arc<dyn Provider>>, Vec<Job>, Vec<usize>) {
    let mut provider = None;
    let mut jobs = Vec::with_capacity(batch.len());
    let mut indexes = Vec::with_capacity(batch.len());
    for (i, claim) in batch.iter().enumerate() {
        if endings[i].is_some() {
            continue;
        }
        match prepare(context, claim) {
            Ok((found, job)) => {
                provider = Some(found);
                jobs.push(job);
                indexes.push(i);
            }
            Err(error) => endings[i] = Some(unusable(claim, error)),
        }
    }
    (provider, jobs, indexes)
}

fn timed_out(timeout: Duration) -> ProviderError {
    ProviderError::transient(
        CODE_TIMEOUT,
        format!("the provider did not answer within {timeout:?}"),
    )
}

/// A batch call that returned fewer results than it was given jobs.
fn no_result() -> ProviderError {
    ProviderError::transient(
        CODE_PROVIDER_ERROR,
        "the provider returned no result for this action",
    )
}

/// Counts and times one provider call (a whole batch) and its items.
fn record_call<T>(
    context: &Context,
    claim: &Claim,
    work: Work,
    results: &[Result<T, ProviderError>],
    started: Instant,
) {
    let attempts = claim.attempts.max(1) as u32;
    let may_retry = attempts < context.options.max_attempts;
    let outcome_of = |result: &Result<T, ProviderError>| match result {
        Ok(_) => (CallOutcome::Ok, None),
        Err(error @ ProviderError::Throttled { .. }) => {
            (CallOutcome::Throttled, Some(error.info().code))
        }
        Err(error @ ProviderError::Transient { .. }) if may_retry => {
            (CallOutcome::Retry, Some(error.info().code))
        }
        Err(error) => (CallOutcome::Failed, Some(error.info().code)),
    };
    let provider = &claim.action.vendor.provider;
    let mut call = (CallOutcome::Ok, None);
    for result in results {
        let item = outcome_of(result);
        metrics::provider_call_item(provider, work_label(work), item.0);
        if matches!(call.0, CallOutcome::Ok) {
            call = item;
        }
    }
    metrics::provider_call(
        provider,
        work_label(work),
        call.0,
        call.1,
        started.elapsed(),
    );
}

fn work_label(work: Work) -> &'static str {
    match work {
        Work::Execute => "execute",
        Work::Revert => "revert",
    }
}

fn timeout_of(context: &Context, claim: &Claim) -> Duration {
    context
        .providers
        .timeout(&claim.action.vendor.provider)
        .unwrap_or(context.options.provider_timeout)
}

/// The provider and the job of a claim, or why there are none (which no
/// retry can mend).
fn prepare<'a>(
    context: &'a Context,
    claim: &Claim,
) -> Result<(&'a Arc<dyn Provider>, Job), ProviderError> {
    let action = &claim.action;
    let provider = context
        .providers
        .get(&action.vendor.provider)
        .ok_or_else(|| {
            ProviderError::permanent(
                CODE_PROVIDER_ERROR,
                format!(
                    "provider '{}' is no longer configured",
                    action.vendor.provider
                ),
            )
        })?;
    let broken = |what: &str| {
        ProviderError::permanent(
            CODE_PROVIDER_ERROR,
            format!("the stored action is unusable: {what}"),
        )
    };
    let definition = find_action(&action.name).ok_or_else(|| broken("unknown action name"))?;
    let indicator_name = definition.indicator_parameter().name;
    let value = claim
        .parameters
        .iter()
        .find(|p| p.name == indicator_name)
        .ok_or_else(|| broken("no indicator parameter"))?;
    let indicator = Indicator::parse(definition.indicator, &value.value)
        .map_err(|_| broken("malformed indicator"))?;
    let expires_at = claim
        .parameters
        .iter()
        .find(|p| {
            definition
                .parameter(&p.name)
                .is_some_and(|d| d.kind == ParameterKind::ExpirationDateTime)
        })
        .and_then(|p| DateTime::parse_from_rfc3339(&p.value).ok())
        .map(|t| t.with_timezone(&Utc));
    Ok((
        provider,
        Job {
            action: action.clone(),
            definition,
            indicator,
            expires_at,
            parameters: claim.parameters.clone(),
            attempt: claim.attempts,
        },
    ))
}
