//! Settings: what `eerp serve` and `eerp dev` are told, validated into one value.

use std::path::PathBuf;
use std::time::Duration;

use eerp_tenancy::{AuthSettings, IssuerConfig, Limits};

use crate::runtime::EngineSettings;

/// Everything [`crate::startup::App::build`] needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// PostgreSQL URL, e.g. `postgres://eerp@db:5432/eerp`.
    pub database_url: String,
    /// Address to listen on.
    pub host: String,
    /// Port to listen on; 0 picks a free one (tests).
    pub port: u16,
    /// Port of the operations listener (`/metrics`, `/readyz`, `/livez`), on `host`; 0
    /// picks a free one.
    pub ops_port: u16,
    /// The trusted token issuers.
    pub issuers: Vec<IssuerConfig>,
    /// Token and key cache tuning.
    pub auth: AuthSettings,
    /// Sandbox engine tuning.
    pub engine: EngineSettings,
    /// Limits under every plan; plans and per-tenant overrides change them.
    pub limits: Limits,
    /// How long a tenant entry is cached when no change notification arrives.
    pub tenant_cache_ttl: Duration,
    /// Tenant entries cached at most.
    pub tenant_cache_capacity: u64,
    /// How long a deleted tenant's data is kept before `purge` may drop it.
    pub purge_grace: Duration,
    /// Connections in the shared pool.
    pub db_pool_size: usize,
    /// How long a request waits for a connection (its tenant's share, then the pool).
    pub db_pool_wait: Duration,
    /// Prepared statements each pooled connection keeps (0: none are prepared).
    pub db_statement_cache: usize,
    /// The fraction (0 < f <= 1) of this replica's cores, pooled connections and sandbox
    /// slots one tenant may hold at once.
    pub tenant_share: f64,
    /// HTTP worker threads.
    pub workers: usize,
    /// How long in-flight requests may take to finish after SIGTERM or Ctrl-C; those
    /// still running then are dropped, and their transactions rolled back.
    pub drain_timeout: Duration,
    /// Module files stored in the catalog at start-up besides the built-in ones.
    pub extra_modules: Vec<PathBuf>,
    /// Largest module an operator may upload, in bytes.
    pub max_module_bytes: usize,
    /// Tenants with their own `tenant` label in metrics; the rest are `other`.
    pub metrics_top_tenants: usize,
    /// How often tenant counts and readiness are read for metrics.
    pub metrics_refresh: Duration,
    /// Signs the compiled modules this replica keeps in the catalog, and checks those it
    /// reads there; every replica needs the same one. `None`: nothing is kept there, and
    /// every start compiles (see `registry::artifacts`).
    pub artifact_key: Option<crate::registry::artifacts::ArtifactKey>,
}

impl Settings {
    /// Settings with defaults for everything but the database and the token issuers.
    pub fn new(database_url: String, issuers: Vec<IssuerConfig>) -> Self {
        Self {
            database_url,
            host: "127.0.0.1".into(),
            port: 8080,
            ops_port: 8081,
            issuers,
            auth: AuthSettings::default(),
            engine: EngineSettings::default(),
            limits: Limits::default(),
            tenant_cache_ttl: Duration::from_secs(30),
            tenant_cache_capacity: 100_000,
            purge_grace: Duration::from_secs(30 * 24 * 3600),
            db_pool_size: 16,
            db_pool_wait: Duration::from_secs(5),
            db_statement_cache: 128,
            tenant_share: 0.5,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            drain_timeout: Duration::from_secs(30),
            extra_modules: Vec::new(),
            max_module_bytes: 32 << 20,
            metrics_top_tenants: 20,
            metrics_refresh: Duration::from_secs(5),
            artifact_key: None,
        }
    }
}

/// One issuer in an `--issuers-file` (a JSON array of these). Secrets are not in the
/// file: an HS256 issuer names the environment variable that holds its secret.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerEntry {
    issuer: String,
    #[serde(default = "default_audience")]
    audience: String,
    /// Set to accept operator tokens from this issuer.
    #[serde(default)]
    operator_audience: Option<String>,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    #[serde(default)]
    jwks_url: Option<String>,
    #[serde(default)]
    jwks_file: Option<PathBuf>,
    #[serde(default)]
    public_keys: Vec<PathBuf>,
    #[serde(default)]
    hs256_secret_env: Option<String>,
    #[serde(default = "default_tenant_claim")]
    tenant_claim: String,
    /// Tenants this issuer speaks for (slugs or `prefix*`); absent means any.
    #[serde(default)]
    tenants: Option<Vec<String>>,
}

fn default_audience() -> String {
    "eerp".into()
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "EdDSA".into()]
}

fn default_tenant_claim() -> String {
    "tid".into()
}

/// The issuers of an `--issuers-file`: enterprise tenants' own identity providers, each
/// bound to its tenants, or an operator-only issuer (`"tenants": []` and an
/// `operator_audience`).
///
/// # Errors
/// A message naming the entry and what is wrong with it.
pub fn issuers_from_json(text: &str) -> Result<Vec<IssuerConfig>, String> {
    let entries: Vec<IssuerEntry> =
        serde_json::from_str(text).map_err(|e| format!("the issuers file is not valid: {e}"))?;
    entries.into_iter().map(issuer_of).collect()
}

fn issuer_of(entry: IssuerEntry) -> Result<IssuerConfig, String> {
    use eerp_tenancy::KeySource;
    let name = entry.issuer.clone();
    let algorithms = entry
        .algorithms
        .iter()
        .map(|a| {
            a.parse()
                .map_err(|_| format!("issuer {name}: unknown algorithm `{a}`"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secret = match &entry.hs256_secret_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            format!("issuer {name}: environment variable `{var}` (its HS256 secret) is not set")
        })?),
        None => None,
    };
    let keys = match (entry.jwks_url, entry.jwks_file, entry.public_keys, secret) {
        (Some(url), None, keys, None) if keys.is_empty() => KeySource::JwksUrl(url),
        (None, Some(file), keys, None) if keys.is_empty() => KeySource::JwksFile(file),
        (None, None, keys, None) if !keys.is_empty() => KeySource::PemFiles(keys),
        (None, None, keys, Some(secret)) if keys.is_empty() => {
            KeySource::Hs256Secret(secret.into_bytes())
        }
        _ => {
            return Err(format!(
                "issuer {name}: give exactly one of jwks_url, jwks_file, public_keys or hs256_secret_env"
            ));
        }
    };
    Ok(IssuerConfig {
        issuer: entry.issuer,
        audience: entry.audience,
        operator_audience: entry.operator_audience,
        algorithms,
        keys,
        tenant_claim: entry.tenant_claim,
        tenants: entry.tenants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuers_file_binds_issuers_to_tenants_and_names_its_mistakes() {
        let issuers = issuers_from_json(
            r#"[{"issuer": "https://login.acme.example", "jwks_url": "https://login.acme.example/jwks",
                 "tenants": ["acme", "acme_*"]},
                {"issuer": "https://ops.example", "public_keys": ["ops.pem"], "tenants": [],
                 "operator_audience": "eerp-admin"}]"#,
        )
        .unwrap();
        let acme = eerp_tenancy::id::TenantSlug::parse("acme_eu").unwrap();
        let globex = eerp_tenancy::id::TenantSlug::parse("globex").unwrap();
        assert!(issuers[0].speaks_for(&acme));
        assert!(!issuers[0].speaks_for(&globex));
        assert!(!issuers[1].speaks_for(&acme), "an operator-only issuer");
        assert_eq!(issuers[1].operator_audience.as_deref(), Some("eerp-admin"));
        let two_sources = issuers_from_json(
            r#"[{"issuer": "x", "jwks_url": "https://x/jwks", "public_keys": ["k.pem"]}]"#,
        );
        assert!(two_sources.unwrap_err().contains("exactly one"));
        let typo = issuers_from_json(r#"[{"issuer": "x", "tenant": ["a"]}]"#);
        assert!(typo.unwrap_err().contains("tenant"));
    }
}
