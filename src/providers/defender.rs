//! The `defender` provider: Microsoft Defender for Endpoint's indicator API.
//!
//! Authenticates with OAuth2 client credentials (the token is cached until
//! shortly before it expires, and fetched again when the API answers 401),
//! submits indicators with `POST {api}/api/indicators` and lifts them with
//! `DELETE {api}/api/indicators/{id}`. Submitting the same indicator again
//! updates it, so a retried execute does not duplicate it. Both base URLs are
//! settings, so tests run the provider against a local server.

use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::config::DefenderSettings;
use super::http::{send, status_error, transport_error};
use super::{Job, Provider, ProviderError, Reference};
use crate::domain::catalog::Verdict;
use crate::domain::indicator::{HashAlgorithm, Indicator};

/// A token is refreshed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// The Defender provider.
pub(crate) struct Defender {
    client: reqwest::Client,
    settings: DefenderSettings,
    token: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    value: String,
    fresh_until: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<Value>,
}

impl Defender {
    pub(crate) fn new(client: reqwest::Client, settings: DefenderSettings) -> Defender {
        Defender {
            client,
            settings,
            token: Mutex::new(None),
        }
    }

    /// A valid access token: the cached one, or a new one when it is stale or
    /// `refresh` says the API refused it.
    async fn access_token(&self, refresh: bool) -> Result<String, ProviderError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && !refresh
            && Instant::now() < token.fresh_until
        {
            return Ok(token.value.clone());
        }
        let response = self
            .client
            .post(&self.settings.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.settings.client_id.as_str()),
                ("client_secret", self.settings.client_secret.expose()),
                ("scope", self.settings.scope.as_str()),
            ])
            .send()
            .await
            .map_err(|e| transport_error("the Defender token endpoint", &e))?;
        if !response.status().is_success() {
            // The endpoint's answer describes the gateway's own credentials:
            // it goes to the log, and analysts are told only that it refused.
            let status = response.status();
            let detail = response.text().await.unwrap_or_default();
            tracing::warn!(%status, detail = %detail.chars().take(500).collect::<String>(), "the Defender token endpoint refused");
            let message =
                format!("the Defender token endpoint refused the gateway's credentials ({status})");
            let code = i32::from(status.as_u16());
            return Err(
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    ProviderError::transient(code, message)
                } else {
                    ProviderError::permanent(code, message)
                },
            );
        }
        let token: TokenResponse = response.json().await.map_err(|_| {
            ProviderError::transient(
                super::CODE_PROVIDER_ERROR,
                "the Defender token endpoint answered no access_token",
            )
        })?;
        let lifetime = match token.expires_in {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(300));
        *cached = Some(CachedToken {
            value: token.access_token.clone(),
            fresh_until: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        });
        Ok(token.access_token)
    }

    /// Sends the request `build` makes with a bearer token; when the API
    /// refuses the token (401), fetches a new one and tries once more.
    async fn call(
        &self,
        what: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let token = self.access_token(false).await?;
        let response = send(what, build(&token)).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let token = self.access_token(true).await?;
        send(what, build(&token)).await
    }

    fn indicators_url(&self) -> String {
        format!("{}/api/indicators", self.settings.api_base)
    }

    async fn delete(&self, id: &str) -> Result<(), ProviderError> {
        let url = format!("{}/{}", self.indicators_url(), urlencode(id));
        let response = self
            .call("the Defender API", |token| {
                self.client.delete(&url).bearer_auth(token)
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
        let url = self.indicators_url();
        let filter = format!("indicatorValue eq '{value}'");
        let response = self
            .call("the Defender API", |token| {
                self.client
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

    fn execute<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<Reference, ProviderError>> {
        Box::pin(async move {
            let action = &job.action;
            let reason = action.action_reason.as_deref().unwrap_or("No reason given");
            let body = json!({
                "indicatorValue": job.indicator.to_string(),
                "indicatorType": indicator_type(&job.indicator),
                "action": match job.definition.verdict { Verdict::Block => "Block", Verdict::Allow => "Allowed" },
                "title": format!("actiongate: {} {}", action.name, job.indicator),
                "description": format!("{reason} (by {} via app {}; actiongate action {})", action.user, action.app_id, action.id),
                "expirationTime": job.expires_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                "severity": self.settings.severity,
                "application": "actiongate",
            });
            let url = self.indicators_url();
            let response = self
                .call("the Defender API", |token| {
                    self.client.post(&url).bearer_auth(token).json(&body)
                })
                .await?;
            if !response.status().is_success() {
                return Err(status_error("the Defender API", response).await);
            }
            let created: Value = response.json().await.unwrap_or(Value::Null);
            Ok(id_text(&created["id"]))
        })
    }

    fn revert<'a>(
        &'a self,
        job: &'a Job,
        reference: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let ids = match reference {
                Some(id) => vec![id.to_owned()],
                None => self.find_own(job).await?,
            };
            for id in ids {
                self.delete(&id).await?;
            }
            Ok(())
        })
    }
}
