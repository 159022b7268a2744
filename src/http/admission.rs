//! Whether an operation may run: the checks every HTTP request and WebSocket
//! operation passes before anything executes. In order: the caller's rate
//! limit, the GraphQL pipeline's own checks (size, method, operation limits,
//! introspection), and the caller's mutation rate limit.

use std::time::Duration;

use async_graphql::parser::types::OperationType;
use axum::http::StatusCode;

use super::HttpState;
use crate::auth::Principal;
use crate::error::codes;
use crate::graphql::execute::{Arrival, Refusal};
use crate::service::rate_limit::{Kind, limited_message};

/// Runs the checks on `request` for `principal`. Returns the type of the
/// operation that will run, when the document parses and names one.
pub(crate) fn admit(
    state: &HttpState,
    principal: &Principal,
    request: &mut async_graphql::Request,
    arrival: Arrival,
) -> Result<Option<OperationType>, Refusal> {
    state
        .services
        .rate
        .take(Kind::Request, &principal.tenant_id, &principal.app_id)
        .map_err(|wait| rate_limited(wait, "requests"))?;
    let selected = state.graphql.check(request, arrival)?;
    if selected == Some(OperationType::Mutation) {
        state
            .services
            .rate
            .take(Kind::Mutation, &principal.tenant_id, &principal.app_id)
            .map_err(|wait| rate_limited(wait, "mutations"))?;
    }
    Ok(selected)
}

/// The HTTP status of a refused request.
pub(crate) fn refusal_status(refusal: &Refusal) -> StatusCode {
    match refusal.code {
        codes::RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
        codes::METHOD_NOT_ALLOWED => StatusCode::METHOD_NOT_ALLOWED,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn rate_limited(wait: Duration, what: &str) -> Refusal {
    Refusal {
        code: codes::RATE_LIMITED,
        message: limited_message(wait, what),
        retry_after: Some(wait),
    }
}
