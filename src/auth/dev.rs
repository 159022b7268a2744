//! The development key and token minting.
//!
//! When no issuer is configured, the gateway keeps a random HS256 secret in
//! `<data-dir>/dev-jwt-secret` (mode 0600) and mints a ready token with it, so
//! that a fresh `cargo run` can be queried at once. `actiongate token` mints
//! tokens with the same secret, or with `--jwt-secret`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::{READ_ROLE, READ_WRITE_ROLE};

/// The file that holds the development secret, under the data directory.
pub(crate) const DEV_SECRET_FILE: &str = "dev-jwt-secret";

/// The tenant, app and user of the development token, and the defaults of
/// `actiongate token`.
pub const DEV_TENANT: &str = "dev-tenant";
pub(crate) const DEV_APP: &str = "dev-app";
pub(crate) const DEV_USER: &str = "dev-user";

/// What a minted token says.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub tenant: String,
    pub app: String,
    pub user: String,
    /// Full role names.
    pub roles: Vec<String>,
    pub ttl: Duration,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl TokenSpec {
    /// The token printed at start: tenant `dev-tenant`, read and write.
    pub(crate) fn development() -> TokenSpec {
        TokenSpec {
            tenant: DEV_TENANT.into(),
            app: DEV_APP.into(),
            user: DEV_USER.into(),
            roles: vec![READ_WRITE_ROLE.into()],
            ttl: Duration::from_secs(24 * 3600),
            issuer: None,
            audience: None,
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    tid: &'a str,
    appid: &'a str,
    sub: &'a str,
    upn: &'a str,
    roles: &'a [String],
    iat: i64,
    nbf: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// Mints an HS256 token.
pub fn mint(secret: &[u8], spec: &TokenSpec) -> Result<String, String> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        tid: &spec.tenant,
        appid: &spec.app,
        sub: &spec.user,
        upn: &spec.user,
        roles: &spec.roles,
        iat: now,
        nbf: now,
        exp: now + spec.ttl.as_secs() as i64,
        iss: spec.issuer.as_deref(),
        aud: spec.audience.as_deref(),
    };
    let key = EncodingKey::from_secret(secret).map_err(|e| e.to_string())?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(|e| e.to_string())
}

/// Reads the development secret under `data_dir`, creating it (0600) if absent.
pub fn load_or_create_dev_secret(data_dir: &Path) -> std::io::Result<Vec<u8>> {
    let path: PathBuf = data_dir.join(DEV_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => STANDARD
            .decode(text.trim())
            .map_err(|_| std::io::Error::other(format!("{} is not base64", path.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let mut secret = vec![0u8; 32];
            aws_lc_rs::rand::fill(&mut secret)
                .map_err(|_| std::io::Error::other("no randomness"))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(&path) {
                Ok(mut file) => {
                    file.write_all(STANDARD.encode(&secret).as_bytes())?;
                    file.sync_all()?;
                    Ok(secret)
                }
                // Another process created it first: use theirs.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_dev_secret(data_dir)
                }
                Err(err) => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}

/// Parses a token lifetime such as `90s`, `30m`, `1h` or `7d`.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = crate::domain::time::parse_duration(text)?;
    if ttl < Duration::from_secs(1) {
        return Err("a lifetime is at least one second".into());
    }
    Ok(ttl)
}

/// The full role name for `read`, `write`/`readwrite`, or a full name.
pub fn role_name(text: &str) -> Result<String, String> {
    match text.to_ascii_lowercase().as_str() {
        "read" => Ok(READ_ROLE.into()),
        "write" | "readwrite" => Ok(READ_WRITE_ROLE.into()),
        _ if text == READ_ROLE || text == READ_WRITE_ROLE => Ok(text.into()),
        _ => Err(format!(
            "unknown role '{text}': use read, readwrite, {READ_ROLE} or {READ_WRITE_ROLE}"
        )),
    }
}

/// Mints development tokens on demand, so that a page loaded tomorrow gets a
/// token valid from tomorrow rather than the one minted at start.
#[derive(Clone)]
pub(crate) struct DevTokens {
    secret: Vec<u8>,
    spec: TokenSpec,
}

impl DevTokens {
    pub(crate) fn new(secret: Vec<u8>, spec: TokenSpec) -> DevTokens {
        DevTokens { secret, spec }
    }

    /// A fresh token of the development spec.
    pub(crate) fn mint(&self) -> Result<String, String> {
        mint(&self.secret, &self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_with_units() {
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("10ms").is_err());
        assert!(parse_ttl("5y").is_err());
        assert!(parse_ttl("0m").is_err());
    }

    #[test]
    fn role_shorthands_expand() {
        assert_eq!(role_name("read").unwrap(), READ_ROLE);
        assert_eq!(role_name("ReadWrite").unwrap(), READ_WRITE_ROLE);
        assert!(role_name("admin").is_err());
    }

    #[test]
    fn the_dev_secret_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_dev_secret(dir.path()).unwrap();
        let second = load_or_create_dev_secret(dir.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(DEV_SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
