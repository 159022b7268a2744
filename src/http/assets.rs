//! The browser files (GraphiQL, the dashboard, their vendored libraries),
//! embedded in the binary so the pages work on a network without internet.
//!
//! Every file is served under `/assets/<version>/<path>`, where `<version>` is
//! a hash of all the files together: a new build with any file changed has new
//! URLs, so the files can be cached for a year (`immutable`), and relative
//! `import`s between the dashboard's modules keep working. Each file also has
//! an ETag (its own SHA-256) for clients that revalidate anyway.

use std::collections::HashMap;
use std::sync::LazyLock;

use aws_lc_rs::digest::{Context, SHA256, digest};
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Where the assets are served; the version follows.
pub(crate) const ASSETS_PREFIX: &str = "/assets";

/// How long a browser may keep a versioned file without asking again.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Embeds `web/<path>`.
macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!("../../web/", $path)) as &[u8])),*]
    };
}

/// The served files, by path under `web/`. `web/vendor/manifest.json` says
/// where the vendored ones come from; a test checks that every file under
/// `web/` that a page can load is listed here.
const FILES: &[(&str, &[u8])] = embed!(
    "icon.svg",
    "vendor/react.production.min.js",
    "vendor/react-dom.production.min.js",
    "vendor/graphiql.min.js",
    "vendor/graphiql.min.css",
    "vendor/graphql-ws.min.js",
    "graphiql/boot.js",
    "graphiql/page.css",
    "dashboard/style.css",
    "dashboard/main.js",
    "dashboard/api.js",
    "dashboard/live.js",
    "dashboard/session.js",
    "dashboard/counts.js",
    "dashboard/actions.js",
    "dashboard/detail.js",
    "dashboard/invoke.js",
    "dashboard/format.js",
);

/// One embedded file.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    /// A strong ETag: the quoted hex SHA-256 of the bytes.
    etag: HeaderValue,
}

/// The embedded files and the version in their URLs.
pub(crate) struct Assets {
    version: String,
    by_path: HashMap<&'static str, Asset>,
}

/// Hashed on first use, not at start: most gateways in tests never serve a page.
static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets::new(FILES));

impl Assets {
    fn new(files: &[(&'static str, &'static [u8])]) -> Assets {
        let mut all = Context::new(&SHA256);
        let mut by_path = HashMap::new();
        for &(path, bytes) in files {
            let sum = hex(digest(&SHA256, bytes).as_ref());
            all.update(path.as_bytes());
            all.update(&[0]);
            all.update(sum.as_bytes());
            let etag = HeaderValue::from_str(&format!("\"{sum}\"")).expect("hex is a header value");
            by_path.insert(
                path,
                Asset {
                    bytes,
                    content_type: content_type(path),
                    etag,
                },
            );
        }
        let version = hex(all.finish().as_ref())[..16].to_owned();
        Assets { version, by_path }
    }

    /// The embedded files.
    pub(crate) fn get() -> &'static Assets {
        &ASSETS
    }

    /// The URL path under which the files of this build are served, e.g.
    /// `/assets/0123456789abcdef`.
    pub(crate) fn base(&self) -> String {
        format!("{ASSETS_PREFIX}/{}", self.version)
    }
}

/// `GET /assets/{version}/{*path}`. A version other than this build's is 404:
/// its URLs promise content this build does not have.
pub(crate) async fn serve(
    Path((version, path)): Path<(String, String)>,
    request: HeaderMap,
) -> Response {
    let assets = Assets::get();
    let asset = match assets.by_path.get(path.as_str()) {
        Some(asset) if version == assets.version => asset,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, asset.etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Only the gateway's own pages load these.
    headers.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if none_match(&request, &asset.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    (headers, Body::from(asset.bytes)).into_response()
}

/// Whether the request's `If-None-Match` names `etag` (weak comparison, as
/// RFC 9110 asks for this header), or is `*`.
pub(crate) fn none_match(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(wanted) = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let etag = etag.to_str().unwrap_or_default();
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    wanted.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// The quoted hex SHA-256 of `bytes`, as an ETag.
pub(crate) fn etag_of(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", hex(digest(&SHA256, bytes).as_ref())))
        .expect("hex is a header value")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The media type of a file, from its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let etag = HeaderValue::from_static("\"abc\"");
        assert!(none_match(&request_with("\"abc\""), &etag));
        assert!(none_match(&request_with("W/\"abc\""), &etag));
        assert!(none_match(&request_with("\"x\", \"abc\""), &etag));
        assert!(none_match(&request_with("*"), &etag));
        assert!(!none_match(&request_with("\"abd\""), &etag));
        assert!(!none_match(&HeaderMap::new(), &etag));
    }

    #[test]
    fn the_version_changes_with_any_file() {
        let one = Assets::new(&[("a.js", b"1"), ("b.css", b"2")]);
        let other = Assets::new(&[("a.js", b"1"), ("b.css", b"3")]);
        assert_ne!(one.version, other.version);
        assert_eq!(one.version.len(), 16);
        assert_eq!(one.by_path["b.css"].content_type, "text/css; charset=utf-8");
    }
}
