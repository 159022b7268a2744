//! The gateway's metrics, in the Prometheus text format at `/metrics`.
//!
//! Instrumented code calls the functions here (one per thing that happens),
//! which record through the `metrics` facade into one process-wide Prometheus
//! recorder; every family is named and described here and nowhere else, and
//! the README lists them. Label values come from small, fixed sets (routes,
//! statuses, codes, configured providers, catalog actions, operation names up
//! to a cap): never a tenant, an action id or an indicator.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// How many distinct operation names get their own label value; later ones
/// are counted as `other`, so clients cannot grow the series without bound.
pub(crate) const MAX_OPERATION_NAMES: usize = 200;

/// Buckets of the latency histograms, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's recorder, installed on first use.
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .expect("non-empty buckets");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics stays empty");
        }
        describe();
        handle
    })
}

/// Installs the recorder (once per process), so counts start at start-up.
pub(crate) fn install() {
    handle();
}

/// Every family in the Prometheus text format.
pub(crate) fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    describe_counter!(
        "actiongate_http_requests_total",
        "HTTP requests by route template, method and status."
    );
    describe_histogram!(
        "actiongate_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route template and method."
    );
    describe_counter!(
        "actiongate_graphql_operations_total",
        "GraphQL operations run, by transport, type, name and outcome (ok or error)."
    );
    describe_histogram!(
        "actiongate_graphql_operation_duration_seconds",
        metrics::Unit::Seconds,
        "GraphQL operation latency by transport, type and name (subscriptions: until their first response)."
    );
    describe_counter!(
        "actiongate_graphql_errors_total",
        "GraphQL errors in responses, by extensions.code."
    );
    describe_counter!(
        "actiongate_operations_refused_total",
        "Operations refused before running, by code (RATE_LIMITED, QUERY_TOO_DEEP, ...)."
    );
    describe_counter!(
        "actiongate_actions_invoked_total",
        "Actions stored by invokeAction, by action name and provider."
    );
    describe_counter!(
        "actiongate_action_transitions_total",
        "Status changes, by the status entered."
    );
    describe_counter!(
        "actiongate_provider_calls_total",
        "Provider calls, by provider, work (execute or revert), outcome (ok, retry, failed) and status (ok, or the error code: the HTTP status, 408 timeout, 502 unreachable)."
    );
    describe_counter!(
        "actiongate_provider_call_items_total",
        "Actions carried by provider calls (a batch carries many), by provider, work and the outcome of each."
    );
    describe_counter!(
        "actiongate_provider_throttled_total",
        "Work a provider (or its budget) deferred with \"not now\", by provider: put back due later without counting an attempt."
    );
    describe_histogram!(
        "actiongate_provider_call_duration_seconds",
        metrics::Unit::Seconds,
        "Provider call latency by provider and work."
    );
    describe_gauge!(
        "actiongate_provider_budget_calls_left",
        "Calls left in a rate-limited provider's shared budget (Defender), by provider and window (minute, hour), as this process last took from it."
    );
    describe_counter!(
        "actiongate_provider_budget_waits_total",
        "Calls to a rate-limited provider (Defender) held back to wait, by provider and cause (budget: the shared budget was spent, no call made; 429: the provider answered 429)."
    );
    describe_counter!(
        "actiongate_executor_claims_total",
        "Due actions claimed by this process's executor."
    );
    describe_counter!(
        "actiongate_executor_lease_takeovers_total",
        "Claims of work whose lease had expired (its process died or stalled): taken over by this process."
    );
    describe_gauge!(
        "actiongate_executor_in_flight",
        "Provider calls (batches of actions) running in this process."
    );
    describe_counter!(
        "actiongate_executor_leases_lost_total",
        "Attempts that found their lease taken over by another claim when they ended (their result is discarded)."
    );
    describe_counter!(
        "actiongate_executor_recording_retries_total",
        "Recordings of how attempts ended that failed for a passing reason (a database timeout) and were tried again within the lease."
    );
    describe_counter!(
        "actiongate_executor_attempts_exhausted_total",
        "Work given up after --max-attempts transient failures, by work."
    );
    describe_gauge!("actiongate_ws_connections", "Open WebSocket connections.");
    describe_gauge!(
        "actiongate_subscriptions_active",
        "Subscriptions running over WebSocket."
    );
    describe_counter!(
        "actiongate_events_fanned_out_total",
        "Status events delivered to subscribers."
    );
    describe_counter!(
        "actiongate_subscription_catch_ups_total",
        "Times a subscriber that fell behind the in-memory buffer was caught up from the database."
    );
    describe_counter!(
        "actiongate_subscriptions_too_slow_total",
        "Subscriptions ended with SUBSCRIBER_TOO_SLOW."
    );
    describe_counter!(
        "actiongate_listener_reconnects_total",
        "Times the PostgreSQL LISTEN connection was opened again after it dropped."
    );
    describe_gauge!(
        "actiongate_db_pool_connections",
        "Database pool connections by state (in_use, idle), at scrape time."
    );
    describe_gauge!(
        "actiongate_db_pool_max_connections",
        "The database pool's size limit (--db-max-connections)."
    );
    describe_histogram!(
        "actiongate_db_acquire_duration_seconds",
        metrics::Unit::Seconds,
        "Time spent waiting for a database connection (the pool's waiting), per transaction begun."
    );
    describe_counter!(
        "actiongate_db_queries_total",
        "Database statements executed."
    );
    describe_counter!(
        "actiongate_live_count_reads_total",
        "Reads of counts by live-count watchers (actionCountsChanged)."
    );
    // Families without labels (or with a fixed few) are shown from the start,
    // at zero, so a dashboard or an alert can tell "none yet" from "missing".
    for family in [
        "actiongate_executor_claims_total",
        "actiongate_executor_lease_takeovers_total",
        "actiongate_executor_leases_lost_total",
        "actiongate_executor_recording_retries_total",
        "actiongate_events_fanned_out_total",
        "actiongate_subscription_catch_ups_total",
        "actiongate_subscriptions_too_slow_total",
        "actiongate_listener_reconnects_total",
        "actiongate_db_queries_total",
        "actiongate_live_count_reads_total",
    ] {
        counter!(family).increment(0);
    }
    for work in ["execute", "revert"] {
        counter!("actiongate_executor_attempts_exhausted_total", "work" => work).increment(0);
    }
    for family in [
        "actiongate_executor_in_flight",
        "actiongate_ws_connections",
        "actiongate_subscriptions_active",
    ] {
        gauge!(family).increment(0.0);
    }
}

/// One HTTP request answered.
pub(crate) fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    counter!("actiongate_http_requests_total",
        "route" => route.to_owned(), "method" => method.to_owned(), "status" => status.to_string())
    .increment(1);
    histogram!("actiongate_http_request_duration_seconds",
        "route" => route.to_owned(), "method" => method.to_owned())
    .record(elapsed.as_secs_f64());
}

/// One GraphQL operation run to its (first) response; `error_codes` are the
/// codes of the errors it answered with.
pub(crate) fn graphql_operation(
    transport: &'static str,
    kind: &'static str,
    name: Option<&str>,
    error_codes: &[&str],
    elapsed: Duration,
) {
    let name = bounded_operation_name(name);
    let outcome = if error_codes.is_empty() {
        "ok"
    } else {
        "error"
    };
    counter!("actiongate_graphql_operations_total",
        "transport" => transport, "type" => kind, "name" => name.clone(), "outcome" => outcome)
    .increment(1);
    histogram!("actiongate_graphql_operation_duration_seconds",
        "transport" => transport, "type" => kind, "name" => name)
    .record(elapsed.as_secs_f64());
    for code in error_codes {
        graphql_error(code);
    }
}

/// One error in a GraphQL response (or refusal), by its code.
pub(crate) fn graphql_error(code: &str) {
    counter!("actiongate_graphql_errors_total", "code" => code.to_owned()).increment(1);
}

/// An operation refused before it ran (rate limits, document limits, ...).
pub(crate) fn operation_refused(code: &'static str) {
    counter!("actiongate_operations_refused_total", "code" => code).increment(1);
    graphql_error(code);
}

/// A new action stored.
pub(crate) fn action_invoked(action: &str, provider: &str) {
    counter!("actiongate_actions_invoked_total",
        "action" => action.to_owned(), "provider" => provider.to_owned())
    .increment(1);
}

/// A status entered (counted by the replica that wrote it).
pub(crate) fn action_transition(status: &'static str) {
    action_transitions(status, 1);
}

/// `count` actions entered `status`.
pub(crate) fn action_transitions(status: &'static str, count: usize) {
    counter!("actiongate_action_transitions_total", "status" => status).increment(count as u64);
}

/// How a provider call ended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CallOutcome {
    Ok,
    /// A transient failure that will be tried again.
    Retry,
    /// A failure for good.
    Failed,
    /// Deferred by the provider or its budget: tried again without counting.
    Throttled,
}

impl CallOutcome {
    fn label(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Retry => "retry",
            CallOutcome::Failed => "failed",
            CallOutcome::Throttled => "throttled",
        }
    }
}

/// One provider call (a batch is one call); `code` is the error code of its
/// first failed action (`None`: every action succeeded).
pub(crate) fn provider_call(
    provider: &str,
    work: &'static str,
    outcome: CallOutcome,
    code: Option<i32>,
    elapsed: Duration,
) {
    let outcome = outcome.label();
    let status = code.map_or_else(|| "ok".to_owned(), |c| c.to_string());
    counter!("actiongate_provider_calls_total",
        "provider" => provider.to_owned(), "work" => work, "outcome" => outcome, "status" => status)
    .increment(1);
    histogram!("actiongate_provider_call_duration_seconds",
        "provider" => provider.to_owned(), "work" => work)
    .record(elapsed.as_secs_f64());
}

/// One action carried by a provider call, and how it fared.
pub(crate) fn provider_call_item(provider: &str, work: &'static str, outcome: CallOutcome) {
    counter!("actiongate_provider_call_items_total",
        "provider" => provider.to_owned(), "work" => work, "outcome" => outcome.label())
    .increment(1);
}

/// `provider` deferred `count` pieces of work ("not now").
pub(crate) fn provider_throttled(provider: &str, count: usize) {
    counter!("actiongate_provider_throttled_total", "provider" => provider.to_owned())
        .increment(count as u64);
}

/// What is left of `provider`'s call budget after this process took from it.
pub(crate) fn provider_budget_left(provider: &str, minute: u32, hour: u32) {
    gauge!("actiongate_provider_budget_calls_left",
        "provider" => provider.to_owned(), "window" => "minute")
    .set(f64::from(minute));
    gauge!("actiongate_provider_budget_calls_left",
        "provider" => provider.to_owned(), "window" => "hour")
    .set(f64::from(hour));
}

/// A call to `provider` held back: its budget was spent (`budget`) or it
/// answered 429 (`429`).
pub(crate) fn provider_budget_wait(provider: &str, cause: &'static str) {
    counter!("actiongate_provider_budget_waits_total",
        "provider" => provider.to_owned(), "cause" => cause)
    .increment(1);
}

/// Due actions claimed, `taken_over` of them from an expired lease.
pub(crate) fn claimed(count: usize, taken_over: usize) {
    counter!("actiongate_executor_claims_total").increment(count as u64);
    counter!("actiongate_executor_lease_takeovers_total").increment(taken_over as u64);
}

/// Attempts running in this process now.
pub(crate) fn in_flight(count: usize) {
    gauge!("actiongate_executor_in_flight").set(count as f64);
}

/// An attempt found its lease taken over.
pub(crate) fn lease_lost() {
    counter!("actiongate_executor_leases_lost_total").increment(1);
}

/// A recording of how attempts ended failed for a passing reason and is
/// tried again.
pub(crate) fn recording_retried() {
    counter!("actiongate_executor_recording_retries_total").increment(1);
}

/// Work given up after its last attempt.
pub(crate) fn attempts_exhausted(work: &'static str) {
    counter!("actiongate_executor_attempts_exhausted_total", "work" => work).increment(1);
}

/// A WebSocket connection opened (`+1`) or closed (`-1`).
pub(crate) fn ws_connections(change: f64) {
    gauge!("actiongate_ws_connections").increment(change);
}

/// A subscription started (`+1`) or ended (`-1`).
pub(crate) fn subscriptions(change: f64) {
    gauge!("actiongate_subscriptions_active").increment(change);
}

/// Events delivered to one subscriber.
pub(crate) fn events_delivered(count: usize) {
    counter!("actiongate_events_fanned_out_total").increment(count as u64);
}

/// A subscriber caught up from the database.
pub(crate) fn caught_up_from_database() {
    counter!("actiongate_subscription_catch_ups_total").increment(1);
}

/// A subscription ended with `SUBSCRIBER_TOO_SLOW`.
pub(crate) fn subscriber_too_slow() {
    counter!("actiongate_subscriptions_too_slow_total").increment(1);
}

/// The `LISTEN` connection opened again.
pub(crate) fn listener_reconnected() {
    counter!("actiongate_listener_reconnects_total").increment(1);
}

/// The pool as it stands, set at scrape time.
pub(crate) fn db_pool(in_use: u32, idle: u32, max: u32) {
    gauge!("actiongate_db_pool_connections", "state" => "in_use").set(f64::from(in_use));
    gauge!("actiongate_db_pool_connections", "state" => "idle").set(f64::from(idle));
    gauge!("actiongate_db_pool_max_connections").set(f64::from(max));
}

/// Time a transaction waited for its connection.
pub(crate) fn db_acquired(waited: Duration) {
    histogram!("actiongate_db_acquire_duration_seconds").record(waited.as_secs_f64());
}

/// A live-count watcher read its counts.
pub(crate) fn live_count_read() {
    counter!("actiongate_live_count_reads_total").increment(1);
}

/// One database statement executed.
pub(crate) fn db_query() {
    counter!("actiongate_db_queries_total").increment(1);
}

/// `name` as a label value: `anonymous` when absent, `other` past the cap
/// or when it is not a GraphQL name.
fn bounded_operation_name(name: Option<&str>) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Some(name) = name else {
        return "anonymous".to_owned();
    };
    let is_graphql_name = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !is_graphql_name {
        return "other".to_owned();
    }
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if seen.contains(name) {
        return name.to_owned();
    }
    if seen.len() < MAX_OPERATION_NAMES {
        seen.insert(name.to_owned());
        return name.to_owned();
    }
    "other".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded() {
        assert_eq!(bounded_operation_name(None), "anonymous");
        assert_eq!(bounded_operation_name(Some("not a name")), "other");
        assert_eq!(bounded_operation_name(Some("ListActions")), "ListActions");
        for i in 0..MAX_OPERATION_NAMES {
            bounded_operation_name(Some(&format!("Op{i}")));
        }
        assert_eq!(bounded_operation_name(Some("OneTooMany")), "other");
        assert_eq!(bounded_operation_name(Some("ListActions")), "ListActions");
    }
}
