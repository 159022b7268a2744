//! One attempt at one claimed action: call the provider, then record the
//! outcome with the claim's fence.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{Instrument, debug, info, info_span, warn};

use super::Context;
use super::backoff::retry_delay;
use crate::domain::action::ErrorInfo;
use crate::domain::catalog::{ParameterKind, find_action};
use crate::domain::indicator::Indicator;
use crate::domain::status::ActionStatus;
use crate::error::AppError;
use crate::providers::{CODE_PROVIDER_ERROR, CODE_TIMEOUT, Job, Provider, ProviderError};
use crate::store::{AfterWork, Claim, Work};
use crate::telemetry::metrics::{self, CallOutcome};
use crate::telemetry::trace;

/// Runs the claimed work and records how it ended.
pub(super) async fn run(context: Arc<Context>, claim: Claim) {
    let span = info_span!(
        "attempt",
        action_id = %claim.lease.action_id,
        tenant = %claim.lease.tenant_id,
        work = ?claim.work,
        attempt = claim.attempts,
    );
    trace::traced(span, trace::invoking_context(&claim.action), async move {
        let outcome = match claim.work {
            Work::Execute => execute(&context, &claim).await,
            Work::Revert => revert(&context, &claim).await,
        };
        match outcome {
            Ok(AfterWork::Recorded) => {}
            Ok(AfterWork::CancelPending) => {
                debug!("canceled during the attempt; the revert is due");
                context.handle.wake();
            }
            Ok(AfterWork::LostLease) => {
                metrics::lease_lost();
                warn!("the lease was taken over; this attempt's result is discarded")
            }
            Err(err) => {
                // The lease will expire and the work be claimed again.
                warn!(error = %err.for_log(), "recording the attempt failed");
            }
        }
    })
    .await
}

async fn execute(context: &Context, claim: &Claim) -> Result<AfterWork, AppError> {
    let store = &context.store;
    let lease = &claim.lease;
    let (provider, job) = match prepare(context, claim) {
        Ok(ready) => ready,
        Err(error) => return store.record_failed(lease, &error.info()).await,
    };
    let stop = context.handle.register(lease.action_id, lease.token);
    let timeout = timeout_of(context, claim);
    let started = Instant::now();
    let result = tokio::select! {
        result = tokio::time::timeout(timeout, provider.execute(&job).instrument(trace::provider_span(&job, "execute"))) => Some(result),
        _ = stop.cancelled() => None,
    };
    if let Some(result) = &result {
        record_call(
            context,
            claim,
            Work::Execute,
            result.as_ref().map(|r| r.as_ref().map(|_| ())),
            started,
        );
    }
    context.handle.unregister(lease.action_id, lease.token);
    match result {
        None => {
            info!("canceled while running: the attempt was stopped");
            store.hand_over_to_revert(lease, None).await
        }
        Some(Ok(Ok(reference))) => {
            info!("applied");
            store.record_applied(lease, reference.as_deref()).await
        }
        Some(Ok(Err(error))) => failed(context, claim, Work::Execute, error).await,
        Some(Err(_elapsed)) => {
            let error = ProviderError::transient(
                CODE_TIMEOUT,
                format!("the provider did not answer within {timeout:?}"),
            );
            failed(context, claim, Work::Execute, error).await
        }
    }
}

async fn revert(context: &Context, claim: &Claim) -> Result<AfterWork, AppError> {
    let store = &context.store;
    let lease = &claim.lease;
    let from = claim.action.status;
    if !matches!(from, ActionStatus::Running | ActionStatus::Completed) {
        return Err(AppError::internal(format!(
            "a revert was queued for an action that is {from}"
        )));
    }
    let (provider, job) = match prepare(context, claim) {
        Ok(ready) => ready,
        Err(error) => return failed(context, claim, Work::Revert, error).await,
    };
    if provider.shares_indicators() {
        let indicator = job.definition.indicator_parameter().name;
        let held = job.parameters.iter().find(|p| p.name == indicator);
        if let Some(parameter) = held
            && store
                .indicator_held_elsewhere(&job.action.vendor.provider, parameter, job.action.id)
                .await?
        {
            info!("another action holds the same indicator: it stays");
            let detail = "the indicator stays in effect: other actions still hold it".to_owned();
            return store.record_reverted(lease, from, Some(detail)).await;
        }
    }
    let timeout = timeout_of(context, claim);
    let started = Instant::now();
    let result = tokio::time::timeout(
        timeout,
        provider
            .revert(&job, claim.provider_reference.as_deref())
            .instrument(trace::provider_span(&job, "revert")),
    )
    .await;
    record_call(
        context,
        claim,
        Work::Revert,
        result.as_ref().map(|r| r.as_ref().map(|_| ())),
        started,
    );
    match result {
        Ok(Ok(())) => {
            info!("reverted");
            store.record_reverted(lease, from, None).await
        }
        Ok(Err(error)) => failed(context, claim, Work::Revert, error).await,
        Err(_elapsed) => {
            let error = ProviderError::transient(
                CODE_TIMEOUT,
                format!("the provider did not answer within {timeout:?}"),
            );
            failed(context, claim, Work::Revert, error).await
        }
    }
}

/// Retries a transient failure while attempts remain; otherwise records the
/// failure for good.
async fn failed(
    context: &Context,
    claim: &Claim,
    work: Work,
    error: ProviderError,
) -> Result<AfterWork, AppError> {
    let options = &context.options;
    let attempts = claim.attempts.max(1) as u32;
    let store = &context.store;
    if let ProviderError::Throttled {
        message,
        retry_after,
    } = &error
    {
        metrics::provider_throttled(&claim.action.vendor.provider);
        debug!(message = %message, wait = ?retry_after, "the provider asks to wait; due again then");
        return store.record_throttled(&claim.lease, work, *retry_after).await;
    }
    if let ProviderError::Transient { retry_after, .. } = &error
        && attempts < options.max_attempts
    {
        let delay = retry_delay(
            attempts,
            options.retry_base_delay,
            options.retry_max_delay,
            *retry_after,
        );
        info!(error = %error.info().message, ?delay, "attempt failed; retrying");
        return store
            .record_retry(&claim.lease, work, delay, &error.info())
            .await;
    }
    let mut info: ErrorInfo = error.info();
    if matches!(error, ProviderError::Transient { .. }) {
        metrics::attempts_exhausted(work_label(work));
        info.message = format!("gave up after {attempts} attempts: {}", info.message);
    }
    match work {
        Work::Execute => {
            warn!(error = %info.message, "failed");
            store.record_failed(&claim.lease, &info).await
        }
        Work::Revert => {
            info.message = format!("revert failed: {}", info.message);
            warn!(error = %info.message, "revert failed; the action stays in effect");
            store
                .record_revert_failed(&claim.lease, claim.action.status, &info)
                .await
        }
    }
}

/// Counts and times one provider call: `result` is `Err` when it timed out.
fn record_call<E>(
    context: &Context,
    claim: &Claim,
    work: Work,
    result: Result<Result<(), &ProviderError>, &E>,
    started: Instant,
) {
    let attempts = claim.attempts.max(1) as u32;
    let may_retry = attempts < context.options.max_attempts;
    let (outcome, code) = match result {
        Ok(Ok(())) => (CallOutcome::Ok, None),
        Ok(Err(error @ ProviderError::Throttled { .. })) => {
            (CallOutcome::Throttled, Some(error.info().code))
        }
        Ok(Err(error @ ProviderError::Transient { .. })) if may_retry => {
            (CallOutcome::Retry, Some(error.info().code))
        }
        Ok(Err(error)) => (CallOutcome::Failed, Some(error.info().code)),
        Err(_elapsed) if may_retry => (CallOutcome::Retry, Some(CODE_TIMEOUT)),
        Err(_elapsed) => (CallOutcome::Failed, Some(CODE_TIMEOUT)),
    };
    metrics::provider_call(
        &claim.action.vendor.provider,
        work_label(work),
        outcome,
        code,
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
