//! Where token verification keys come from: an HS256 secret, a PEM public key,
//! or a JWKS (file or URL) whose keys are chosen by `kid` and refreshed when a
//! token names a key not seen yet.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};
use tracing::{info, warn};

/// Shortest HS256 secret accepted: RFC 7518 asks for a key as long as the hash.
pub(super) const MIN_SECRET_LEN: usize = 32;
/// A JWKS is fetched again at least this often.
const JWKS_MAX_AGE: Duration = Duration::from_secs(600);
/// An unknown `kid` fetches the JWKS again, but not more often than this, so
/// tokens with made-up key ids cannot turn the gateway into a fetch loop.
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);

/// One verification key and the single algorithm it is used with.
#[derive(Clone)]
struct VerifyKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The keys tokens are verified with.
pub(crate) struct KeySource(Keys);

enum Keys {
    /// Fixed keys: an HS256 secret or a PEM public key.
    Static(Vec<VerifyKey>),
    /// Keys of a JWKS, refreshed as needed.
    Jwks(Box<JwksSource>),
}

/// A JWKS document and when it was read.
struct JwksSource {
    location: JwksLocation,
    client: reqwest::Client,
    keys: RwLock<(Vec<VerifyKey>, Instant)>,
    refreshing: Mutex<()>,
}

enum JwksLocation {
    File(PathBuf),
    Url(String),
}

impl KeySource {
    /// An HS256 secret of at least [`MIN_SECRET_LEN`] bytes.
    pub(crate) fn hs256(secret: &[u8]) -> Result<KeySource, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the JWT secret must be at least {MIN_SECRET_LEN} bytes"
            ));
        }
        let key = DecodingKey::from_secret(secret).map_err(|e| e.to_string())?;
        Ok(KeySource(Keys::Static(vec![VerifyKey {
            kid: None,
            algorithm: Algorithm::HS256,
            key,
        }])))
    }

    /// An RSA (RS256) or P-256 (ES256) public key in PEM form.
    pub(crate) fn public_key_pem(pem: &[u8]) -> Result<KeySource, String> {
        let (algorithm, key) = if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            (Algorithm::ES256, key)
        } else if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            (Algorithm::RS256, key)
        } else {
            return Err("the public key file holds no RSA or EC public key in PEM form".into());
        };
        Ok(KeySource(Keys::Static(vec![VerifyKey {
            kid: None,
            algorithm,
            key,
        }])))
    }

    /// A JWKS at a file path or an http(s) URL, read now and again as needed.
    pub(crate) async fn jwks(location: &str) -> Result<KeySource, String> {
        let location = if location.starts_with("http://") || location.starts_with("https://") {
            JwksLocation::Url(location.to_owned())
        } else {
            JwksLocation::File(PathBuf::from(location))
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let keys = fetch_jwks(&location, &client).await?;
        Ok(KeySource(Keys::Jwks(Box::new(JwksSource {
            location,
            client,
            keys: RwLock::new((keys, Instant::now())),
            refreshing: Mutex::new(()),
        }))))
    }

    /// The key for a token with this `kid` and `alg`, or why there is none.
    pub(super) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(Algorithm, DecodingKey), String> {
        match &self.0 {
            Keys::Static(keys) => pick(keys, kid, alg),
            Keys::Jwks(jwks) => jwks.key_for(kid, alg).await,
        }
    }
}

impl JwksSource {
    async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(Algorithm, DecodingKey), String> {
        let (found, age) = {
            let guard = self.keys.read().await;
            (pick(&guard.0, kid, alg), guard.1.elapsed())
        };
        let stale = age > JWKS_MAX_AGE;
        let unknown_kid = matches!(&found, Err(reason) if reason.starts_with("unknown key"));
        if stale || (unknown_kid && age > JWKS_MIN_REFETCH) {
            self.refresh().await;
            return pick(&self.keys.read().await.0, kid, alg);
        }
        found
    }

    /// Reads the JWKS again; one refresh at a time, and a failed one keeps the
    /// keys there were.
    async fn refresh(&self) {
        let _one_at_a_time = self.refreshing.lock().await;
        if self.keys.read().await.1.elapsed() < JWKS_MIN_REFETCH {
            return; // another request refreshed meanwhile
        }
        match fetch_jwks(&self.location, &self.client).await {
            Ok(keys) => {
                info!(keys = keys.len(), "JWKS refreshed");
                *self.keys.write().await = (keys, Instant::now());
            }
            Err(reason) => {
                warn!(%reason, "JWKS refresh failed; keeping the keys read before");
                self.keys.write().await.1 = Instant::now();
            }
        }
    }
}

fn pick(
    keys: &[VerifyKey],
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<(Algorithm, DecodingKey), String> {
    let key = match kid {
        Some(kid) if keys.iter().any(|k| k.kid.is_some()) => keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or_else(|| "unknown key id".to_owned())?,
        _ => match keys {
            [only] => only,
            _ => return Err("unknown key: the token names no key id".to_owned()),
        },
    };
    if key.algorithm != alg {
        return Err("algorithm not allowed for this key".to_owned());
    }
    Ok((key.algorithm, key.key.clone()))
}

async fn fetch_jwks(
    location: &JwksLocation,
    client: &reqwest::Client,
) -> Result<Vec<VerifyKey>, String> {
    let text = match location {
        JwksLocation::File(path) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| format!("reading JWKS file {}: {e}", path.display()))?,
        JwksLocation::Url(url) => {
            let response = client
                .get(url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| format!("fetching JWKS: {e}"))?;
            response
                .text()
                .await
                .map_err(|e| format!("reading JWKS: {e}"))?
        }
    };
    parse_jwks(&text)
}

/// The usable keys of a JWKS document; keys of other types or algorithms are
/// skipped, so one odd key does not disable the others.
fn parse_jwks(text: &str) -> Result<Vec<VerifyKey>, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_str(text).map_err(|e| format!("malformed JWKS: {e}"))?;
    let keys: Vec<VerifyKey> = document
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| {
            let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                    if ec.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => return None,
            };
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some(VerifyKey {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            })
        })
        .collect();
    if keys.is_empty() {
        return Err("the JWKS holds no RS256 or ES256 key".into());
    }
    Ok(keys)
}
