//! Calls to Defender's API: an OAuth2 client-credentials token, and every
//! request paced by the provider's budget in the store.
//!
//! Each request to the API takes one call from the budget first (a batch
//! endpoint also one batch call); when the budget is spent the request is
//! not sent and the caller gets [`ProviderError::Throttled`] with the time
//! until there is room, so the executor puts the work back without counting
//! an attempt. A 429 that comes anyway (another client of the same tenant,
//! a limit lower than configured) is honoured the same way, after its
//! `Retry-After`. The token request goes to Entra ID
//! (`login.microsoftonline.com`), not to Defender's API, so it is not counted.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::super::config::DefenderSettings;
use super::super::http::{retry_after, send, transport_error};
use super::super::{CODE_PROVIDER_ERROR, ProviderError};
use crate::store::{CallKind, Store};
use crate::telemetry::metrics;

/// A token is refreshed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// How long to wait after a 429 that says nothing of when to come back.
const DEFAULT_429_WAIT: Duration = Duration::from_secs(60);

/// Defender's API as one provider's settings and budget reach it.
pub(super) struct Api {
    /// The provider's name: its budget's key and its metrics label.
    pub name: String,
    pub client: reqwest::Client,
    pub settings: DefenderSettings,
    pub store: Store,
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

impl Api {
    pub(super) fn new(
        name: String,
        client: reqwest::Client,
        settings: DefenderSettings,
        store: Store,
    ) -> Api {
        Api {
            name,
            client,
            settings,
            store,
            token: Mutex::new(None),
        }
    }

    pub(super) fn indicators_url(&self) -> String {
        format!("{}/api/indicators", self.settings.api_base)
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
                CODE_PROVIDER_ERROR,
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

    /// Takes one call of `kind` from the budget (returning the logged call),
    /// or says how long to wait.
    async fn take(&self, kind: CallKind) -> Result<i64, ProviderError> {
        let taken = self
            .store
            .take_budget(&self.name, kind, &self.settings.budget)
            .await
            .map_err(|err| {
                tracing::warn!(error = %err.for_log(), "taking from the Defender call budget");
                ProviderError::transient(
                    CODE_PROVIDER_ERROR,
                    "the gateway could not read its Defender call budget",
                )
            })?;
        metrics::provider_budget_left(&self.name, taken.left_minute, taken.left_hour);
        match taken.wait {
            None => taken.call.ok_or_else(|| {
                ProviderError::transient(
                    CODE_PROVIDER_ERROR,
                    "the Defender call budget did not log the call",
                )
            }),
            Some(wait) => {
                metrics::provider_budget_wait(&self.name, "budget");
                tracing::debug!(?wait, "the Defender call budget is spent");
                let message = "waiting for room in the Defender call budget";
                Err(match taken.room_at {
                    Some(until) => ProviderError::throttled_until(message, until),
                    None => ProviderError::throttled(message, wait),
                })
            }
        }
    }

    /// Logs `call` again at the time of its answer (see `store::budget`).
    /// Failing that, it stays logged at its taking, held a margin longer
    /// than its window: the budget is then only as safe as that margin.
    async fn answered(&self, call: i64) {
        if let Err(err) = self.store.budget_call_answered(&self.name, call).await {
            tracing::warn!(error = %err.for_log(), "logging the answer of a Defender call");
        }
    }

    /// Sends the request `build` makes with a bearer token, after taking a
    /// call of `kind` from the budget; when the API refuses the token (401),
    /// fetches a new one and tries once more (another call). A 429 becomes
    /// [`ProviderError::Throttled`].
    pub(super) async fn send(
        &self,
        kind: CallKind,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut refresh = false;
        loop {
            // The token first: fetching it does not spend the budget, and
            // the call then goes as soon as it is taken.
            let token = self.access_token(refresh).await?;
            let call = self.take(kind).await?;
            // With the trace context, as every provider call.
            let sent = send("the Defender API", build(&token)).await;
            self.answered(call).await;
            let response = sent?;
            match response.status() {
                StatusCode::UNAUTHORIZED if !refresh => refresh = true,
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(response.headers()).unwrap_or(DEFAULT_429_WAIT);
                    metrics::provider_budget_wait(&self.name, "429");
                    tracing::warn!(?wait, "the Defender API answered 429 despite the budget");
                    return Err(ProviderError::throttled(
                        "the Defender API asked to slow down (429)",
                        wait,
                    ));
                }
                _ => return Ok(response),
            }
        }
    }
}
