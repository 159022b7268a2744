//! The browser pages: GraphiQL at `/`, the dashboard at `/dashboard`, the
//! settings they read at `/ui/settings`, and their embedded files under
//! `/assets`.
//!
//! The pages hold no inline script or style, so their Content-Security-Policy
//! allows scripts and styles from the gateway alone (and, on GraphiQL, the one
//! style element its menus add, by a nonce). The development token is
//! not written into a page: each page load asks `/ui/settings`, which mints a
//! fresh one when the development key is in use (and names none otherwise),
//! so a page reloaded two days later still works.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::json;

use super::HttpState;
use super::assets::{self, Assets};

/// Where the pages read their settings.
pub(crate) const SETTINGS_PATH: &str = "/ui/settings";

/// GraphiQL's policy, with `{nonce}` for the page's nonce. Its stylesheet
/// carries its fonts and a few images as `data:` URLs, hence `data:` for fonts
/// and images; its dialogs and menus add a `<style>` element at run time
/// (a scroll lock), allowed by the nonce and nothing broader.
const GRAPHIQL_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's policy: everything from the gateway, nothing inline.
/// `connect-src 'self'` covers the WebSocket on the same host and port.
const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// A page, rendered once with this build's asset URLs.
struct Page {
    html: String,
    etag: HeaderValue,
    csp: &'static str,
}

impl Page {
    fn render(template: &str, csp: &'static str) -> Page {
        let html = template.replace("{{assets}}", &Assets::get().base());
        let etag = assets::etag_of(html.as_bytes());
        Page { html, etag, csp }
    }

    /// The page, or 304 when the browser has it; always with the security
    /// headers. `no-cache`: the browser asks again each time, so a new build's
    /// asset URLs are picked up at once.
    fn respond(&self, request: &HeaderMap) -> Response {
        let mut headers = page_headers(self.csp.to_owned());
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::ETAG, self.etag.clone());
        if assets::none_match(request, &self.etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        (headers, self.html.clone()).into_response()
    }

    /// The page with a fresh nonce in its `{{nonce}}` places and its policy;
    /// never cached, since no two responses are alike.
    fn respond_with_nonce(&self) -> Response {
        let mut bytes = [0u8; 18];
        if aws_lc_rs::rand::fill(&mut bytes).is_err() {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        let nonce = base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut headers = page_headers(self.csp.replace("{nonce}", &nonce));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        (headers, self.html.replace("{{nonce}}", &nonce)).into_response()
    }
}

/// The headers of an HTML page with policy `csp`.
fn page_headers(csp: String) -> HeaderMap {
    let mut headers = security_headers();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).expect("a policy is a header value"),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers
}

static GRAPHIQL: LazyLock<Page> =
    LazyLock::new(|| Page::render(include_str!("../../web/graphiql/index.html"), GRAPHIQL_CSP));
static DASHBOARD: LazyLock<Page> = LazyLock::new(|| {
    Page::render(
        include_str!("../../web/dashboard/index.html"),
        DASHBOARD_CSP,
    )
});

/// The routes of the pages. They are mounted outside the CORS layer: no other
/// origin has any business reading them, least of all the settings.
pub(crate) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/", get(graphiql))
        .route("/dashboard", get(dashboard))
        .route(SETTINGS_PATH, get(settings))
        .route(
            &format!("{}/{{version}}/{{*path}}", assets::ASSETS_PREFIX),
            get(assets::serve),
        )
        .with_state(state)
}

async fn graphiql() -> Response {
    GRAPHIQL.respond_with_nonce()
}

async fn dashboard(request: HeaderMap) -> Response {
    DASHBOARD.respond(&request)
}

/// `GET /ui/settings`: the endpoints, and a development token minted now
/// when the development key is in use (else `null`). Never cached. A browser
/// request from another site is refused (`Sec-Fetch-Site`), so a page
/// elsewhere cannot read the development token even when CORS is open.
async fn settings(State(state): State<HttpState>, request: HeaderMap) -> Response {
    let mut headers = security_headers();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let site = request
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    if !matches!(site, "same-origin" | "none") {
        return (StatusCode::FORBIDDEN, headers, "cross-site request refused").into_response();
    }
    let dev_token = match state.dev_tokens.as_deref().map(|tokens| tokens.mint()) {
        Some(Ok(token)) => Some(token),
        Some(Err(err)) => {
            tracing::error!(error = %err, "minting a development token");
            return (StatusCode::INTERNAL_SERVER_ERROR, headers).into_response();
        }
        None => None,
    };
    let body = json!({
        "graphqlPath": "/graphql",
        "websocketPath": "/graphql/ws",
        "devToken": dev_token,
    });
    (headers, axum::Json(body)).into_response()
}

/// What every page and settings response carries.
fn security_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // For browsers older than `frame-ancestors`.
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
}
