//! An issuer's verification keys: loading them from PEM files, a JWKS file or a JWKS URL,
//! and refreshing a JWKS when a token names an unknown `kid`.
//!
//! A refresh is single-flight (concurrent requests with the same unknown `kid` wait for one
//! fetch) and rate-limited by a cooldown, so tokens with forged `kid`s cannot make us hammer
//! the identity provider.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use thiserror::Error;

use super::{IssuerConfig, KeySource};

/// Fetches a JWKS document over the network. The platform implements it with its HTTP
/// client; this crate does no HTTP itself.
pub trait JwksFetcher: Send + Sync {
    /// The body at `url`.
    fn fetch<'a>(
        &'a self,
        url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;
}

/// Why keys could not be loaded.
#[derive(Debug, Error)]
pub enum KeyError {
    /// A key file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A key or JWKS could not be parsed.
    #[error("invalid key material from {origin}: {detail}")]
    Parse {
        /// File or URL.
        origin: String,
        /// What was wrong.
        detail: String,
    },
    /// A JWKS URL could not be fetched.
    #[error("cannot fetch JWKS {url}: {detail}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// The configuration is inconsistent.
    #[error("issuer {issuer}: {detail}")]
    Config {
        /// The issuer.
        issuer: String,
        /// What to fix.
        detail: String,
    },
}

/// One verification key.
pub(crate) struct VerifyKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    pub family: AlgorithmFamily,
}

/// The keys of an issuer at one point in time.
pub(crate) struct KeySet {
    pub keys: Vec<VerifyKey>,
    /// Bumped on every successful refresh.
    pub generation: u64,
    /// When these keys were read.
    pub loaded_at: Instant,
}

impl Default for KeySet {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            generation: 0,
            loaded_at: Instant::now(),
        }
    }
}

impl KeySet {
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Candidate keys for a token with `kid` (if any) signed with `alg`. Keys without a
    /// `kid` (PEM files) are candidates for any token of their family: identity providers
    /// put a `kid` in every token whether or not the verifier was given one.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        self.keys.iter().filter(move |k| {
            family_of(alg) == Some(k.family)
                && (kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
        })
    }
}

/// The family an algorithm we accept belongs to; `None` for ones we never accept.
pub(crate) fn family_of(alg: Algorithm) -> Option<AlgorithmFamily> {
    match alg {
        Algorithm::HS256 => Some(AlgorithmFamily::Hmac),
        Algorithm::RS256 => Some(AlgorithmFamily::Rsa),
        Algorithm::ES256 => Some(AlgorithmFamily::Ec),
        Algorithm::EdDSA => Some(AlgorithmFamily::Ed),
        _ => None,
    }
}

/// The keys of one issuer and how to refresh them.
pub(crate) struct IssuerKeys {
    pub config: IssuerConfig,
    current: RwLock<Arc<KeySet>>,
    /// When the keys were last fetched; held while fetching (the single flight).
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    fetcher: Option<Arc<dyn JwksFetcher>>,
    cooldown: Duration,
    max_age: Duration,
    /// A background refresh is under way (at most one per issuer).
    refreshing: std::sync::atomic::AtomicBool,
}

impl IssuerKeys {
    pub async fn load(
        config: IssuerConfig,
        fetcher: Option<Arc<dyn JwksFetcher>>,
        cooldown: Duration,
        max_age: Duration,
    ) -> Result<Self, KeyError> {
        check_config(&config)?;
        let keys = Self {
            config,
            current: RwLock::new(Arc::new(KeySet::default())),
            last_fetch: tokio::sync::Mutex::new(None),
            fetcher,
            cooldown,
            max_age,
            refreshing: std::sync::atomic::AtomicBool::new(false),
        };
        let initial = match &keys.config.keys {
            KeySource::Hs256Secret(secret) => KeySet {
                keys: vec![VerifyKey {
                    kid: None,
                    key: DecodingKey::from_secret(secret),
                    family: AlgorithmFamily::Hmac,
                }],
                ..KeySet::default()
            },
            KeySource::PemFiles(files) => pem_keys(files)?,
            KeySource::JwksFile(_) | KeySource::JwksUrl(_) => match keys.fetch().await {
                Ok(set) => set,
                // The identity provider may be down while we start; an empty set counts as
                // stale, so the next token triggers another attempt.
                Err(e) => {
                    tracing::warn!(issuer = %keys.config.issuer, error = %e, "no JWKS at start");
                    KeySet::default()
                }
            },
        };
        keys.swap(initial);
        Ok(keys)
    }

    pub fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn swap(&self, mut set: KeySet) {
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        set.generation = guard.generation + 1;
        *guard = Arc::new(set);
    }

    fn refreshable(&self) -> bool {
        matches!(
            self.config.keys,
            KeySource::JwksFile(_) | KeySource::JwksUrl(_)
        )
    }

    /// Whether the JWKS should be fetched again even without an unknown `kid`: it is older
    /// than the maximum age (so keys the provider withdrew stop verifying), or empty.
    pub fn is_stale(&self, keys: &KeySet) -> bool {
        self.refreshable() && (keys.keys.is_empty() || keys.loaded_at.elapsed() > self.max_age)
    }

    /// Refetches the JWKS because `kid` is unknown (or, with `None`, because the keys are
    /// stale), unless another request just did or the cooldown since the last fetch has
    /// not passed. Returns the keys to use and whether they changed.
    pub async fn refresh(&self, kid: Option<&str>) -> (Arc<KeySet>, bool) {
        if !self.refreshable() {
            return (self.current(), false);
        }
        let mut last = self.last_fetch.lock().await;
        let current = self.current();
        let needed = match kid {
            Some(kid) => !current.has_kid(kid),
            None => self.is_stale(&current),
        };
        if !needed {
            return (current, false);
        }
        if last.is_some_and(|at| at.elapsed() < self.cooldown) {
            return (current, false);
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(issuer = %self.config.issuer, keys = set.keys.len(), "JWKS refreshed");
                self.swap(set);
                (self.current(), true)
            }
            Err(e) => {
                tracing::warn!(issuer = %self.config.issuer, error = %e, "JWKS refresh failed");
                (current, false)
            }
        }
    }

    /// Runs [`Self::refresh`] of stale keys on a task of its own, unless one already runs
    /// (or there is no async runtime to run it on).
    pub fn refresh_in_background(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        /// Clears the flag however the task ends, dropped unfinished included.
        struct Done(Arc<IssuerKeys>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.refreshing.store(false, Ordering::Release);
            }
        }
        let done = Done(self.clone());
        drop(runtime.spawn(async move {
            done.0.refresh(None).await;
            drop(done);
        }));
    }

    async fn fetch(&self) -> Result<KeySet, KeyError> {
        let (origin, body) = match &self.config.keys {
            KeySource::JwksFile(path) => {
                let body = tokio::fs::read(path)
                    .await
                    .map_err(|source| KeyError::Read {
                        path: path.display().to_string(),
                        source,
                    })?;
                (path.display().to_string(), body)
            }
            KeySource::JwksUrl(url) => {
                let fetcher = self.fetcher.as_ref().ok_or_else(|| KeyError::Fetch {
                    url: url.clone(),
                    detail: "no HTTP client configured".into(),
                })?;
                let body = fetcher.fetch(url).await.map_err(|detail| KeyError::Fetch {
                    url: url.clone(),
                    detail,
                })?;
                (url.clone(), body)
            }
            _ => return Ok(KeySet::default()),
        };
        jwks_keys(&origin, &body)
    }
}

fn check_config(config: &IssuerConfig) -> Result<(), KeyError> {
    let problem = |detail: &str| KeyError::Config {
        issuer: config.issuer.clone(),
        detail: detail.to_string(),
    };
    if config.operator_audience.as_deref() == Some(config.audience.as_str()) {
        return Err(problem(
            "the operator audience must differ from the tenant audience, or tenant tokens could reach the admin API",
        ));
    }
    if config.algorithms.is_empty() {
        return Err(problem(
            "no algorithms allowed; list RS256, ES256, EdDSA or HS256",
        ));
    }
    if let Some(alg) = config.algorithms.iter().find(|a| family_of(**a).is_none()) {
        return Err(problem(&format!(
            "algorithm {alg:?} is not supported; use RS256, ES256, EdDSA or HS256"
        )));
    }
    let hs256 = config.algorithms.contains(&Algorithm::HS256);
    match &config.keys {
        KeySource::Hs256Secret(secret) if !hs256 => Err(problem(
            "an HS256 secret is configured but HS256 is not allowed",
        )),
        KeySource::Hs256Secret(secret) if secret.len() < 32 => {
            Err(problem("the HS256 secret must be at least 32 bytes"))
        }
        KeySource::Hs256Secret(_) if config.algorithms.len() > 1 => Err(problem(
            "an HS256 issuer may not also allow asymmetric algorithms (key confusion)",
        )),
        KeySource::Hs256Secret(_) => Ok(()),
        _ if hs256 => Err(problem("HS256 needs a shared secret, not public keys")),
        _ => Ok(()),
    }
}

fn pem_keys(files: &[std::path::PathBuf]) -> Result<KeySet, KeyError> {
    let mut keys = Vec::new();
    for path in files {
        let origin = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| KeyError::Read {
            path: origin.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&pem);
        // The PEM label says what kind of key it is only for RSA; try the others in turn.
        let parsed = [
            (AlgorithmFamily::Rsa, DecodingKey::from_rsa_pem(&pem)),
            (AlgorithmFamily::Ec, DecodingKey::from_ec_pem(&pem)),
            (AlgorithmFamily::Ed, DecodingKey::from_ed_pem(&pem)),
        ]
        .into_iter()
        .find_map(|(family, key)| key.ok().map(|key| (family, key)));
        let Some((family, key)) = parsed.filter(|_| text.contains("PUBLIC KEY")) else {
            return Err(KeyError::Parse {
                origin,
                detail: "expected a PEM public key (RSA, EC P-256 or Ed25519)".into(),
            });
        };
        keys.push(VerifyKey {
            kid: None,
            key,
            family,
        });
    }
    Ok(KeySet {
        keys,
        ..KeySet::default()
    })
}

fn jwks_keys(origin: &str, body: &[u8]) -> Result<KeySet, KeyError> {
    let set: JwkSet = serde_json::from_slice(body).map_err(|e| KeyError::Parse {
        origin: origin.to_string(),
        detail: format!("not a JWKS document: {e}"),
    })?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        // Keys we cannot use (other types, encryption keys) are skipped, not fatal: an
        // identity provider may publish more than we need.
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let family = key.family();
        if family == AlgorithmFamily::Hmac {
            continue;
        }
        keys.push(VerifyKey {
            kid: jwk.common.key_id.clone(),
            key,
            family,
        });
    }
    Ok(KeySet {
        keys,
        ..KeySet::default()
    })
}
