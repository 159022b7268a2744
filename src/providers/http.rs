//! What the HTTP providers share: sending a request with the trace context,
//! reading `Retry-After`, and turning transport errors and status codes into
//! [`ProviderError`]s.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{CODE_TIMEOUT, CODE_UNREACHABLE, ProviderError};
use crate::telemetry::trace;

/// Longest wait a `Retry-After` may impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How much of a provider's error body is kept in `errorInfo.message`.
const MAX_BODY_IN_MESSAGE: usize = 300;

/// `Retry-After` in seconds or as an HTTP date, capped at an hour.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Sends a request to `provider` with the current trace context
/// (`traceparent`, `tracestate`), so the provider's own traces join the
/// action's, and records the response's status on the provider call's span.
pub(super) async fn send(
    provider: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, ProviderError> {
    let mut context = HeaderMap::new();
    trace::inject(&mut context);
    let response = request
        .headers(context)
        .send()
        .await
        .map_err(|e| transport_error(provider, &e))?;
    trace::record_http_status(response.status().as_u16());
    Ok(response)
}

/// A request that got no response.
pub(super) fn transport_error(provider: &str, err: &reqwest::Error) -> ProviderError {
    if err.is_timeout() {
        ProviderError::transient(CODE_TIMEOUT, format!("{provider} did not answer in time"))
    } else {
        ProviderError::transient(CODE_UNREACHABLE, format!("{provider} could not be reached"))
    }
}

/// A response that is not a success: 408, 425, 429 and 5xx may pass and are
/// retried (after `Retry-After`, when given); other statuses will not.
pub(super) async fn status_error(provider: &str, response: reqwest::Response) -> ProviderError {
    let status = response.status();
    let wait = retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    let mut message = format!("{provider} answered {status}");
    let detail: String = body.trim().chars().take(MAX_BODY_IN_MESSAGE).collect();
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(&detail);
    }
    let code = i32::from(status.as_u16());
    if is_transient(status) {
        ProviderError::Transient {
            code,
            message,
            retry_after: wait,
        }
    } else {
        ProviderError::Permanent {
            code,
            message,
            subcode: None,
        }
    }
}

fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_EARLY
        || status == StatusCode::TOO_MANY_REQUESTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn server_errors_and_throttling_are_transient_client_errors_are_not() {
        for status in [500, 502, 503, 429, 408] {
            assert!(
                is_transient(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(
                !is_transient(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
    }
}
