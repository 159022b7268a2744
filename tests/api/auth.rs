//! Token verification: keys, algorithms, claims and roles, and the attacks a
//! gateway must refuse.

use std::path::PathBuf;

use actiongate::{READ_ROLE, READ_WRITE_ROLE, TokenKeys};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{Backend, TEST_SECRET, TestApp, assert_no_errors, error_code, token_with};

const QUERY: &str = "{ actionCounts { count } }";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

fn claims(extra: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "tid": "tenant-a", "appid": "app-1", "upn": "alice@example.com",
        "roles": [READ_WRITE_ROLE], "iat": now, "exp": now + 600,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-private.pem")).unwrap()).unwrap()
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(&std::fs::read(fixture("ec-private.pem")).unwrap()).unwrap()
}

fn hs_key(secret: &[u8]) -> EncodingKey {
    EncodingKey::from_secret(secret).unwrap()
}

/// Sends QUERY with `token` and returns the HTTP status and the body.
async fn call(app: &TestApp, token: Option<&str>) -> (u16, Value) {
    let response = app.post_graphql(token, json!({ "query": QUERY })).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn assert_refused(app: &TestApp, token: Option<&str>, why: &str) {
    let (status, body) = call(app, token).await;
    assert_eq!(status, 401, "{why}: {body}");
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{why}");
    assert!(body.get("data").is_none(), "{why}: nothing executes");
}

async fn assert_accepted(app: &TestApp, token: &str, why: &str) {
    let (status, body) = call(app, Some(token)).await;
    assert_eq!(status, 200, "{why}: {body}");
    assert_no_errors(&body);
}

async fn missing_or_malformed_tokens_are_refused_with_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_refused(&app, None, "no Authorization header").await;
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")
        .json(&json!({"query": QUERY}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_refused(&app, Some("not-a-jwt"), "garbage").await;
}

async fn token_attacks_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = TEST_SECRET.as_bytes();
    let good = sign(Algorithm::HS256, None, &hs_key(secret), &claims(json!({})));
    assert_accepted(&app, &good, "a good token").await;

    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(json!({})).to_string());
    assert_refused(&app, Some(&format!("{header}.{payload}.")), "alg none").await;

    let now = chrono::Utc::now().timestamp();
    let expired = sign(
        Algorithm::HS256,
        None,
        &hs_key(secret),
        &claims(json!({"exp": now - 120})),
    );
    assert_refused(&app, Some(&expired), "expired").await;
    let not_yet = sign(
        Algorithm::HS256,
        None,
        &hs_key(secret),
        &claims(json!({"nbf": now + 3600})),
    );
    assert_refused(&app, Some(&not_yet), "nbf in the future").await;
    let no_exp = sign(
        Algorithm::HS256,
        None,
        &hs_key(secret),
        &claims(json!({"exp": null})),
    );
    assert_refused(&app, Some(&no_exp), "no exp").await;
    let wrong_secret = sign(
        Algorithm::HS256,
        None,
        &hs_key(b"another-secret-another-secret-0123"),
        &claims(json!({})),
    );
    assert_refused(&app, Some(&wrong_secret), "signed with another secret").await;
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_refused(&app, Some(&tampered), "bad signature").await;
    let (head, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged_payload = URL_SAFE_NO_PAD.encode(claims(json!({"tid": "tenant-b"})).to_string());
    assert_refused(
        &app,
        Some(&format!("{head}.{forged_payload}.{signature}")),
        "payload swapped",
    )
    .await;
    let rs256 = sign(Algorithm::RS256, None, &rsa_key(), &claims(json!({})));
    assert_refused(&app, Some(&rs256), "RS256 where HS256 is configured").await;
    let no_tenant = sign(
        Algorithm::HS256,
        None,
        &hs_key(secret),
        &claims(json!({"tid": null})),
    );
    assert_refused(&app, Some(&no_tenant), "no tid").await;
    let no_app = sign(
        Algorithm::HS256,
        None,
        &hs_key(secret),
        &claims(json!({"appid": null})),
    );
    assert_refused(&app, Some(&no_app), "no appid or azp").await;
    let azp = sign(
        Algorithm::HS256,
        None,
        &hs_key(secret),
        &claims(json!({"appid": null, "azp": "app-9"})),
    );
    assert_accepted(&app, &azp, "azp stands for appid").await;
}

async fn an_hs256_token_signed_with_the_rsa_public_key_is_refused(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| c.token_keys = TokenKeys::PublicKey(fixture("rsa-public.pem")))
        .spawn()
        .await;
    let rs256 = sign(Algorithm::RS256, None, &rsa_key(), &claims(json!({})));
    assert_accepted(&app, &rs256, "RS256 with the configured key").await;

    let public_pem = std::fs::read(fixture("rsa-public.pem")).unwrap();
    let confused = sign(
        Algorithm::HS256,
        None,
        &hs_key(&public_pem),
        &claims(json!({})),
    );
    assert_refused(&app, Some(&confused), "HS256 keyed with the RSA public key").await;
    let es256 = sign(Algorithm::ES256, None, &ec_key(), &claims(json!({})));
    assert_refused(&app, Some(&es256), "ES256 where RS256 is configured").await;
}

async fn es256_public_keys_verify_es256_tokens(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| c.token_keys = TokenKeys::PublicKey(fixture("ec-public.pem")))
        .spawn()
        .await;
    let es256 = sign(Algorithm::ES256, None, &ec_key(), &claims(json!({})));
    assert_accepted(&app, &es256, "ES256 with the configured key").await;
    let rs256 = sign(Algorithm::RS256, None, &rsa_key(), &claims(json!({})));
    assert_refused(&app, Some(&rs256), "RS256 where ES256 is configured").await;
}

async fn a_jwks_chooses_the_key_by_kid(backend: Backend) {
    let jwks = fixture("jwks.json").display().to_string();
    let app = TestApp::builder(backend)
        .configure(move |c| c.token_keys = TokenKeys::Jwks(jwks))
        .spawn()
        .await;
    let rsa = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &rsa_key(),
        &claims(json!({})),
    );
    let ec = sign(
        Algorithm::ES256,
        Some("ec-1"),
        &ec_key(),
        &claims(json!({})),
    );
    assert_accepted(&app, &rsa, "RS256 by kid rsa-1").await;
    assert_accepted(&app, &ec, "ES256 by kid ec-1").await;
    let wrong_kid = sign(
        Algorithm::RS256,
        Some("ec-1"),
        &rsa_key(),
        &claims(json!({})),
    );
    assert_refused(&app, Some(&wrong_kid), "RS256 naming the EC key").await;
    let unknown = sign(
        Algorithm::RS256,
        Some("rsa-9"),
        &rsa_key(),
        &claims(json!({})),
    );
    assert_refused(&app, Some(&unknown), "unknown kid").await;
    let no_kid = sign(Algorithm::RS256, None, &rsa_key(), &claims(json!({})));
    assert_refused(&app, Some(&no_kid), "no kid with several keys").await;
    let symmetric = sign(
        Algorithm::HS256,
        Some("odd-1"),
        &hs_key(b"secret"),
        &claims(json!({})),
    );
    assert_refused(
        &app,
        Some(&symmetric),
        "the symmetric key of the set is never used",
    )
    .await;
}

async fn issuer_and_audience_are_checked_when_configured(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| {
            c.jwt_issuer = Some("https://login.example/tenant/v2.0".into());
            c.jwt_audience = Some("api://actiongate".into());
        })
        .spawn()
        .await;
    let key = hs_key(TEST_SECRET.as_bytes());
    let right = json!({"iss": "https://login.example/tenant/v2.0", "aud": "api://actiongate"});
    assert_accepted(
        &app,
        &sign(Algorithm::HS256, None, &key, &claims(right)),
        "right iss and aud",
    )
    .await;
    let cases = [
        (
            json!({"iss": "https://evil.example", "aud": "api://actiongate"}),
            "wrong issuer",
        ),
        (
            json!({"iss": "https://login.example/tenant/v2.0", "aud": "api://other"}),
            "wrong audience",
        ),
        (json!({"aud": "api://actiongate"}), "no issuer"),
        (
            json!({"iss": "https://login.example/tenant/v2.0"}),
            "no audience",
        ),
    ];
    for (extra, why) in cases {
        assert_refused(
            &app,
            Some(&sign(Algorithm::HS256, None, &key, &claims(extra))),
            why,
        )
        .await;
    }
}

async fn roles_decide_what_a_valid_token_may_do(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mutation = json!({"query": "mutation { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: \"1.2.3.4\"}]}) { id } }"});
    let none = token_with("tenant-a", "app-1", "u", &[]);
    let read = token_with("tenant-a", "app-1", "u", &[READ_ROLE]);
    let other = token_with("tenant-a", "app-1", "u", &["SecurityEvents.Read.All"]);

    for (token, why) in [(&none, "no roles"), (&other, "an unrelated role")] {
        let (status, body) = call(&app, Some(token)).await;
        assert_eq!(status, 200, "{why}: a valid token is authenticated");
        assert_eq!(error_code(&body), "FORBIDDEN", "{why}");
    }
    let (_, body) = call(&app, Some(&read)).await;
    assert_no_errors(&body);
    let body: Value = app
        .post_graphql(Some(&read), mutation.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(error_code(&body), "FORBIDDEN");
    let write = token_with("tenant-a", "app-1", "u", &[READ_WRITE_ROLE]);
    let body: Value = app
        .post_graphql(Some(&write), mutation)
        .await
        .json()
        .await
        .unwrap();
    assert_no_errors(&body);
}

crate::on_both_backends!(
    missing_or_malformed_tokens_are_refused_with_401,
    token_attacks_are_refused,
    an_hs256_token_signed_with_the_rsa_public_key_is_refused,
    es256_public_keys_verify_es256_tokens,
    a_jwks_chooses_the_key_by_kid,
    issuer_and_audience_are_checked_when_configured,
    roles_decide_what_a_valid_token_may_do,
);
