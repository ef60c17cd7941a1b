//! The [`Authenticator`]: verifies tokens against the configured issuers and remembers the
//! ones it verified, so a repeated token costs a hash and a map lookup instead of a
//! signature check.
//!
//! A cached token is served only while it has not expired and the key that verified it is
//! still among its issuer's keys: when a refresh rotates a key out, the tokens it verified
//! are evicted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use moka::sync::Cache;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::keys::{IssuerKeys, JwksFetcher, KeyError, KeySet};
use super::{AuthError, Identity, IssuerConfig, OPERATOR_ROLE, Operator};
use crate::id::TenantSlug;

/// Tuning of the [`Authenticator`].
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Verified tokens remembered at most.
    pub token_cache_capacity: u64,
    /// Minimum time between two JWKS fetches of one issuer.
    pub jwks_cooldown: Duration,
    /// Age after which a JWKS is fetched again, so withdrawn keys stop verifying.
    pub jwks_max_age: Duration,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            token_cache_capacity: 100_000,
            jwks_cooldown: Duration::from_secs(10),
            jwks_max_age: Duration::from_secs(600),
            leeway_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Tenant,
    Operator,
}

#[derive(Clone)]
enum Principal {
    Tenant(Identity),
    Operator(Operator),
}

#[derive(Clone)]
struct Verified {
    principal: Principal,
    expires_at: u64,
    issuer: usize,
    kid: Option<String>,
    generation: u64,
}

struct UntilExpiry;

impl moka::Expiry<[u8; 32], Arc<Verified>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Verified>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(value.expires_at.saturating_sub(now())))
    }
}

/// Verifies bearer tokens. Shared by every request; cheap to call concurrently.
pub struct Authenticator {
    issuers: Vec<Arc<IssuerKeys>>,
    verified: Cache<[u8; 32], Arc<Verified>>,
    leeway: u64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field(
                "issuers",
                &self
                    .issuers
                    .iter()
                    .map(|i| &i.config.issuer)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[derive(Deserialize)]
struct Peek {
    iss: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    // Both are required claims; `Validation` reports them missing by name.
    #[serde(default)]
    sub: String,
    #[serde(default)]
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl Authenticator {
    /// Loads every issuer's keys. `fetcher` serves JWKS URLs.
    ///
    /// # Errors
    /// [`KeyError`] when a configuration is inconsistent or a key file cannot be used.
    pub async fn new(
        issuers: Vec<IssuerConfig>,
        fetcher: Option<Arc<dyn JwksFetcher>>,
        settings: AuthSettings,
    ) -> Result<Self, KeyError> {
        let mut loaded = Vec::with_capacity(issuers.len());
        for config in issuers {
            loaded.push(Arc::new(
                IssuerKeys::load(
                    config,
                    fetcher.clone(),
                    settings.jwks_cooldown,
                    settings.jwks_max_age,
                )
                .await?,
            ));
        }
        Ok(Self {
            issuers: loaded,
            verified: Cache::builder()
                .max_capacity(settings.token_cache_capacity)
                .expire_after(UntilExpiry)
                .support_invalidation_closures()
                .build(),
            leeway: settings.leeway_secs,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// Token cache lookups so far: (hits, misses).
    pub fn cache_counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Verifies a tenant token.
    ///
    /// # Errors
    /// [`AuthError`] saying which check failed.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        match &self.verified(token, Kind::Tenant).await?.principal {
            Principal::Tenant(identity) => Ok(identity.clone()),
            Principal::Operator(_) => Err(AuthError::Invalid),
        }
    }

    /// Verifies an operator token (admin API).
    ///
    /// # Errors
    /// [`AuthError`] saying which check failed; a tenant token always fails here.
    pub async fn verify_operator(&self, token: &str) -> Result<Operator, AuthError> {
        match &self.verified(token, Kind::Operator).await?.principal {
            Principal::Operator(operator) => Ok(operator.clone()),
            Principal::Tenant(_) => Err(AuthError::Invalid),
        }
    }

    async fn verified(&self, token: &str, kind: Kind) -> Result<Arc<Verified>, AuthError> {
        let digest = token_digest(token, kind);
        if let Some(hit) = self.verified.get(&digest) {
            self.refresh_if_stale(hit.issuer);
            if self.still_valid(&hit) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(hit);
            }
            self.verified.invalidate(&digest);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let verified = Arc::new(self.verify_fresh(token, kind).await?);
        self.verified.insert(digest, verified.clone());
        Ok(verified)
    }

    /// Starts a background refetch of stale keys: a request with a cached token never
    /// waits for the identity provider (a key it withdrew stops verifying once the fetch
    /// lands, through [`Self::still_valid`]).
    fn refresh_if_stale(&self, issuer: usize) {
        let keys = &self.issuers[issuer];
        if keys.is_stale(&keys.current()) {
            keys.refresh_in_background();
        }
    }

    fn still_valid(&self, hit: &Verified) -> bool {
        if hit.expires_at.saturating_add(self.leeway) <= now() {
            return false;
        }
        let keys = self.issuers[hit.issuer].current();
        keys.generation == hit.generation || hit.kid.as_deref().is_some_and(|k| keys.has_kid(k))
    }

    async fn verify_fresh(&self, token: &str, kind: Kind) -> Result<Verified, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        let peek: Peek = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| AuthError::Invalid)?;
        let (index, issuer) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| peek.iss.as_deref() == Some(i.config.issuer.as_str()))
            .ok_or(AuthError::WrongIssuerOrAudience)?;
        if !issuer.config.algorithms.contains(&header.alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let audience = match kind {
            Kind::Tenant => issuer.config.audience.as_str(),
            Kind::Operator => issuer
                .config
                .operator_audience
                .as_deref()
                .ok_or(AuthError::WrongIssuerOrAudience)?,
        };
        self.refresh_if_stale(index);
        let kid = header.kid.as_deref();
        let mut keys = issuer.current();
        if let Some(kid) = kid
            && keys.candidates(Some(kid), header.alg).next().is_none()
        {
            let (current, changed) = issuer.refresh(Some(kid)).await;
            if changed {
                self.evict_rotated(index, &current);
            }
            keys = current;
        }
        let claims =
            self.check_signature(token, header.alg, kid, &keys, &issuer.config, audience)?;
        let expires_at = claims.exp;
        let principal = principal(claims, kind, &issuer.config)?;
        if let Principal::Tenant(identity) = &principal
            && self.bound_elsewhere(index, &identity.tenant)
        {
            return Err(AuthError::TenantNotAllowed);
        }
        Ok(Verified {
            principal,
            expires_at,
            issuer: index,
            kid: kid.map(str::to_string),
            generation: keys.generation,
        })
    }

    /// Whether `tenant` is bound to another issuer while issuer `index` may name any
    /// tenant: a tenant given its own identity provider takes tokens from it alone.
    fn bound_elsewhere(&self, index: usize, tenant: &TenantSlug) -> bool {
        self.issuers[index].config.tenants.is_none()
            && self.issuers.iter().enumerate().any(|(other, keys)| {
                other != index && keys.config.tenants.is_some() && keys.config.speaks_for(tenant)
            })
    }

    fn check_signature(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
        keys: &KeySet,
        config: &IssuerConfig,
        audience: &str,
    ) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let mut last = if kid.is_some() {
            AuthError::UnknownKey
        } else {
            AuthError::Invalid
        };
        for key in keys.candidates(kid, alg) {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = classify(e.kind()),
            }
        }
        Err(last)
    }

    /// Drops cached tokens verified by keys that are no longer published.
    fn evict_rotated(&self, issuer: usize, keys: &Arc<KeySet>) {
        let keys = keys.clone();
        let result = self.verified.invalidate_entries_if(move |_, v| {
            v.issuer == issuer
                && v.generation != keys.generation
                && !v.kid.as_deref().is_some_and(|k| keys.has_kid(k))
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not evict tokens of rotated keys");
        }
    }
}

fn principal(
    mut claims: Claims,
    kind: Kind,
    config: &IssuerConfig,
) -> Result<Principal, AuthError> {
    if claims.sub.is_empty() {
        return Err(AuthError::BadClaims("empty `sub`".into()));
    }
    if kind == Kind::Operator {
        if !claims.roles.iter().any(|r| r == OPERATOR_ROLE) {
            return Err(AuthError::WrongKind(
                "the token lacks the `operator` role the admin API requires",
            ));
        }
        return Ok(Principal::Operator(Operator {
            subject: claims.sub,
        }));
    }
    // Tenant tokens must say when they were issued: a tenant deleted, purged and created
    // again under the same slug refuses the tokens of the earlier one by it.
    let issued_at = claims
        .iat
        .ok_or_else(|| AuthError::BadClaims("missing `iat`".into()))?;
    let claim = &config.tenant_claim;
    let tenant = claims
        .rest
        .remove(claim)
        .ok_or_else(|| AuthError::BadClaims(format!("missing tenant claim `{claim}`")))?;
    let tenant = tenant
        .as_str()
        .and_then(|t| TenantSlug::parse(t).ok())
        .ok_or_else(|| {
            AuthError::BadClaims(format!("tenant claim `{claim}` is not a tenant slug"))
        })?;
    if !config.speaks_for(&tenant) {
        return Err(AuthError::TenantNotAllowed);
    }
    Ok(Principal::Tenant(Identity {
        tenant,
        subject: claims.sub,
        roles: claims.roles,
        issued_at,
    }))
}

fn token_digest(token: &str, kind: Kind) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([kind as u8]);
    hasher.update(token.as_bytes());
    hasher.finalize().into()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn classify(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => AuthError::WrongIssuerOrAudience,
        ErrorKind::InvalidAlgorithm => AuthError::AlgorithmNotAllowed,
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::BadClaims(format!("missing `{claim}`"))
        }
        ErrorKind::Json(_) => AuthError::BadClaims("claims are not the expected JSON".into()),
        _ => AuthError::Invalid,
    }
}
