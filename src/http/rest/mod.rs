//! The Microsoft Graph REST face under `/beta`: Graph's `securityAction`
//! resource at `/beta/security/securityActions`, so that a script written
//! against Graph's (deprecated) API works by changing its base URL and token.
//!
//! It is a second transport over the same services as GraphQL: the same
//! token check and roles, the same tenancy, the same validation and store
//! calls (`service::Services`), the same rate limits, body limit and request
//! deadline. OData options become the domain's filter, order and page
//! request; none of this module writes SQL.
//!
//! - `endpoints`: the handlers, one per row of the resource's table
//! - `batch`: many creates in one request (`$batch`), as `invokeActions`
//! - `options`, `odata`, `filter`: query options, the `$filter` parser and its meaning
//! - `representation`: Graph's JSON of the entity, and the create body
//! - `errors`: Graph's error body, with `request-id` and `client-request-id`
//! - `openapi`: the OpenAPI 3.1 document at `/beta/openapi.json`

use std::future::Future;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};

use super::HttpState;
use crate::auth::Principal;
use crate::service::rate_limit::Kind;
use crate::telemetry::trace;

mod batch;
mod endpoints;
pub(crate) mod errors;
mod filter;
mod odata;
mod openapi;
mod options;
mod representation;

use errors::{Exchange, RestError};

/// Settings of the face, from those of the HTTP surface.
#[derive(Debug, Clone)]
pub(crate) struct RestOptions {
    /// The deadline of one request, as for `/graphql`.
    pub request_timeout: std::time::Duration,
    /// Longest query string, the same bound as a GraphQL document's.
    pub max_query_bytes: usize,
    /// The absolute URL clients reach the gateway at, for links; `None`:
    /// `http://` and the request's `Host`.
    pub public_url: Option<String>,
}

/// The collection's path.
pub(crate) const COLLECTION: &str = "/beta/security/securityActions";
/// The bound action that cancels, after an action's path.
const CANCEL: &str = "cancelSecurityAction";
/// The same by its qualified name, as some SDKs call it.
const QUALIFIED_CANCEL: &str = "microsoft.graph.cancelSecurityAction";

/// The routes of the face.
pub(crate) fn routes() -> Router<HttpState> {
    let only = |allow: &'static str, route: MethodRouter<HttpState>| {
        route.fallback(move |headers: HeaderMap| async move {
            let exchange = Exchange::new(&headers);
            RestError::method_not_allowed(allow).into_response(&exchange)
        })
    };
    Router::new()
        .route(
            COLLECTION,
            only("GET, POST", get(endpoints::list).post(endpoints::create)),
        )
        .route(
            &format!("{COLLECTION}/$batch"),
            only("POST", post(batch::invoke_batch)),
        )
        .route(
            &format!("{COLLECTION}/$count"),
            only("GET", get(endpoints::count)),
        )
        .route(
            &format!("{COLLECTION}/{{id}}"),
            only("GET", get(endpoints::get)),
        )
        .route(
            &format!("{COLLECTION}/{{id}}/{CANCEL}"),
            only("POST", post(endpoints::cancel)),
        )
        .route(
            &format!("{COLLECTION}/{{id}}/{QUALIFIED_CANCEL}"),
            only("POST", post(endpoints::cancel)),
        )
        .route("/beta/openapi.json", only("GET", get(openapi::document)))
        .route("/beta", axum::routing::any(not_found))
        .route("/beta/{*rest}", axum::routing::any(not_found))
}

/// Any other path under `/beta`.
async fn not_found(headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let exchange = Exchange::new(&headers);
    RestError::new(
        StatusCode::NOT_FOUND,
        crate::error::codes::NOT_FOUND,
        format!(
            "resource not found for the segment '{}'",
            crate::domain::indicator::shorten(uri.path())
        ),
    )
    .into_response(&exchange)
}

/// What a handler needs: a read or a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

impl Access {
    /// The HTTP method of the face's requests of this access: reads are
    /// GETs, changes (create, cancel, batch) POSTs.
    fn method(self) -> &'static str {
        match self {
            Access::Read => "GET",
            Access::Write => "POST",
        }
    }
}

/// Runs `work` for the caller of `headers`, after the checks every request
/// of the face passes, in order: the token (401), the tenant and app's
/// request rate (429), the role (403), for changes the mutation rate (429);
/// and within the request deadline (504). Errors become Graph's body; every
/// answer carries `request-id` and the echoed `client-request-id`.
async fn serve<W, F>(state: &HttpState, headers: &HeaderMap, access: Access, work: W) -> Response
where
    W: FnOnce(Principal) -> F,
    F: Future<Output = Result<Response, RestError>>,
{
    let exchange = Exchange::new(headers);
    let span = trace::request_span!("rest", access.method(), exchange.request_id);
    let outcome = trace::traced(span, trace::sent_by_caller(headers), async {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let principal = state.auth.authenticate_header(authorization).await?;
        trace::record_tenant(&principal.tenant_id);
        state
            .services
            .rate
            .take(Kind::Request, &principal.tenant_id, &principal.app_id)
            .map_err(|wait| RestError::rate_limited(wait, "requests"))?;
        match access {
            Access::Read => principal.require_read()?,
            Access::Write => {
                principal.require_write()?;
                state
                    .services
                    .rate
                    .take(Kind::Mutation, &principal.tenant_id, &principal.app_id)
                    .map_err(|wait| RestError::rate_limited(wait, "changes"))?;
            }
        }
        match tokio::time::timeout(state.rest.request_timeout, work(principal)).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(timeout = ?state.rest.request_timeout, "request deadline passed");
                Err(RestError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    crate::error::codes::TIMEOUT,
                    "the request took longer than the gateway allows and was stopped",
                ))
            }
        }
    })
    .await;
    match outcome {
        Ok(response) => exchange.stamp(response),
        Err(error) => error.into_response(&exchange),
    }
}

/// The absolute base of links (`@odata.nextLink`, `Location`,
/// `@odata.context`): the configured public URL, else `http://` and the
/// request's `Host`.
fn base_url(state: &HttpState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.rest.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}
