//! Bearer tokens → [`Principal`]: who calls, for which tenant, with which roles.
//!
//! Tokens are JWTs verified with `jsonwebtoken` against one key source (an HS256
//! secret, a PEM public key, or a JWKS). Each key is used with exactly one
//! algorithm, so neither `alg: none` nor an HS256 token signed with a public
//! RSA key can pass. `exp` is required, `nbf` checked, and `iss` / `aud` when
//! configured. The claims are those of Microsoft Entra ID access tokens.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::Validation;
use serde::Deserialize;

use crate::domain::action::Actor;
use crate::error::AppError;

pub(crate) mod dev;
mod keys;

pub(crate) use keys::KeySource;

/// The role that allows queries and subscriptions.
pub const READ_ROLE: &str = "SecurityActions.Read.All";
/// The role that allows everything.
pub const READ_WRITE_ROLE: &str = "SecurityActions.ReadWrite.All";

/// Longest tenant id, app id or user name accepted from a token.
const MAX_IDENTITY_LEN: usize = 256;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY: Duration = Duration::from_secs(30);

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// `tid`: the tenant every query and change is scoped by.
    pub tenant_id: String,
    /// `appid`, else `azp`.
    pub app_id: String,
    /// `upn`, `preferred_username`, `unique_name` or `sub`, the first present.
    pub user: String,
    pub can_read: bool,
    pub can_write: bool,
    /// When the token expires; subscriptions end then.
    pub expires_at: DateTime<Utc>,
}

impl Principal {
    /// The caller as the store sees it.
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            tenant_id: self.tenant_id.clone(),
            app_id: self.app_id.clone(),
            user: self.user.clone(),
        }
    }

    /// `FORBIDDEN` unless the token holds a role that allows reading.
    pub(crate) fn require_read(&self) -> Result<(), AppError> {
        if self.can_read || self.can_write {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the role {READ_ROLE} or {READ_WRITE_ROLE}"
            )))
        }
    }

    /// `FORBIDDEN` unless the token holds the role that allows changes.
    pub(crate) fn require_write(&self) -> Result<(), AppError> {
        if self.can_write {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the role {READ_WRITE_ROLE}"
            )))
        }
    }
}

/// What token validation checks besides the signature.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenRules {
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
}

/// Verifies bearer tokens.
pub(crate) struct Authenticator {
    keys: KeySource,
    rules: TokenRules,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Roles {
    Many(Vec<String>),
    One(String),
}

#[derive(Deserialize)]
struct Claims {
    tid: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    upn: Option<String>,
    preferred_username: Option<String>,
    unique_name: Option<String>,
    sub: Option<String>,
    roles: Option<Roles>,
    exp: i64,
}

impl Authenticator {
    pub(crate) fn new(keys: KeySource, rules: TokenRules) -> Authenticator {
        Authenticator { keys, rules }
    }

    /// Verifies the value of an `Authorization` header (`Bearer <JWT>`).
    pub(crate) async fn authenticate_header(
        &self,
        header: Option<&str>,
    ) -> Result<Principal, AppError> {
        let header = header.ok_or_else(|| {
            AppError::Unauthenticated("an Authorization: Bearer <token> header is required".into())
        })?;
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(AppError::Unauthenticated(
                    "the Authorization header must be 'Bearer <token>'".into(),
                ));
            }
        };
        self.authenticate(token).await
    }

    /// Verifies a bare JWT.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Principal, AppError> {
        let invalid = |reason: &str| AppError::Unauthenticated(format!("invalid token: {reason}"));
        if token.len() > 16 * 1024 {
            return Err(invalid("too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed header"))?;
        let (algorithm, key) = self
            .keys
            .key_for(header.kid.as_deref(), header.alg)
            .await
            .map_err(|reason| invalid(&reason))?;
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = LEEWAY.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        match &self.rules.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                validation.required_spec_claims.insert("iss".into());
            }
            None => validation.iss = None,
        }
        match &self.rules.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|err| {
            use jsonwebtoken::errors::ErrorKind;
            invalid(match err.kind() {
                ErrorKind::ExpiredSignature => "expired",
                ErrorKind::ImmatureSignature => "not valid yet",
                ErrorKind::InvalidIssuer => "wrong issuer",
                ErrorKind::InvalidAudience => "wrong audience",
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::InvalidAlgorithm => "algorithm not allowed for this key",
                ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                _ => "malformed",
            })
        })?;
        principal_from(data.claims)
    }
}

fn principal_from(claims: Claims) -> Result<Principal, AppError> {
    let identity = |name: &str, value: Option<String>| -> Result<String, AppError> {
        let value = value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AppError::Unauthenticated(format!("invalid token: no {name} claim")))?;
        if value.len() > MAX_IDENTITY_LEN || value.chars().any(char::is_control) {
            return Err(AppError::Unauthenticated(format!(
                "invalid token: malformed {name} claim"
            )));
        }
        Ok(value)
    };
    let roles = match claims.roles {
        Some(Roles::Many(roles)) => roles,
        Some(Roles::One(role)) => vec![role],
        None => Vec::new(),
    };
    Ok(Principal {
        tenant_id: identity("tid", claims.tid)?,
        app_id: identity("appid", claims.appid.or(claims.azp))?,
        user: identity(
            "user (upn, preferred_username, unique_name or sub)",
            claims
                .upn
                .or(claims.preferred_username)
                .or(claims.unique_name)
                .or(claims.sub),
        )?,
        can_read: roles.iter().any(|r| r == READ_ROLE),
        can_write: roles.iter().any(|r| r == READ_WRITE_ROLE),
        expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::dev::{TokenSpec, mint};

    fn authenticator(secret: &[u8]) -> Authenticator {
        Authenticator::new(KeySource::hs256(secret).unwrap(), TokenRules::default())
    }

    fn spec() -> TokenSpec {
        TokenSpec {
            tenant: "t1".into(),
            app: "app1".into(),
            user: "alice@example.com".into(),
            roles: vec![READ_WRITE_ROLE.into()],
            ttl: Duration::from_secs(600),
            issuer: None,
            audience: None,
        }
    }

    #[tokio::test]
    async fn a_minted_token_verifies_into_its_principal() {
        let secret = [7u8; 32];
        let token = mint(&secret, &spec()).unwrap();
        let principal = authenticator(&secret).authenticate(&token).await.unwrap();
        assert_eq!(principal.tenant_id, "t1");
        assert_eq!(principal.app_id, "app1");
        assert_eq!(principal.user, "alice@example.com");
        assert!(principal.can_write && !principal.can_read);
        assert!(principal.require_read().is_ok());
    }

    #[tokio::test]
    async fn a_token_signed_with_another_secret_is_refused() {
        let token = mint(&[1u8; 32], &spec()).unwrap();
        let err = authenticator(&[2u8; 32])
            .authenticate(&token)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "UNAUTHENTICATED");
    }

    #[tokio::test]
    async fn a_read_only_token_cannot_write() {
        let secret = [7u8; 32];
        let mut read_only = spec();
        read_only.roles = vec![READ_ROLE.into()];
        let principal = authenticator(&secret)
            .authenticate(&mint(&secret, &read_only).unwrap())
            .await
            .unwrap();
        assert_eq!(principal.require_write().unwrap_err().code(), "FORBIDDEN");
        assert!(principal.require_read().is_ok());
    }
}
