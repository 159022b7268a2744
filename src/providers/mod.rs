//! Providers: what carries an action out (a blocklist file, a webhook,
//! Microsoft Defender for Endpoint) and lifts it again on cancel.
//!
//! Every provider is idempotent: executing the same action twice has the effect
//! of executing it once, and reverting what is not there succeeds. That is what
//! lets the executor retry and re-run an action whose lease expired.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::{BoxFuture, join_all};

use crate::domain::action::{Action, ErrorInfo, Parameter};
use crate::domain::catalog::ActionDefinition;
use crate::domain::indicator::Indicator;
use crate::domain::time;
use crate::store::Store;

pub(crate) mod blocklist;
pub(crate) mod config;
pub(crate) mod defender;
mod http;
pub(crate) mod webhook;

use config::{ProviderSpec, ProvidersFile};

/// What a provider is asked to execute or revert.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub action: Action,
    pub definition: &'static ActionDefinition,
    pub indicator: Indicator,
    pub expires_at: Option<DateTime<Utc>>,
    pub parameters: Vec<Parameter>,
    /// 1 for the first attempt at the current work.
    pub attempt: i32,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProviderError {
    /// May pass: retry later (no sooner than `retry_after`, when given).
    Transient {
        code: i32,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Will not pass: do not retry.
    Permanent {
        code: i32,
        message: String,
        subcode: Option<i32>,
    },
    /// Not now: the provider (or the budget that paces calls to it) asks to
    /// come back at `until`. A pacing wait, not a failure: the work is put
    /// back due then without counting an attempt or touching `errorInfo`. An
    /// instant rather than a wait, so that work turned away for the same
    /// reason comes back due at the same instant, and together.
    Throttled {
        message: String,
        until: DateTime<Utc>,
    },
}

/// `ResultInfo.code` of a call that timed out.
pub(crate) const CODE_TIMEOUT: i32 = 408;
/// `ResultInfo.code` of a provider that could not be reached.
pub(crate) const CODE_UNREACHABLE: i32 = 502;
/// `ResultInfo.code` of a failure inside the provider itself.
pub(crate) const CODE_PROVIDER_ERROR: i32 = 500;
/// `ResultInfo.code` of a call the provider (or its budget) deferred.
pub(crate) const CODE_THROTTLED: i32 = 429;

impl ProviderError {
    pub(crate) fn transient(code: i32, message: impl Into<String>) -> ProviderError {
        ProviderError::Transient {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn permanent(code: i32, message: impl Into<String>) -> ProviderError {
        ProviderError::Permanent {
            code,
            message: message.into(),
            subcode: None,
        }
    }

    /// Throttled for `wait` from now.
    pub(crate) fn throttled(message: impl Into<String>, wait: Duration) -> ProviderError {
        ProviderError::throttled_until(message, time::now() + wait)
    }

    /// Throttled until `until`.
    pub(crate) fn throttled_until(
        message: impl Into<String>,
        until: DateTime<Utc>,
    ) -> ProviderError {
        ProviderError::Throttled {
            message: message.into(),
            until,
        }
    }

    /// As Graph's `resultInfo`.
    pub(crate) fn info(&self) -> ErrorInfo {
        match self {
            ProviderError::Throttled { message, .. } => ErrorInfo {
                code: CODE_THROTTLED,
                message: message.clone(),
                subcode: None,
            },
            ProviderError::Transient { code, message, .. } => ErrorInfo {
                code: *code,
                message: message.clone(),
                subcode: None,
            },
            ProviderError::Permanent {
                code,
                message,
                subcode,
            } => ErrorInfo {
                code: *code,
                message: message.clone(),
                subcode: *subcode,
            },
        }
    }
}

/// What a provider keeps of an applied action, to revert it: stored with the
/// action as `provider_reference`.
pub(crate) type Reference = Option<String>;

/// A provider of the catalog's actions.
///
/// The executor hands a provider the due jobs of one tenant together, at most
/// [`Provider::batch_limit`] at a time, through [`Provider::execute_batch`] and
/// [`Provider::revert_batch`]; a provider whose API takes many indicators per
/// call overrides those, the others get one `execute` / `revert` per job.
pub(crate) trait Provider: Send + Sync {
    /// Applies the action. Returns what `revert` will need.
    fn execute<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<Reference, ProviderError>>;

    /// How many jobs one call may carry; 1 means one call per job.
    fn batch_limit(&self) -> usize {
        1
    }

    /// Applies several jobs of ONE tenant in one call: one result per job, in
    /// order. Default: `execute` for each, concurrently.
    fn execute_batch<'a>(
        &'a self,
        jobs: &'a [Job],
    ) -> BoxFuture<'a, Vec<Result<Reference, ProviderError>>> {
        Box::pin(join_all(jobs.iter().map(|job| self.execute(job))))
    }

    /// Lifts several jobs of ONE tenant: `jobs[i].1` is what `execute`
    /// returned for `jobs[i].0` (`None` if unknown). One result per job, in
    /// order. Default: `revert` for each, concurrently.
    fn revert_batch<'a>(
        &'a self,
        jobs: &'a [(Job, Option<String>)],
    ) -> BoxFuture<'a, Vec<Result<(), ProviderError>>> {
        Box::pin(join_all(
            jobs.iter()
                .map(|(job, reference)| self.revert(job, reference.as_deref())),
        ))
    }

    /// Lifts the effect of the action. `reference` is what `execute` returned,
    /// or `None` when the attempt that applied it did not get to say (it was
    /// stopped, or its process died): the provider then finds the effect by the
    /// action itself.
    fn revert<'a>(
        &'a self,
        job: &'a Job,
        reference: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Whether the provider keeps one effect per indicator for all its users
    /// (Defender keeps one indicator per value): then a revert is skipped
    /// while another action still holds the same indicator.
    fn shares_indicators(&self) -> bool {
        false
    }

    /// Periodic housekeeping (a blocklist drops expired entries).
    fn maintain(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Every configured provider, by name.
#[derive(Clone, Default)]
pub(crate) struct Providers {
    by_name: HashMap<String, Arc<dyn Provider>>,
    /// The timeout of a provider call, per provider.
    timeouts: HashMap<String, Duration>,
}

impl Providers {
    /// Builds the providers of the configuration; `default_timeout` applies
    /// where a provider sets none; `store` keeps what providers share across replicas (Defender's budget).
    pub(crate) fn from_config(
        file: &ProvidersFile,
        default_timeout: Duration,
        store: &Store,
    ) -> Result<Providers, String> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("actiongate/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let mut providers = Providers::default();
        for config in &file.providers {
            let name = config.entry.name.clone();
            let (provider, timeout): (Arc<dyn Provider>, Option<Duration>) = match &config.spec {
                ProviderSpec::Blocklist { directory } => {
                    (Arc::new(blocklist::Blocklist::new(directory.clone())), None)
                }
                ProviderSpec::Webhook {
                    url,
                    secret,
                    timeout,
                } => (
                    Arc::new(webhook::Webhook::new(
                        client.clone(),
                        url.clone(),
                        secret.clone(),
                    )),
                    *timeout,
                ),
                ProviderSpec::Defender(settings) => (
                    Arc::new(defender::Defender::new(
                        name.clone(),
                        client.clone(),
                        settings.clone(),
                        store.clone(),
                    )),
                    settings.timeout,
                ),
            };
            providers
                .timeouts
                .insert(name.clone(), timeout.unwrap_or(default_timeout));
            providers.by_name.insert(name, provider);
        }
        Ok(providers)
    }

    /// The provider named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    /// How long a call to `name` may take.
    pub(crate) fn timeout(&self, name: &str) -> Option<Duration> {
        self.timeouts.get(name).copied()
    }

    /// The largest batch any provider takes.
    pub(crate) fn largest_batch(&self) -> usize {
        self.by_name
            .values()
            .map(|provider| provider.batch_limit())
            .max()
            .unwrap_or(1)
    }

    /// The longest call timeout of any provider.
    pub(crate) fn longest_timeout(&self) -> Duration {
        self.timeouts.values().copied().max().unwrap_or_default()
    }

    /// Runs every provider's housekeeping.
    pub(crate) async fn maintain(&self) {
        for provider in self.by_name.values() {
            provider.maintain().await;
        }
    }
}
