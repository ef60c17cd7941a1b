//! Bearer tokens in, verified [`Identity`] out.
//!
//! A token must be a JWT signed with a configured key and algorithm, carry `exp`, `iss`,
//! `aud`, `sub` and the tenant claim (default `tid`), with the configured issuer and
//! audience. The tenant claim must be a valid [`TenantSlug`]. Only HS256 with an explicitly
//! configured secret is supported so far; asymmetric keys and JWKS come with the tenancy
//! work.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::id::TenantSlug;

/// One trusted token issuer.
#[derive(Clone)]
pub struct IssuerConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// HS256 shared secret. HS256 is refused unless a secret is configured here.
    pub hs256_secret: Vec<u8>,
    /// Name of the claim that holds the tenant slug.
    pub tenant_claim: String,
}

impl std::fmt::Debug for IssuerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("hs256_secret", &"<redacted>")
            .field("tenant_claim", &self.tenant_claim)
            .finish()
    }
}

/// Who a verified token says is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tenant, from the tenant claim.
    pub tenant: TenantSlug,
    /// The `sub` claim.
    pub subject: String,
    /// The `roles` claim (empty when absent).
    pub roles: Vec<String>,
}

/// Why a token was refused. The messages are safe to show to the caller: they never
/// include the token.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("this endpoint needs a bearer token: send `Authorization: Bearer <jwt>`")]
    MissingToken,
    /// The token has expired.
    #[error("the token has expired; get a new one")]
    Expired,
    /// The token is not valid yet (`nbf` in the future).
    #[error("the token is not valid yet (nbf is in the future)")]
    NotYetValid,
    /// Wrong `iss` or `aud`.
    #[error("the token was not issued for this service (wrong iss or aud)")]
    WrongIssuerOrAudience,
    /// A required claim is missing or malformed.
    #[error("the token lacks a required claim or has a malformed one: {0}")]
    BadClaims(String),
    /// Signature, algorithm or encoding is wrong.
    #[error("the token's signature or format is invalid")]
    Invalid,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// Verifies tokens against one configured issuer.
#[derive(Clone)]
pub struct Verifier {
    config: IssuerConfig,
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .finish()
    }
}

impl Verifier {
    /// A verifier for `config`. Clock leeway is 30 s.
    pub fn new(config: IssuerConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let key = DecodingKey::from_secret(&config.hs256_secret);
        Self {
            config,
            key,
            validation,
        }
    }

    /// Verifies `token` and extracts the identity.
    ///
    /// # Errors
    /// [`AuthError`] saying which check failed.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| classify(e.kind()))?;
        let mut claims = data.claims;
        let tenant = claims
            .rest
            .remove(&self.config.tenant_claim)
            .ok_or_else(|| {
                AuthError::BadClaims(format!(
                    "missing tenant claim `{}`",
                    self.config.tenant_claim
                ))
            })?;
        let tenant = tenant
            .as_str()
            .and_then(|t| TenantSlug::parse(t).ok())
            .ok_or_else(|| {
                AuthError::BadClaims(format!(
                    "tenant claim `{}` is not a tenant slug",
                    self.config.tenant_claim
                ))
            })?;
        if claims.sub.is_empty() {
            return Err(AuthError::BadClaims("empty `sub`".into()));
        }
        Ok(Identity {
            tenant,
            subject: claims.sub,
            roles: claims.roles,
        })
    }

    /// Signs a token for `tenant` valid for `ttl_secs`. For development and tests only:
    /// production tokens come from the identity provider.
    ///
    /// # Errors
    /// When signing fails (it does not with an HS256 secret).
    pub fn mint(
        &self,
        tenant: &TenantSlug,
        subject: &str,
        roles: &[&str],
        ttl_secs: u64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut claims = serde_json::json!({
            "iss": self.config.issuer,
            "aud": self.config.audience,
            "sub": subject,
            "roles": roles,
            "iat": now,
            "exp": now + ttl_secs,
        });
        claims[&self.config.tenant_claim] = Value::String(tenant.to_string());
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.config.hs256_secret),
        )
    }
}

fn classify(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => AuthError::WrongIssuerOrAudience,
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::BadClaims(format!("missing `{claim}`"))
        }
        ErrorKind::InvalidSubject => AuthError::BadClaims("invalid `sub`".into()),
        ErrorKind::Json(_) => AuthError::BadClaims("claims are not the expected JSON".into()),
        _ => AuthError::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secret: &[u8]) -> Verifier {
        Verifier::new(IssuerConfig {
            issuer: "https://issuer.test".into(),
            audience: "eerp".into(),
            hs256_secret: secret.to_vec(),
            tenant_claim: "tid".into(),
        })
    }

    fn acme() -> TenantSlug {
        TenantSlug::parse("acme").unwrap()
    }

    #[test]
    fn minted_token_verifies_to_its_tenant_and_roles() {
        let v = verifier(b"secret-secret-secret-secret-0001");
        let token = v.mint(&acme(), "ada", &["admin"], 60).unwrap();
        let id = v.verify(&token).unwrap();
        assert_eq!(id.tenant, acme());
        assert_eq!(id.subject, "ada");
        assert_eq!(id.roles, vec!["admin".to_string()]);
    }

    #[test]
    fn token_signed_with_another_secret_is_invalid() {
        let token = verifier(b"another-secret-another-secret-01")
            .mint(&acme(), "ada", &[], 60)
            .unwrap();
        let err = verifier(b"secret-secret-secret-secret-0001").verify(&token);
        assert_eq!(err, Err(AuthError::Invalid));
    }

    #[test]
    fn expired_token_is_refused_as_expired() {
        let v = verifier(b"secret-secret-secret-secret-0001");
        let claims = serde_json::json!({
            "iss": "https://issuer.test", "aud": "eerp", "sub": "ada", "tid": "acme", "exp": 1000,
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"secret-secret-secret-secret-0001"),
        )
        .unwrap();
        assert_eq!(v.verify(&token), Err(AuthError::Expired));
    }

    #[test]
    fn token_without_tenant_claim_is_refused() {
        let secret = b"secret-secret-secret-secret-0001";
        let claims = serde_json::json!({
            "iss": "https://issuer.test", "aud": "eerp", "sub": "ada", "exp": 4_000_000_000u64,
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert!(matches!(
            verifier(secret).verify(&token),
            Err(AuthError::BadClaims(_))
        ));
    }
}
