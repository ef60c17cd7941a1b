//! The modules this process serves, behind an atomic swap.
//!
//! Readers clone an `Arc` of the current map and never wait on a loader; installing a
//! module version builds a new map and swaps it in, so in-flight requests finish on the
//! version they started with. Loading new versions at runtime builds on [`Registry::install`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use wasmtime::Engine;

use crate::runtime::{LoadError, LoadedModule};

/// The business modules built into this binary: (file name, wasm bytes).
pub const BUILTIN_MODULES: &[(&str, &[u8])] =
    &[("crm.wasm", include_bytes!(env!("EERP_CRM_WASM")))];

type ModuleMap = BTreeMap<String, Arc<LoadedModule>>;

/// The loaded modules, by name.
#[derive(Debug, Default)]
pub struct Registry {
    current: RwLock<Arc<ModuleMap>>,
}

impl Registry {
    /// The module called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedModule>> {
        self.snapshot().get(name).cloned()
    }

    /// Names of the loaded modules.
    pub fn names(&self) -> Vec<String> {
        self.snapshot().keys().cloned().collect()
    }

    /// Every loaded module.
    pub fn modules(&self) -> Vec<Arc<LoadedModule>> {
        self.snapshot().values().cloned().collect()
    }

    fn snapshot(&self) -> Arc<ModuleMap> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            // A writer panicked mid-swap; the map it left is still a complete map.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Installs `module`, replacing any module of the same name; returns the replaced one.
    pub fn install(&self, module: LoadedModule) -> Option<Arc<LoadedModule>> {
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = ModuleMap::clone(&guard);
        let previous = next.insert(module.name.to_string(), Arc::new(module));
        *guard = Arc::new(next);
        previous
    }

    /// Loads the built-in modules and the `.wasm` files in `extra`.
    ///
    /// # Errors
    /// The first module that fails to load, named.
    pub async fn load(engine: &Engine, extra: &[impl AsRef<Path>]) -> anyhow::Result<Self> {
        let registry = Registry::default();
        for (file, bytes) in BUILTIN_MODULES {
            let module = load_one(engine, file, bytes).await?;
            registry.install(module);
        }
        for path in extra {
            let path = path.as_ref();
            let bytes = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read module {}: {e}", path.display()))?;
            let module = load_one(engine, &path.display().to_string(), &bytes).await?;
            anyhow::ensure!(
                registry.get(module.name.as_str()).is_none(),
                "module {} is named `{}`, like a module already loaded; module names must be unique",
                path.display(),
                module.name
            );
            registry.install(module);
        }
        Ok(registry)
    }
}

async fn load_one(engine: &Engine, source: &str, bytes: &[u8]) -> anyhow::Result<LoadedModule> {
    let started = std::time::Instant::now();
    let module = LoadedModule::load(engine, bytes)
        .await
        .map_err(|e: LoadError| anyhow::anyhow!("module {source}: {e}"))?;
    tracing::info!(
        module = %module.name,
        version = %module.manifest.version,
        routes = module.manifest.routes.len(),
        load_ms = started.elapsed().as_millis() as u64,
        "module loaded"
    );
    Ok(module)
}
