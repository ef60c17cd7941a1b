//! Settings: what `eerp serve` and `eerp dev` are told, validated into one value.

use std::path::PathBuf;

use eerp_tenancy::{IssuerConfig, Limits};

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
    /// The trusted token issuer.
    pub issuer: IssuerConfig,
    /// Sandbox engine tuning.
    pub engine: EngineSettings,
    /// Limits applied to every tenant (per-tenant limits come with the tenancy work).
    pub limits: Limits,
    /// Connections in the shared pool.
    pub db_pool_size: usize,
    /// HTTP worker threads.
    pub workers: usize,
    /// Extra module files to load besides the built-in ones.
    pub extra_modules: Vec<PathBuf>,
}

impl Settings {
    /// Settings with defaults for everything but the database and the token issuer.
    pub fn new(database_url: String, issuer: IssuerConfig) -> Self {
        Self {
            database_url,
            host: "127.0.0.1".into(),
            port: 8080,
            issuer,
            engine: EngineSettings::default(),
            limits: Limits::default(),
            db_pool_size: 16,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            extra_modules: Vec::new(),
        }
    }
}
