//! The HTTP surface: `/graphql` (POST, and GET for queries), GraphiQL at `/`,
//! `/healthz`, `/readyz` and `/metrics`. GraphQL execution itself lives in
//! `graphql`; this module only moves requests in and responses out.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::graphql::{ActionSchema, Services};

pub mod graphql;
pub mod ws;

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub schema: ActionSchema,
    pub services: Arc<Services>,
    pub auth: Arc<Authenticator>,
    /// The GraphiQL page, rendered once.
    pub graphiql: Arc<str>,
    pub ws: Arc<ws::WsOptions>,
    /// Open WebSocket connections.
    pub ws_connections: Arc<AtomicUsize>,
    /// Canceled when the gateway stops: WebSocket connections close then.
    pub stop: CancellationToken,
}

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// The GraphiQL page; its settings object is filled in at start.
const GRAPHIQL_HTML: &str = include_str!("graphiql.html");
const SETTINGS_START: &str = "/*ACTIONGATE_SETTINGS*/";
const SETTINGS_END: &str = "/*END*/";

/// Renders GraphiQL, with the Authorization header filled in when a
/// development token is at hand (in the headers editor, and in the WebSocket's
/// `connection_init` for subscriptions).
pub fn graphiql_page(dev_token: Option<&str>) -> String {
    let settings = serde_json::json!({
        "authorization": dev_token.map(|t| format!("Bearer {t}")),
    });
    // JSON inside a <script>: escape what could end the element.
    let settings = settings.to_string().replace('<', "\\u003c");
    let start = GRAPHIQL_HTML
        .find(SETTINGS_START)
        .expect("the page has its settings marker");
    let end = GRAPHIQL_HTML
        .find(SETTINGS_END)
        .expect("the page has its settings end marker")
        + SETTINGS_END.len();
    format!(
        "{}{settings}{}",
        &GRAPHIQL_HTML[..start],
        &GRAPHIQL_HTML[end..]
    )
}

/// The router of the gateway.
pub fn router(state: HttpState, options: &HttpOptions) -> Router {
    Router::new()
        .route("/", get(graphiql))
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/graphql/ws", get(ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(state)
}

async fn graphiql(State(state): State<HttpState>) -> Html<String> {
    Html(state.graphiql.to_string())
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// The process can serve: the database answers.
async fn readyz(State(state): State<HttpState>) -> Response {
    match state.services.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(err) => {
            tracing::warn!(error = ?err, "readiness check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// Counters in the Prometheus text format.
async fn metrics(State(state): State<HttpState>) -> Response {
    let body = format!(
        "# HELP actiongate_db_queries_total Database statements executed.\n\
         # TYPE actiongate_db_queries_total counter\n\
         actiongate_db_queries_total {}\n",
        state.services.store.queries_executed()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
