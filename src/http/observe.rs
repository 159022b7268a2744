//! What every HTTP request leaves behind for operators: one access-log line
//! at `info` (target `actiongate::access`) with the method, the route, the
//! GraphQL operation's type and name, the status, the duration and the
//! request id — never the token, the query text or the variables.
//!
//! It also counts and times the request (`actiongate_http_requests_total`).
//! The GraphQL handlers tell this layer which operation ran by putting an
//! [`OperationLabel`] in the response's extensions.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::graphql::execute::OperationLabel;
use crate::telemetry::metrics;

/// Logs one line per request once its response is ready.
pub(crate) async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = route_of(&request);
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let label = response.extensions().get::<OperationLabel>();
    metrics::http_request(&route, method.as_str(), response.status().as_u16(), elapsed);
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info!(
        target: "actiongate::access",
        method = %method,
        route = %route,
        operation_type = label.map_or("-", |l| l.kind),
        operation = label.and_then(|l| l.name.as_deref()).unwrap_or("-"),
        status = response.status().as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        request_id,
        "request"
    );
    response
}

/// The route template that matched (`/assets/{version}/{*path}`, not the
/// path itself), or `unmatched`: a bounded set of values.
pub(crate) fn route_of(request: &Request) -> String {
    match request.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_owned(),
        None => "unmatched".to_owned(),
    }
}
