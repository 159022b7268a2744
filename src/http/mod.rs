//! The HTTP surface: the router, its CORS and body limits, and the handlers of
//! `/graphql` (POST, and GET for queries; `graphql`), `/graphql/ws` (`ws`),
//! the browser pages (GraphiQL at `/`, the dashboard at `/dashboard`; `pages`),
//! `/healthz`, `/readyz`, `/metrics`, and the Microsoft Graph REST face under
//! `/beta` (`rest`).
//!
//! The transports read requests, authenticate the caller, apply the rate
//! limits (`admission`, with `service::rate_limit`) and write responses; GraphQL execution,
//! its checks and its error codes are the `graphql` pipeline's.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Authenticator;
use crate::auth::dev::DevTokens;
use crate::graphql::Pipeline;
use crate::graphql::limits::OperationLimits;
use crate::service::Services;
use crate::service::rate_limit::RateLimits;
use crate::telemetry;

pub(crate) mod admission;
mod assets;
pub(crate) mod graphql;
pub(crate) mod observe;
mod pages;
pub(crate) mod rest;
pub(crate) mod ws;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct HttpState {
    /// The GraphQL API: what both transports run operations through.
    pub graphql: Arc<Pipeline>,
    pub services: Arc<Services>,
    pub auth: Arc<Authenticator>,
    /// Mints the development token the pages pre-fill; none with a real issuer.
    pub dev_tokens: Option<Arc<DevTokens>>,
    pub ws: Arc<ws::WsOptions>,
    /// Open WebSocket connections.
    pub ws_connections: Arc<AtomicUsize>,
    /// WebSocket connections that have not sent `connection_init` yet.
    pub ws_pending: Arc<ws::PendingSockets>,
    /// Canceled when the gateway stops: WebSocket connections close then.
    pub stop: CancellationToken,
    /// What the Graph REST face needs besides.
    pub rest: Arc<rest::RestOptions>,
}

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest request body accepted, in bytes; larger ones are refused (413)
    /// without being read whole.
    pub max_body_bytes: usize,
    pub limits: OperationLimits,
    pub rate_limits: RateLimits,
    /// The deadline of one request (a subscription's start, over WebSocket).
    pub request_timeout: Duration,
    /// Origins allowed by CORS; none by default. `*` allows any origin, never
    /// with credentials (tokens travel in headers, not cookies).
    pub cors_origins: Vec<String>,
    /// The absolute URL clients reach the gateway at (scheme, host, port,
    /// any path prefix), for the links of the Graph face.
    pub public_url: Option<String>,
    /// Request headers CORS allows; empty: [`DEFAULT_CORS_ALLOWED_HEADERS`].
    pub cors_allowed_headers: Vec<String>,
}

/// The request headers CORS allows unless told otherwise: the token, the
/// body's and the response's types, Graph's `client-request-id`, and W3C
/// trace context, so a browser
/// client can carry its trace into the gateway.
pub(crate) const DEFAULT_CORS_ALLOWED_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "accept",
    "client-request-id",
    "traceparent",
    "tracestate",
];

impl HttpOptions {
    /// The defaults, also those of the command line.
    pub(crate) const DEFAULT: HttpOptions = HttpOptions {
        max_body_bytes: 1024 * 1024,
        limits: OperationLimits::DEFAULT,
        rate_limits: RateLimits::DEFAULT,
        request_timeout: Duration::from_secs(30),
        cors_origins: Vec::new(),
        public_url: None,
        cors_allowed_headers: Vec::new(),
    };
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions::DEFAULT
    }
}

/// The router of the gateway; with `metrics`, it serves `/metrics` too
/// (else [`metrics_router`] does, on an address of its own).
pub(crate) fn router(
    state: HttpState,
    options: &HttpOptions,
    metrics: bool,
) -> Result<Router, String> {
    let mut api = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/graphql/ws", get(ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if metrics {
        api = api.route("/metrics", get(self::metrics));
    }
    let api = api
        .merge(rest::routes())
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(state.clone());
    let api = match cors(&options.cors_origins, &options.cors_allowed_headers)? {
        Some(cors) => api.layer(cors),
        None => api,
    };
    Ok(api
        .merge(pages::router(state))
        .layer(axum::middleware::from_fn(observe::access_log)))
}

/// The router of `--metrics-listen`: `/metrics` only.
pub(crate) fn metrics_router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(axum::middleware::from_fn(observe::access_log))
}

/// The CORS layer for the allowed origins, if any are.
fn cors(origins: &[String], headers: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let parsed = origins
            .iter()
            .map(|o| HeaderValue::from_str(o).map_err(|_| format!("'{o}' is not an origin")))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(parsed)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(allowed_headers(headers)?)
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                rest::errors::REQUEST_ID,
                rest::errors::CLIENT_REQUEST_ID,
            ])
            .allow_credentials(false)
            .max_age(Duration::from_secs(600)),
    ))
}

/// The allowed request headers, checked.
fn allowed_headers(headers: &[String]) -> Result<Vec<HeaderName>, String> {
    let named: Vec<&str> = if headers.is_empty() {
        DEFAULT_CORS_ALLOWED_HEADERS.to_vec()
    } else {
        headers.iter().map(String::as_str).collect()
    };
    named
        .into_iter()
        .map(|h| {
            HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("'{h}' is not a header name (--cors-allowed-headers)"))
        })
        .collect()
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// How long `/readyz` waits for the database: a load balancer's probe
/// should hear "not ready" well before its own timeout, not after the
/// pool's.
const READINESS_TIMEOUT: Duration = Duration::from_secs(1);

/// The process can serve: the database answers, within [`READINESS_TIMEOUT`].
async fn readyz(State(state): State<HttpState>) -> Response {
    match tokio::time::timeout(READINESS_TIMEOUT, state.services.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err.for_log(), "readiness check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => {
            tracing::warn!(timeout = ?READINESS_TIMEOUT, "readiness check: the database did not answer in time");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// Every metric in the Prometheus text format (see `telemetry::metrics`).
async fn metrics(State(state): State<HttpState>) -> Response {
    let (in_use, idle, max) = state.services.store.pool_state();
    telemetry::metrics::db_pool(in_use, idle, max);
    let body = telemetry::metrics::render();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
