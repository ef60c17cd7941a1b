//! Bearer tokens in, verified identities out.
//!
//! A token must be a JWT from a configured issuer ([`IssuerConfig`]), signed with one of
//! that issuer's keys in one of its allowed algorithms, and carry `exp`, `iss`, `aud` and
//! `sub`. Tenant tokens ([`Identity`]) carry the issuer's audience and the tenant claim
//! (default `tid`); operator tokens ([`Operator`]) carry the issuer's separate operator
//! audience and the `operator` role, and are only accepted by the admin API. The
//! [`Authenticator`] caches verified tokens by hash and keys by `kid`.

mod authenticator;
mod keys;
mod signer;

use std::path::PathBuf;

use jsonwebtoken::Algorithm;
use thiserror::Error;

use crate::id::TenantSlug;

pub use authenticator::{AuthSettings, Authenticator};
pub use keys::{JwksFetcher, KeyError};
pub use signer::DevSigner;

/// The role an operator token must carry.
pub const OPERATOR_ROLE: &str = "operator";

/// Where an issuer's verification keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// A shared HS256 secret. Only used when the issuer allows `HS256` explicitly.
    Hs256Secret(Vec<u8>),
    /// Public keys in PEM files (RSA, EC P-256 or Ed25519).
    PemFiles(Vec<PathBuf>),
    /// A JWKS document on disk, re-read on an unknown `kid`.
    JwksFile(PathBuf),
    /// A JWKS URL, fetched at start and again on an unknown `kid`.
    JwksUrl(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Hs256Secret(_) => f.write_str("Hs256Secret(<redacted>)"),
            KeySource::PemFiles(files) => f.debug_tuple("PemFiles").field(files).finish(),
            KeySource::JwksFile(path) => f.debug_tuple("JwksFile").field(path).finish(),
            KeySource::JwksUrl(url) => f.debug_tuple("JwksUrl").field(url).finish(),
        }
    }
}

/// One trusted token issuer.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// `aud` of tenant tokens.
    pub audience: String,
    /// `aud` of operator tokens; `None` means this issuer cannot mint operator tokens.
    pub operator_audience: Option<String>,
    /// Algorithms accepted from this issuer. `HS256` must be listed explicitly to be used.
    pub algorithms: Vec<Algorithm>,
    /// Where the verification keys come from.
    pub keys: KeySource,
    /// Name of the claim that holds the tenant slug.
    pub tenant_claim: String,
    /// The tenants this issuer may speak for: slugs, or prefixes ending in `*`
    /// (`acme_*`). `None` means any tenant; an empty list, none (an operator-only issuer).
    pub tenants: Option<Vec<String>>,
}

impl IssuerConfig {
    /// Whether this issuer's tokens may name `tenant`.
    pub fn speaks_for(&self, tenant: &TenantSlug) -> bool {
        let Some(allowed) = &self.tenants else {
            return true;
        };
        allowed
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => tenant.as_str().starts_with(prefix),
                None => pattern == tenant.as_str(),
            })
    }
}

impl IssuerConfig {
    /// An issuer that verifies HS256 tokens with `secret` (development and tests).
    pub fn hs256(issuer: &str, audience: &str, secret: Vec<u8>) -> Self {
        Self {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            operator_audience: Some(format!("{audience}-admin")),
            algorithms: vec![Algorithm::HS256],
            keys: KeySource::Hs256Secret(secret),
            tenant_claim: "tid".into(),
            tenants: None,
        }
    }
}

/// Who a verified tenant token says is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tenant, from the tenant claim.
    pub tenant: TenantSlug,
    /// The `sub` claim.
    pub subject: String,
    /// The `roles` claim (empty when absent).
    pub roles: Vec<String>,
    /// The `iat` claim, in seconds since the epoch.
    pub issued_at: u64,
}

/// A verified operator of the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The `sub` claim, recorded in the audit log.
    pub subject: String,
}

/// Why a token was refused. The messages are safe to show to the caller: they never
/// include the token.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
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
    #[error("the token was not issued for this service (unknown iss or wrong aud)")]
    WrongIssuerOrAudience,
    /// The issuer is not one the token's tenant accepts tokens from.
    #[error(
        "the token's issuer may not speak for this tenant; use a token of the tenant's own identity provider"
    )]
    TenantNotAllowed,
    /// The `kid` names no key of the issuer, even after refreshing its keys.
    #[error("the token's key id (kid) is not one of the issuer's keys")]
    UnknownKey,
    /// The algorithm is not allowed for the issuer or does not fit its key.
    #[error("the token's algorithm is not accepted for this issuer")]
    AlgorithmNotAllowed,
    /// A required claim is missing or malformed.
    #[error("the token lacks a required claim or has a malformed one: {0}")]
    BadClaims(String),
    /// Signature or encoding is wrong.
    #[error("the token's signature or format is invalid")]
    Invalid,
    /// A valid token of the wrong kind: a tenant token at the admin API, or an operator
    /// token without the operator role.
    #[error("{0}")]
    WrongKind(&'static str),
}

#[cfg(test)]
mod tests;
