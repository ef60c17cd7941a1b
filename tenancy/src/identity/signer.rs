//! Minting tokens for development and tests. Production tokens come from the identity
//! provider; this only signs HS256 with the dev issuer's shared secret.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{IssuerConfig, KeySource, OPERATOR_ROLE};
use crate::id::TenantSlug;

/// Signs tokens an HS256 [`IssuerConfig`] accepts.
#[derive(Clone)]
pub struct DevSigner {
    config: IssuerConfig,
    key: EncodingKey,
}

impl std::fmt::Debug for DevSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevSigner")
            .field("issuer", &self.config.issuer)
            .finish()
    }
}

impl DevSigner {
    /// A signer for `config`; `None` unless it is an HS256 issuer.
    pub fn new(config: &IssuerConfig) -> Option<Self> {
        let KeySource::Hs256Secret(secret) = &config.keys else {
            return None;
        };
        Some(Self {
            key: EncodingKey::from_secret(secret),
            config: config.clone(),
        })
    }

    /// A tenant token for `tenant`, valid for `ttl_secs`.
    ///
    /// # Errors
    /// When signing fails (it does not with an HS256 secret).
    pub fn tenant_token(
        &self,
        tenant: &TenantSlug,
        subject: &str,
        roles: &[&str],
        ttl_secs: u64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut claims = self.claims(&self.config.audience, subject, roles, ttl_secs);
        claims[&self.config.tenant_claim] = Value::String(tenant.to_string());
        self.sign(&claims)
    }

    /// An operator token for the admin API, valid for `ttl_secs`.
    ///
    /// # Errors
    /// When the issuer has no operator audience.
    pub fn operator_token(
        &self,
        subject: &str,
        ttl_secs: u64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let audience = self
            .config
            .operator_audience
            .as_deref()
            .ok_or(jsonwebtoken::errors::ErrorKind::InvalidAudience)?;
        let claims = self.claims(audience, subject, &[OPERATOR_ROLE], ttl_secs);
        self.sign(&claims)
    }

    fn claims(&self, audience: &str, subject: &str, roles: &[&str], ttl_secs: u64) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        json!({
            "iss": self.config.issuer,
            "aud": audience,
            "sub": subject,
            "roles": roles,
            "iat": now,
            "exp": now + ttl_secs,
        })
    }

    fn sign(&self, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key)
    }
}
