//! Whether an operation may run: the checks every HTTP request and WebSocket
//! operation passes before anything executes. In order: the caller's rate
//! limit, the size of the query text, the method (no mutation over GET), the
//! operation limits, and the caller's mutation rate limit.

use std::time::Duration;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use axum::http::StatusCode;

use super::HttpState;
use super::limits::{asks_for_introspection, check_document, check_size};
use super::rate_limit::Kind;
use crate::auth::Principal;

/// How the operation arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    Post,
    Get,
    WebSocket,
}

/// Why an operation may not run.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For `RATE_LIMITED`: when to try again.
    pub retry_after: Option<Duration>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn rate_limited(wait: Duration, what: &str) -> Refusal {
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "RATE_LIMITED",
            message: format!(
                "too many {what} for this tenant and app; try again in {} s",
                wait.as_secs_f64().ceil()
            ),
            retry_after: Some(wait),
        }
    }
}

/// Runs the checks on `request` for `principal`. Returns the type of the
/// operation that will run, when the document parses and names one.
pub fn admit(
    state: &HttpState,
    principal: &Principal,
    request: &mut async_graphql::Request,
    arrival: Arrival,
) -> Result<Option<OperationType>, Refusal> {
    state
        .rate
        .take(Kind::Request, &principal.tenant_id, &principal.app_id)
        .map_err(|wait| Refusal::rate_limited(wait, "requests"))?;
    check_size(&request.query, &state.limits)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.code, e.message))?;
    let operation_name = request.operation_name.clone();
    let variables = request.variables.clone();
    // A document that does not parse is left to execution, which reports it.
    let Ok(document) = request.parsed_query() else {
        return Ok(None);
    };
    let selected = match &document.operations {
        DocumentOperations::Single(op) => Some(op.node.ty),
        DocumentOperations::Multiple(ops) => match &operation_name {
            Some(name) => ops.get(name.as_str()).map(|op| op.node.ty),
            None if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
            None => None,
        },
    };
    if arrival == Arrival::Get
        && matches!(
            selected,
            Some(OperationType::Mutation | OperationType::Subscription)
        )
    {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "mutations and subscriptions are not accepted over GET: use POST (or the WebSocket for subscriptions)",
        ));
    }
    check_document(document, &variables, &state.limits)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.code, e.message))?;
    if !state.introspection && asks_for_introspection(document) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "INTROSPECTION_DISABLED",
            "introspection is turned off on this gateway (--introspection)",
        ));
    }
    if selected == Some(OperationType::Mutation) {
        state
            .rate
            .take(Kind::Mutation, &principal.tenant_id, &principal.app_id)
            .map_err(|wait| Refusal::rate_limited(wait, "mutations"))?;
    }
    Ok(selected)
}
