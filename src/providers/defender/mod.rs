//! The `defender` provider: Microsoft Defender for Endpoint's indicator API,
//! within the limits Microsoft documents for it.
//!
//! Indicators go in batches of up to [`IMPORT_BATCH`] through
//! `POST {api}/api/indicators/import`, whose answer has one result per
//! indicator: a failed one fails its action alone. Submitting the same value
//! and type again updates the indicator, so a retried batch does not
//! duplicate it. Reverts go in batches of up to [`IMPORT_BATCH`] ids through
//! `POST {api}/api/indicators/BatchDelete` (documented with the same limits as
//! import), one call instead of one `DELETE` per indicator; as that endpoint
//! answers 404 for the whole batch when any id is already gone, such a batch
//! is finished one `DELETE` at a time, where 404 means done.
//!
//! Every call is paced by the provider's budget, shared by the replicas
//! (`api`), and a batch that would take the tenant past its cap of active
//! indicators fails at once, before any call, for the actions past the cap.
//! Both base URLs are settings, so tests run the provider against a local
//! server.

use std::collections::HashMap;
use std::time::Duration;

use chrono::SecondsFormat;
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::config::DefenderSettings;
use super::http::status_error;
use super::{CODE_PROVIDER_ERROR, Job, Provider, ProviderError, Reference};
use crate::domain::catalog::Verdict;
use crate::domain::indicator::{HashAlgorithm, Indicator};
use crate::store::{BudgetLimits, CallKind, Store};

mod api;

use api::Api;

/// Most indicators one import (or batch delete) carries, as documented.
pub(crate) const IMPORT_BATCH: usize = 500;
/// Most active indicators a Defender tenant holds, as documented.
pub(crate) const MAX_ACTIVE_INDICATORS: u64 = 15_000;
/// The documented limits: 100 calls a minute and 1,500 an hour to the API,
/// 30 a minute to import (and to batch delete).
pub(crate) const DOCUMENTED_BUDGET: BudgetLimits = BudgetLimits {
    calls_per_minute: 100,
    calls_per_hour: 1_500,
    batch_calls_per_minute: 30,
    minute: Duration::from_secs(60),
    hour: Duration::from_secs(3_600),
};
/// `errorInfo.code` of an action refused because the tenant holds as many
/// indicators as Defender allows (as HTTP's 507, Insufficient Storage).
pub(crate) const CODE_INDICATOR_CAP: i32 = 507;

/// The Defender provider.
pub(crate) struct Defender {
    api: Api,
}

impl Defender {
    /// The provider named `name`, whose budget and cap are kept in `store`.
    pub(crate) fn new(
        name: String,
        client: reqwest::Client,
        settings: DefenderSettings,
        store: Store,
    ) -> Defender {
        Defender {
            api: Api::new(name, client, settings, store),
        }
    }

    /// How many of `jobs` (already `Running`, so counted) fit under the cap:
    /// the first ones do, the rest would take the tenant past it.
    async fn fitting(&self, jobs: usize) -> Result<usize, ProviderError> {
        let live = self
            .api
            .store
            .count_live_on_provider(&self.api.name)
            .await
            .map_err(|err| {
                tracing::warn!(error = %err.for_log(), "counting active Defender indicators");
                ProviderError::transient(
                    CODE_PROVIDER_ERROR,
                    "the gateway could not count the active Defender indicators",
                )
            })?;
        let cap = self.api.settings.max_active_indicators;
        let over = usize::try_from(live.saturating_sub(cap)).unwrap_or(usize::MAX);
        Ok(jobs.saturating_sub(over))
    }

    fn over_cap(&self) -> ProviderError {
        let cap = self.api.settings.max_active_indicators;
        ProviderError::permanent(
            CODE_INDICATOR_CAP,
            format!(
                "Defender holds at most {cap} active indicators per tenant, and this one would \
                 exceed that: {cap} are active or being applied. Cancel actions no longer needed, \
                 or let them expire, then invoke it again"
            ),
        )
    }

    /// One import call for `jobs`; one result per job, in order.
    async fn import(&self, jobs: &[Job]) -> Vec<Result<Reference, ProviderError>> {
        // Defender keeps one indicator per value and type: each goes once.
        let mut bodies: Vec<Value> = Vec::new();
        let mut sent: HashMap<(String, &'static str), usize> = HashMap::new();
        let mut position = Vec::with_capacity(jobs.len());
        for job in jobs {
            let key = (job.indicator.to_string(), indicator_type(&job.indicator));
            let at = *sent.entry(key).or_insert_with(|| {
                bodies.push(self.indicator_body(job));
                bodies.len() - 1
            });
            position.push(at);
        }
        let sent_count = bodies.len();
        let url = format!("{}/import", self.api.indicators_url());
        let body = json!({ "Indicators": bodies });
        let response = self
            .api
            .send(CallKind::Batch, |token| {
                self.api.client.post(&url).bearer_auth(token).json(&body)
            })
            .await;
        let response = match response {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                let error = status_error("the Defender API", response).await;
                return vec![Err(error); jobs.len()];
            }
            Err(error) => return vec![Err(error); jobs.len()],
        };
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let items: &[Value] = answer["value"].as_array().map_or(&[], Vec::as_slice);
        let mut by_value: HashMap<String, &Value> = HashMap::new();
        for item in items {
            if let Some(value) = item["indicator"].as_str() {
                by_value.insert(value.to_ascii_lowercase(), item);
            }
        }
        jobs.iter()
            .zip(position)
            .map(|(job, at)| {
                let value = job.indicator.to_string();
                // By value; by position when Defender wrote the value its own
                // way but answered one item per indicator sent.
                let item = by_value
                    .get(&value.to_ascii_lowercase())
                    .copied()
                    .or_else(|| (items.len() == sent_count).then(|| &items[at]));
                match item {
                    Some(item) => item_result(item),
                    None => Err(ProviderError::transient(
                        CODE_PROVIDER_ERROR,
                        format!("the Defender import answered nothing for {value}"),
                    )),
                }
            })
            .collect()
    }

    /// The indicator entity Defender is sent for `job`.
    fn indicator_body(&self, job: &Job) -> Value {
        let action = &job.action;
        let reason = action.action_reason.as_deref().unwrap_or("No reason given");
        json!({
            "indicatorValue": job.indicator.to_string(),
            "indicatorType": indicator_type(&job.indicator),
            "action": match job.definition.verdict { Verdict::Block => "Block", Verdict::Allow => "Allowed" },
            "title": format!("actiongate: {} {}", action.name, job.indicator),
            "description": format!("{reason} (by {} via app {}; actiongate action {})", action.user, action.app_id, action.id),
            "expirationTime": job.expires_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            "severity": self.api.settings.severity,
            "application": "actiongate",
        })
    }

    /// Deletes the indicators `ids` in one batch delete; one result per id.
    /// When the batch says some were already gone it is finished one
    /// `DELETE` at a time, each id keeping its own result, so a throttle
    /// midway loses none of the progress made (the ids done are not asked
    /// again, and a next round goes further).
    async fn delete_all(&self, ids: &[String]) -> Vec<Result<(), ProviderError>> {
        let url = format!("{}/BatchDelete", self.api.indicators_url());
        let body = json!({ "IndicatorIds": ids });
        let response = self
            .api
            .send(CallKind::Batch, |token| {
                self.api.client.post(&url).bearer_auth(token).json(&body)
            })
            .await;
        let response = match response {
            Ok(response) if response.status().is_success() => return vec![Ok(()); ids.len()],
            Ok(response) if response.status() == StatusCode::NOT_FOUND => response,
            Ok(response) => {
                let error = status_error("the Defender API", response).await;
                return vec![Err(error); ids.len()];
            }
            Err(error) => return vec![Err(error); ids.len()],
        };
        drop(response);
        let mut results = Vec::with_capacity(ids.len());
        for id in ids {
            match results.last() {
                Some(Err(error @ ProviderError::Throttled { .. })) => {
                    let error = error.clone();
                    results.push(Err(error));
                }
                _ => results.push(self.delete(id).await),
            }
        }
        results
    }

    async fn delete(&self, id: &str) -> Result<(), ProviderError> {
        let url = format!("{}/{}", self.api.indicators_url(), urlencode(id));
        let response = self
            .api
            .send(CallKind::Single, |token| {
                self.api.client.delete(&url).bearer_auth(token)
            })
            .await?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(status_error("the Defender API", response).await)
        }
    }

    /// The ids of the indicators this action submitted, found by value (when
    /// the attempt that submitted them did not get to record the id).
    async fn find_own(&self, job: &Job) -> Result<Vec<String>, ProviderError> {
        let value = job.indicator.to_string().replace('\'', "''");
        let url = self.api.indicators_url();
        let filter = format!("indicatorValue eq '{value}'");
        let response = self
            .api
            .send(CallKind::Single, |token| {
                self.api
                    .client
                    .get(&url)
                    .query(&[("$filter", filter.as_str())])
                    .bearer_auth(token)
            })
            .await?;
        if !response.status().is_success() {
            return Err(status_error("the Defender API", response).await);
        }
        let list: Value = response.json().await.unwrap_or(Value::Null);
        let marker = job.action.id.to_string();
        Ok(list["value"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|i| {
                        i["description"]
                            .as_str()
                            .is_some_and(|d| d.contains(&marker))
                    })
                    .filter_map(|i| id_text(&i["id"]))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// The outcome of one indicator of an import: its id, or why it failed
/// (for good, unless the reason says it may pass).
fn item_result(item: &Value) -> Result<Reference, ProviderError> {
    if item["isFailed"].as_bool() != Some(true) {
        return Ok(id_text(&item["id"]));
    }
    let reason = item["failureReason"]
        .as_str()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or("no reason given");
    let message = format!(
        "Defender refused the indicator: {}",
        reason.chars().take(300).collect::<String>()
    );
    let lower = reason.to_ascii_lowercase();
    let may_pass = [
        "timeout",
        "timed out",
        "temporar",
        "try again",
        "throttl",
        "unavailable",
    ]
    .iter()
    .any(|hint| lower.contains(hint));
    Err(if may_pass {
        ProviderError::transient(CODE_PROVIDER_ERROR, message)
    } else {
        ProviderError::permanent(400, message)
    })
}

/// Defender's `indicatorType` for an indicator.
pub(crate) fn indicator_type(indicator: &Indicator) -> &'static str {
    match indicator {
        Indicator::Ip(_) => "IpAddress",
        Indicator::Url(_) => "Url",
        Indicator::Domain(_) => "DomainName",
        Indicator::FileHash(HashAlgorithm::Md5, _) => "FileMd5",
        Indicator::FileHash(HashAlgorithm::Sha1, _) => "FileSha1",
        Indicator::FileHash(HashAlgorithm::Sha256, _) => "FileSha256",
    }
}

fn id_text(id: &Value) -> Option<String> {
    match id {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

impl Provider for Defender {
    fn shares_indicators(&self) -> bool {
        true
    }

    fn batch_limit(&self) -> usize {
        IMPORT_BATCH
    }

    fn execute<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<Reference, ProviderError>> {
        Box::pin(async move {
            self.execute_batch(std::slice::from_ref(job))
                .await
                .pop()
                .unwrap_or_else(|| {
                    Err(ProviderError::transient(
                        CODE_PROVIDER_ERROR,
                        "the Defender batch returned no result",
                    ))
                })
        })
    }

    fn execute_batch<'a>(
        &'a self,
        jobs: &'a [Job],
    ) -> BoxFuture<'a, Vec<Result<Reference, ProviderError>>> {
        Box::pin(async move {
            let fitting = match self.fitting(jobs.len()).await {
                Ok(fitting) => fitting,
                Err(error) => return vec![Err(error); jobs.len()],
            };
            let mut results = Vec::with_capacity(jobs.len());
            for chunk in jobs[..fitting].chunks(IMPORT_BATCH) {
                results.extend(self.import(chunk).await);
            }
            results.extend((fitting..jobs.len()).map(|_| Err(self.over_cap())));
            results
        })
    }

    fn revert<'a>(
        &'a self,
        job: &'a Job,
        reference: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let jobs = [(job.clone(), reference.map(str::to_owned))];
            self.revert_batch(&jobs).await.pop().unwrap_or(Ok(()))
        })
    }

    fn revert_batch<'a>(
        &'a self,
        jobs: &'a [(Job, Option<String>)],
    ) -> BoxFuture<'a, Vec<Result<(), ProviderError>>> {
        Box::pin(async move {
            // The ids of each job: its reference, or found by value.
            let mut results: Vec<Result<(), ProviderError>> = vec![Ok(()); jobs.len()];
            let mut ids_of: Vec<Vec<String>> = Vec::with_capacity(jobs.len());
            for (i, (job, reference)) in jobs.iter().enumerate() {
                match reference {
                    Some(id) => ids_of.push(vec![id.clone()]),
                    None => match self.find_own(job).await {
                        Ok(ids) => ids_of.push(ids),
                        Err(error) => {
                            results[i] = Err(error);
                            ids_of.push(Vec::new());
                        }
                    },
                }
            }
            let mut ids: Vec<String> = ids_of.iter().flatten().cloned().collect();
            ids.sort();
            ids.dedup();
            let mut failed: HashMap<&str, ProviderError> = HashMap::new();
            for chunk in ids.chunks(IMPORT_BATCH) {
                for (id, result) in chunk.iter().zip(self.delete_all(chunk).await) {
                    if let Err(error) = result {
                        failed.insert(id, error);
                    }
                }
            }
            for (result, own) in results.iter_mut().zip(&ids_of) {
                if result.is_ok()
                    && let Some(error) = own.iter().find_map(|id| failed.get(id.as_str()))
                {
                    *result = Err(error.clone());
                }
            }
            results
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_item_fails_for_good_unless_its_reason_may_pass() {
        let ok = json!({"id": "7", "indicator": "203.0.113.7", "isFailed": false, "failureReason": null});
        assert_eq!(item_result(&ok), Ok(Some("7".to_owned())));
        let refused =
            json!({"indicator": "x", "isFailed": true, "failureReason": "Invalid indicator value"});
        assert!(matches!(
            item_result(&refused),
            Err(ProviderError::Permanent { message, .. }) if message.contains("Invalid indicator value")
        ));
        let busy = json!({"indicator": "x", "isFailed": true, "failureReason": "Service temporarily unavailable"});
        assert!(matches!(
            item_result(&busy),
            Err(ProviderError::Transient { .. })
        ));
    }
}
