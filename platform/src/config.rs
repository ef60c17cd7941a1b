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
    /// HTTP worker threads.
    pub workers: usize,
    /// Module files stored in the catalog at start-up besides the built-in ones.
    pub extra_modules: Vec<PathBuf>,
    /// Largest module an operator may upload, in bytes.
    pub max_module_bytes: usize,
    /// Tenants with their own `tenant` label in metrics; the rest are `other`.
    pub metrics_top_tenants: usize,
    /// How often tenant counts and readiness are read for metrics.
    pub metrics_refresh: Duration,
}

impl Settings {
    /// Settings with defaults for everything but the database and the token issuers.
    pub fn new(database_url: String, issuers: Vec<IssuerConfig>) -> Self {
        Self {
            database_url,
            host: "127.0.0.1".into(),
            port: 8080,
            issuers,
            auth: AuthSettings::default(),
            engine: EngineSettings::default(),
            limits: Limits::default(),
            tenant_cache_ttl: Duration::from_secs(30),
            tenant_cache_capacity: 100_000,
            purge_grace: Duration::from_secs(30 * 24 * 3600),
            db_pool_size: 16,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            extra_modules: Vec::new(),
            max_module_bytes: 32 << 20,
            metrics_top_tenants: 20,
            metrics_refresh: Duration::from_secs(5),
        }
    }
}
