//! Errors in Graph's shape:
//! `{"error": {"code", "message", "innerError": {"code", "date", "request-id", "client-request-id"}}}`.
//!
//! `error.code` is Graph's name of the HTTP status (`BadRequest`, `NotFound`,
//! …); `innerError.code` is the gateway's stable code, the same one the
//! GraphQL API puts in `extensions.code` (`BAD_USER_INPUT`, `CONFLICT`,
//! `NOT_CANCELABLE`, `RATE_LIMITED`, …).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{AppError, codes};
use crate::service::rate_limit::limited_message;

/// The header a client names its request with; echoed in the answer.
pub(crate) const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");
/// The header the gateway names each request with.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
/// Longest `client-request-id` echoed.
const MAX_CLIENT_REQUEST_ID: usize = 256;

/// One request's identity: the gateway's id, and the client's when it sent one.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub request_id: Uuid,
    pub client_request_id: Option<HeaderValue>,
}

impl Exchange {
    pub(crate) fn new(headers: &HeaderMap) -> Exchange {
        Exchange {
            request_id: Uuid::now_v7(),
            client_request_id: headers
                .get(&CLIENT_REQUEST_ID)
                .filter(|v| v.len() <= MAX_CLIENT_REQUEST_ID && v.to_str().is_ok())
                .cloned(),
        }
    }

    /// Adds `request-id` and the echoed `client-request-id` to a response.
    pub(crate) fn stamp(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&self.request_id.to_string()) {
            headers.insert(REQUEST_ID, value);
        }
        if let Some(value) = &self.client_request_id {
            headers.insert(CLIENT_REQUEST_ID, value.clone());
        }
        response
    }
}

/// Graph's error body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ODataError)]
#[serde(deny_unknown_fields)]
pub(crate) struct ODataError {
    pub error: MainError,
}

/// The error itself.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MainError)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct MainError {
    /// Graph's name of the status: `BadRequest`, `InvalidAuthenticationToken`,
    /// `Forbidden`, `NotFound`, `MethodNotAllowed`, `Conflict`,
    /// `RequestEntityTooLarge`, `UnsupportedMediaType`, `TooManyRequests`,
    /// `InternalServerError`, `GatewayTimeout`.
    pub code: String,
    /// What went wrong; for a validation error it names the property.
    pub message: String,
    pub inner_error: InnerError,
}

/// Where and when.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = InnerError)]
#[serde(deny_unknown_fields)]
pub(crate) struct InnerError {
    /// The gateway's stable code, as in the GraphQL API's `extensions.code`.
    pub code: String,
    pub date: DateTime<Utc>,
    /// The gateway's id of the request, also in the `request-id` header and the logs.
    #[serde(rename = "request-id")]
    pub request_id: String,
    /// The `client-request-id` header of the request, when it had one.
    #[serde(rename = "client-request-id", skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub client_request_id: Option<String>,
}

/// An error answer of the face, before it is given its request's identity.
#[derive(Debug)]
pub(crate) struct RestError {
    pub status: StatusCode,
    /// The gateway's stable code.
    pub code: &'static str,
    pub message: String,
    /// For 429: when to try again.
    pub retry_after: Option<Duration>,
    /// For 405: the methods the resource takes.
    pub allow: Option<&'static str>,
}

impl RestError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> RestError {
        RestError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            allow: None,
        }
    }

    /// A malformed request: a query option, a body.
    pub(crate) fn bad_request(message: impl Into<String>) -> RestError {
        RestError::new(StatusCode::BAD_REQUEST, codes::BAD_USER_INPUT, message)
    }

    pub(crate) fn method_not_allowed(allow: &'static str) -> RestError {
        RestError {
            allow: Some(allow),
            ..RestError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                codes::METHOD_NOT_ALLOWED,
                format!("this resource takes {allow}"),
            )
        }
    }

    pub(crate) fn rate_limited(wait: Duration, what: &str) -> RestError {
        RestError {
            retry_after: Some(wait),
            ..RestError::new(
                StatusCode::TOO_MANY_REQUESTS,
                codes::RATE_LIMITED,
                limited_message(wait, what),
            )
        }
    }

    /// The answer, with the request's identity in body and headers.
    pub(crate) fn into_response(self, exchange: &Exchange) -> Response {
        let body = ODataError {
            error: MainError {
                code: graph_code(self.status).to_owned(),
                message: self.message,
                inner_error: InnerError {
                    code: self.code.to_owned(),
                    date: Utc::now().trunc_subsecs(0),
                    request_id: exchange.request_id.to_string(),
                    client_request_id: exchange
                        .client_request_id
                        .as_ref()
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                },
            },
        };
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&body).unwrap_or_default(),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        exchange.stamp(response)
    }
}

impl From<AppError> for RestError {
    fn from(err: AppError) -> RestError {
        err.log();
        let status = match &err {
            AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadUserInput { .. } => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) | AppError::NotCancelable(_) => StatusCode::CONFLICT,
            AppError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            AppError::TooSlow(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &err {
            AppError::BadUserInput { field, message } => {
                // The domain names GraphQL input paths; a body property is
                // the same path without `input.`.
                let property = field.strip_prefix("input.").unwrap_or(field);
                format!("invalid {property}: {message}")
            }
            other => other.to_string(),
        };
        RestError::new(status, err.code(), message)
    }
}

/// Graph's name for a status.
pub(super) fn graph_code(status: StatusCode) -> &'static str {
    use codes::graph;
    match status {
        StatusCode::BAD_REQUEST => graph::BAD_REQUEST,
        StatusCode::UNAUTHORIZED => graph::INVALID_AUTHENTICATION_TOKEN,
        StatusCode::FORBIDDEN => graph::FORBIDDEN,
        StatusCode::NOT_FOUND => graph::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED => graph::METHOD_NOT_ALLOWED,
        StatusCode::CONFLICT => graph::CONFLICT,
        StatusCode::PAYLOAD_TOO_LARGE => graph::REQUEST_ENTITY_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => graph::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::TOO_MANY_REQUESTS => graph::TOO_MANY_REQUESTS,
        StatusCode::GATEWAY_TIMEOUT => graph::GATEWAY_TIMEOUT,
        StatusCode::SERVICE_UNAVAILABLE => graph::SERVICE_UNAVAILABLE,
        _ => graph::INTERNAL_SERVER_ERROR,
    }
}
