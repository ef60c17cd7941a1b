//! `eerp migrate`: a release's database work, done once before its replicas start (the Helm
//! chart's pre-install and pre-upgrade Job).
//!
//! It migrates the catalog, stores the release's built-in modules (and `--module` files),
//! and runs a fleet migration of each of them, so every tenant is served the version the
//! release carries. Modules uploaded through the admin API are left to their operators,
//! who may be trying a version on a few tenants. Nothing here serves requests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::db::create_pool;
use crate::migrations::catalog::migrate_catalog;
use crate::registry::store::ModuleStore;
use crate::registry::{BUILTIN_MODULES, Registry};
use crate::runtime::{EngineSettings, build_engine};
use crate::tenants::fleet;

/// How often a fleet run's progress is read while waiting for it.
const POLL: Duration = Duration::from_millis(500);

/// What `eerp migrate` is told.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub database_url: String,
    /// Module files stored beside the built-in ones (`eerp serve --module`).
    pub extra_modules: Vec<PathBuf>,
    /// Tenants migrated at once, per module.
    pub workers: usize,
}

/// One module's fleet run, as it finished.
#[derive(Debug, Clone)]
pub struct FleetOutcome {
    pub module: String,
    pub version: String,
    /// The run's final status: tenants, done, failed and each failure (`fleet::run_status`).
    pub run: Value,
}

impl FleetOutcome {
    pub fn failed(&self) -> u64 {
        self.run["failed"].as_u64().unwrap_or(0)
    }
}

/// Migrates the catalog, stores the release's modules and moves every tenant to them; one
/// outcome per module, in the order stored. Safe to run again: tenants already on a
/// module's version are skipped, and failed ones are retried.
///
/// # Errors
/// When the database is unreachable, the catalog cannot be migrated or a module cannot be
/// stored. A tenant that fails to migrate is not an error here: it is in the outcome.
pub async fn migrate(options: &MigrateOptions) -> anyhow::Result<Vec<FleetOutcome>> {
    // One connection per fleet worker, and one to follow the runs.
    let pool = create_pool(
        &options.database_url,
        options.workers.max(1) + 1,
        Duration::from_secs(30),
        0,
    )?;
    migrate_catalog(&pool)
        .await
        .context("migrating the catalog schema `eerp`")?;
    let engine = build_engine(&EngineSettings::default())
        .map_err(|e| anyhow::anyhow!("configuring the wasm engine: {e:#}"))?;
    let registry = Arc::new(Registry::default());
    // The release job compiles what it seeds without keeping it: it has no artefact key,
    // and the replicas keep their own when they load.
    let store = ModuleStore {
        pool: &pool,
        engine: &engine,
        registry: &registry,
        artifact_key: None,
    };
    let modules = store
        .seed(BUILTIN_MODULES, &options.extra_modules)
        .await
        .context("storing the release's modules in the catalog")?;
    let mut outcomes = Vec::with_capacity(modules.len());
    for module in modules {
        let (name, version) = (module.name.as_str().to_string(), module.version.to_string());
        let started = fleet::start(&pool, module, options.workers)
            .await
            .with_context(|| format!("starting the fleet migration of {name} {version}"))?;
        let run = wait_for(&pool, &started).await?;
        outcomes.push(FleetOutcome {
            module: name,
            version,
            run,
        });
    }
    Ok(outcomes)
}

/// Follows a fleet run until it is no longer running.
async fn wait_for(pool: &crate::db::Pool, started: &Value) -> anyhow::Result<Value> {
    let id = started["id"]
        .as_str()
        .context("a fleet run was started without an id")?;
    loop {
        let run = fleet::run_status(pool, id).await?;
        if run["status"] != "running" {
            return Ok(run);
        }
        tokio::time::sleep(POLL).await;
    }
}
