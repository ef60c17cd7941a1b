//! The application state every request handler shares: the pool, the engine, the module
//! registry, token verification, the tenant directory and the metrics. It is built by
//! [`crate::startup`] and read by [`crate::http`]; it holds no behaviour of its own beyond
//! handing out views such as the module store.

use std::sync::Arc;

use crate::db::Pool;
use eerp_tenancy::Authenticator;
use eerp_tenancy::limits::Ceilings;
use wasmtime::Engine;

use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::registry::artifacts::ArtifactKey;
use crate::registry::store::ModuleStore;
use crate::tenants::TenantDirectory;

/// What every request handler shares.
pub struct AppState {
    /// The pool for work outside the data API (catalog, migrations, operators, probes).
    pub pool: Pool,
    /// The data API's connections, each a pool of one ("lanes", owned by the HTTP
    /// workers in turn: [`crate::db::WorkerLanes`]), at least one; all tenants share them.
    pub request_pools: Arc<[Pool]>,
    /// The one wasm engine.
    pub engine: Engine,
    /// Loaded modules.
    pub registry: Arc<Registry>,
    /// Token verification, with its key and token caches.
    pub auth: Authenticator,
    /// Tenant entries and admission gates, invalidated across replicas.
    pub directory: Arc<TenantDirectory>,
    /// Highest limits an operator may set.
    pub ceilings: Ceilings,
    /// How long deleted tenants are kept before purge.
    pub purge_grace: std::time::Duration,
    /// Every metric family.
    pub metrics: Arc<Metrics>,
    /// Sandbox instances that can run at once.
    pub pool_slots: u32,
    /// How long a request waits for a database connection.
    pub pool_wait: std::time::Duration,
    /// Largest module upload, in bytes.
    pub max_module_bytes: usize,
    /// Signs and checks the compiled modules kept in the catalog.
    pub artifact_key: Option<ArtifactKey>,
}

impl AppState {
    /// The module store over this app's pool, engine and registry.
    pub fn module_store(&self) -> ModuleStore<'_> {
        ModuleStore {
            pool: &self.pool,
            engine: &self.engine,
            registry: &self.registry,
            artifact_key: self.artifact_key.as_ref(),
        }
    }
}
