//! The `webhook` provider: POSTs the action as JSON to a configured URL.
//!
//! The body is signed: `X-Actiongate-Signature: sha256=<hex HMAC-SHA256 of the
//! body>` with the provider's secret, and carries `sentAt` so a receiver can
//! refuse replays. `Idempotency-Key: <action id>:<operation>` is the same on
//! every attempt, so a receiver applies each action once however often it is
//! retried. A 2xx answer completes the action, 4xx fails it with the status in
//! `errorInfo`, and 408, 429, 5xx, timeouts and connection errors are retried
//! (honouring `Retry-After`). A revert sends the same with `"operation":
//! "revert"`; 404 or 410 to a revert means there is nothing left to lift.

use aws_lc_rs::hmac;
use chrono::{SecondsFormat, Utc};
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::config::Secret;
use super::http::{send, status_error};
use super::{Job, Provider, ProviderError, Reference};
use crate::domain::catalog::Verdict;

/// The header with the body's signature.
pub(crate) const SIGNATURE_HEADER: &str = "X-Actiongate-Signature";

/// The webhook provider.
pub(crate) struct Webhook {
    client: reqwest::Client,
    url: String,
    key: hmac::Key,
}

impl Webhook {
    pub(crate) fn new(client: reqwest::Client, url: String, secret: Secret) -> Webhook {
        Webhook {
            client,
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes()),
        }
    }

    async fn send(
        &self,
        job: &Job,
        operation: &str,
        reference: Option<&str>,
    ) -> Result<reqwest::Response, ProviderError> {
        let body = body(job, operation, reference).to_string();
        let signature = sign(&self.key, body.as_bytes());
        let request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, format!("sha256={signature}"))
            .header("Idempotency-Key", format!("{}:{operation}", job.action.id))
            .body(body);
        send("the webhook", request).await
    }
}

/// Lower-case hex of the HMAC-SHA256 of `body`.
pub(crate) fn sign(key: &hmac::Key, body: &[u8]) -> String {
    hmac::sign(key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn body(job: &Job, operation: &str, reference: Option<&str>) -> Value {
    let action = &job.action;
    let mut body = json!({
        "operation": operation,
        "sentAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "attempt": job.attempt,
        "action": {
            "id": action.id,
            "name": action.name,
            "verdict": match job.definition.verdict { Verdict::Block => "block", Verdict::Allow => "allow" },
            "indicator": { "kind": job.indicator.label(), "value": job.indicator.to_string() },
            "parameters": job.parameters.iter().map(|p| json!({"name": p.name, "value": p.value})).collect::<Vec<_>>(),
            "actionReason": action.action_reason,
            "azureTenantId": action.tenant_id,
            "appId": action.app_id,
            "user": action.user,
            "clientContext": action.client_context,
            "createdDateTime": action.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "expirationDateTime": job.expires_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        },
    });
    if let Some(reference) = reference {
        body["reference"] = Value::String(reference.to_owned());
    }
    body
}

impl Provider for Webhook {
    fn execute<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<Reference, ProviderError>> {
        Box::pin(async move {
            let response = self.send(job, "execute", None).await?;
            if !response.status().is_success() {
                return Err(status_error("the webhook", response).await);
            }
            // A receiver may answer {"reference": "…"} (or {"id": "…"}) to be
            // handed it back on revert.
            let answer: Option<Value> = response.json().await.ok();
            let reference = answer
                .as_ref()
                .and_then(|a| a.get("reference").or_else(|| a.get("id")));
            Ok(reference.and_then(|r| match r {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }))
        })
    }

    fn revert<'a>(
        &'a self,
        job: &'a Job,
        reference: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let response = self.send(job, "revert", reference).await?;
            let status = response.status();
            if status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::GONE
            {
                Ok(())
            } else {
                Err(status_error("the webhook", response).await)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            sign(&key, b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
