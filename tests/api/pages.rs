//! The browser pages over HTTP: their security headers, the embedded files
//! (every one served, with its type, ETag and a year of cache), no external
//! host in any page, the vendored files as their manifest says, and the
//! settings with the development token.

use std::path::{Path, PathBuf};

use actiongate::TokenKeys;
use aws_lc_rs::digest::{SHA256, digest};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_no_errors};

const PAGES: [&str; 2] = ["/", "/dashboard"];

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web")
}

fn hex_sha256(bytes: &[u8]) -> String {
    digest(&SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// The values of `attribute="…"` in `html`.
fn attribute_values<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let needle = format!("{attribute}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            &rest[..rest.find('"').expect("a closed attribute")]
        })
        .collect()
}

/// The files a page can load: everything under `web/` but the page
/// templates, the vendoring script and manifest, and the licenses.
fn servable_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let path = format!("{prefix}{name}");
        if entry.file_type().unwrap().is_dir() {
            if name != "licenses" {
                servable_files(&entry.path(), &format!("{path}/"), out);
            }
        } else if !matches!(name.as_str(), "index.html" | "update.mjs" | "manifest.json") {
            out.push(path);
        }
    }
}

async fn the_pages_carry_a_strict_policy_and_name_no_other_host(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for page in PAGES {
        let response = app.client.get(app.url(page)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{page}");
        let headers = response.headers().clone();
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
        let csp = header(&headers, "content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{page}: {directive} not in {csp}");
        }
        for loosening in ["unsafe-inline", "unsafe-eval", "http:", "https:", "*"] {
            assert!(!csp.contains(loosening), "{page}: {loosening} in {csp}");
        }
        let html = response.text().await.unwrap();
        assert!(!html.contains("://"), "{page} names a host:\n{html}");
        let urls: Vec<&str> = ["src", "href"]
            .iter()
            .flat_map(|a| attribute_values(&html, a))
            .collect();
        assert!(!urls.is_empty());
        for url in urls {
            assert!(
                url.starts_with('/') && !url.starts_with("//"),
                "{page} loads {url} from elsewhere"
            );
        }
        // No inline script: every <script> has a src.
        assert_eq!(
            html.matches("<script").count(),
            attribute_values(&html, "src")
                .iter()
                .filter(|u| u.ends_with(".js"))
                .count(),
            "{page} has an inline script"
        );
    }
}

async fn graphiql_gets_a_new_style_nonce_on_every_load(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let response = app.client.get(app.url("/")).send().await.unwrap();
        assert_eq!(header(response.headers(), "cache-control"), "no-store");
        let csp = header(response.headers(), "content-security-policy").to_owned();
        let html = response.text().await.unwrap();
        let nonce = attribute_values(&html, "nonce")[0].to_owned();
        assert!(nonce.len() >= 16, "{nonce}");
        assert!(
            csp.contains(&format!("style-src 'self' 'nonce-{nonce}'")),
            "{csp}"
        );
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1]);
}

async fn every_embedded_file_is_served_with_its_type_an_etag_and_a_year_of_cache(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dashboard = app.get_text("/dashboard").await;
    let base = attribute_values(&dashboard, "href")
        .into_iter()
        .find_map(|href| href.strip_suffix("/icon.svg"))
        .expect("the dashboard links the icon")
        .to_owned();
    assert!(base.starts_with("/assets/"), "{base}");

    let mut files = Vec::new();
    servable_files(&web_dir(), "", &mut files);
    assert!(files.len() > 10, "{files:?}");
    for file in &files {
        let bytes = std::fs::read(web_dir().join(file)).unwrap();
        let url = app.url(&format!("{base}/{file}"));
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{file} is not served");
        let headers = response.headers().clone();
        let expected_type = match file.rsplit_once('.').unwrap().1 {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("a file of an unexpected kind: {other}"),
        };
        assert_eq!(header(&headers, "content-type"), expected_type, "{file}");
        assert_eq!(
            header(&headers, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        let etag = header(&headers, "etag").to_owned();
        assert_eq!(etag, format!("\"{}\"", hex_sha256(&bytes)), "{file}");
        assert_eq!(
            response.bytes().await.unwrap().as_ref(),
            bytes.as_slice(),
            "{file}"
        );

        let again = app
            .client
            .get(&url)
            .header("if-none-match", HeaderValue::from_str(&etag).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{file}");
        assert_eq!(header(again.headers(), "etag"), etag);
        assert!(again.bytes().await.unwrap().is_empty());
    }

    // Another build's URLs and unknown files are not found.
    let other_build = app
        .url("/assets/0000000000000000/dashboard/main.js")
        .to_string();
    assert_eq!(
        app.client.get(other_build).send().await.unwrap().status(),
        404
    );
    let unknown = app.url(&format!("{base}/vendor/manifest.json"));
    assert_eq!(app.client.get(unknown).send().await.unwrap().status(), 404);
}

async fn the_dashboard_page_is_revalidated_with_its_etag(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.client.get(app.url("/dashboard")).send().await.unwrap();
    assert_eq!(header(first.headers(), "cache-control"), "no-cache");
    let etag = header(first.headers(), "etag").to_owned();
    let again = app
        .client
        .get(app.url("/dashboard"))
        .header("if-none-match", etag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(header(again.headers(), "content-security-policy").contains("default-src 'self'"));
}

#[test]
fn the_vendored_files_are_those_of_their_manifest() {
    let vendor = web_dir().join("vendor");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(vendor.join("manifest.json")).unwrap()).unwrap();
    let packages = manifest["packages"].as_array().unwrap();
    assert!(!packages.is_empty());
    for package in packages {
        assert!(package["version"].as_str().is_some_and(|v| !v.is_empty()));
        assert!(
            package["integrity"]
                .as_str()
                .is_some_and(|i| i.starts_with("sha512-"))
        );
        for file in package["files"].as_array().unwrap() {
            let path = vendor.join(file["to"].as_str().unwrap());
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                file["sha256"].as_str().unwrap(),
                hex_sha256(&bytes),
                "{} differs from its manifest",
                path.display()
            );
        }
    }
}

async fn settings_mint_a_fresh_development_token_and_none_with_a_real_key(backend: Backend) {
    let development = TestApp::builder(backend.clone())
        .configure(|c| {
            c.token_keys = TokenKeys::Development;
            c.http.cors_origins = vec!["*".into()];
        })
        .spawn()
        .await;
    let response = development
        .client
        .get(development.url("/ui/settings"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(response.headers(), "cache-control"), "no-store");
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let settings: Value = response.json().await.unwrap();
    assert_eq!(settings["graphqlPath"], "/graphql");
    assert_eq!(settings["websocketPath"], "/graphql/ws");
    let token = settings["devToken"].as_str().expect("a development token");
    let body = development
        .gql(token, "{ actionCounts { status count } }", json!({}))
        .await;
    assert_no_errors(&body);

    // A page of another site may not read it, even with CORS open.
    let cross_site = development
        .client
        .get(development.url("/ui/settings"))
        .header("origin", "https://elsewhere.example")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert!(!cross_site.text().await.unwrap().contains("eyJ"));

    let real_key = TestApp::spawn(backend).await;
    let settings: Value = real_key
        .client
        .get(real_key.url("/ui/settings"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["devToken"], Value::Null);
}

crate::on_both_backends!(
    the_pages_carry_a_strict_policy_and_name_no_other_host,
    graphiql_gets_a_new_style_nonce_on_every_load,
    every_embedded_file_is_served_with_its_type_an_etag_and_a_year_of_cache,
    the_dashboard_page_is_revalidated_with_its_etag,
    settings_mint_a_fresh_development_token_and_none_with_a_real_key,
);
